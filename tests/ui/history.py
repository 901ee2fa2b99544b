"""A real rollout history, written the way the engine writes it: rollouts through
``controlplane.rollout.service``, events through ``service.add_event`` with the planner's
messages, measurements as ``Measurement`` rows whose metrics are the judge's own verdicts
(``judge_histogram`` / ``judge_ratio`` on real histograms and counts, serialized by
``analysis.measure.Measurement.evidence`` as the Prometheus prober does).

chat: v1 deployed first (succeeded), v2 canaried and promoted (succeeded, two passing
measurements), v3 canaried at 25% and rolled back by its second measurement (ttft p95 far
over stable)."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import select

from controlplane.analysis.judge import (
    Check,
    Histogram,
    MetricVerdict,
    Ratio,
    combine,
    judge_histogram,
    judge_ratio,
)
from controlplane.analysis.measure import Measurement as Taken
from controlplane.analysis.measure import summarize
from controlplane.db import Database
from controlplane.models import (
    Measurement,
    ModelVersion,
    Phase,
    Rollout,
    VersionStatus,
    utcnow,
)
from controlplane.rollout import service
from controlplane.rollout.strategy import Strategy

TTFT = Check("ttft", margin=0.10, min_samples=100)
ERROR_RATE = Check("error_rate", margin=0.01, min_samples=100)
BOUNDS = [round(0.05 * i, 2) for i in range(1, 41)] + [float("inf")]
STRATEGY = Strategy.model_validate(
    {
        "steps": [
            {"kind": "set_weight", "weight": 25},
            {
                "kind": "analysis",
                "count": 3,
                "interval_seconds": 10,
                "metrics": ["ttft", "error_rate"],
            },
            {"kind": "set_weight", "weight": 100},
        ]
    }
)


@dataclass(frozen=True)
class History:
    first: int
    promoted: int
    rolled_back: int
    reason: str


def histogram(center: float, n: int, seed: int) -> Histogram:
    rng = random.Random(seed)
    values = [max(0.01, rng.gauss(center, center * 0.15)) for _ in range(n)]
    return Histogram(tuple((le, float(sum(v <= le for v in values))) for le in BOUNDS))


def measured(
    at: datetime, canary_ttft: float, canary_errors: int, seed: int
) -> tuple[str, str, list[dict[str, Any]]]:
    verdicts: list[MetricVerdict] = [
        judge_histogram(TTFT, histogram(canary_ttft, 600, seed), histogram(0.42, 5000, seed + 1)),
        judge_ratio(ERROR_RATE, Ratio(canary_errors, 600), Ratio(25, 5000)),
    ]
    verdict = combine(verdicts)
    taken = Taken(at, verdict, summarize(verdict, verdicts), tuple(verdicts))
    metrics = json.loads(json.dumps(taken.evidence()["metrics"]))
    return verdict.value, taken.summary, metrics


def _set_status(database: Database, version: str, status: VersionStatus, at: datetime) -> None:
    with database.session() as session:
        row = session.exec(select(ModelVersion).where(ModelVersion.version == version)).one()
        row.status, row.status_changed_at = status, at
        session.add(row)
        session.commit()


def record_step(
    database: Database,
    rollout_id: int,
    at: datetime,
    *,
    kind: str,
    message: str,
    phase: Phase | None = None,
    weight: int | None = None,
    step_index: int | None = None,
    reason: str | None = None,
    evidence: dict[str, Any] | None = None,
    measurement: tuple[str, str, list[dict[str, Any]]] | None = None,
) -> None:
    """One reconcile pass: maybe a measurement, the new facts, and the event."""
    with database.session() as session:
        rollout = session.get(Rollout, rollout_id)
        assert rollout is not None
        if measurement is not None:
            verdict, summary, metrics = measurement
            session.add(
                Measurement(
                    rollout_id=rollout_id,
                    step_index=rollout.step_index,
                    at=at,
                    weight=rollout.routed_weight,
                    verdict=verdict,
                    summary=summary,
                    metrics=metrics,
                )
            )
        if phase is not None:
            rollout.phase = phase
        if weight is not None:
            rollout.routed_weight = weight
        if step_index is not None:
            rollout.step_index, rollout.step_started_at = step_index, at
        if reason is not None:
            rollout.reason = reason
        if rollout.phase.is_terminal:
            rollout.live_model_id, rollout.finished_at = None, at
        rollout.updated_at = at
        session.add(rollout)
        service.add_event(
            session, rollout, at=at, actor="system", kind=kind, message=message, evidence=evidence
        )
        session.commit()


def write(database: Database, *, model: str = "chat", actor: str = "admin") -> History:
    """Writes the history of ``model`` (registered, with versions v1, v2 and v3)."""
    t0 = utcnow() - timedelta(hours=2)
    tick = timedelta(seconds=6)

    # v1: the first deployment goes straight to stable
    with database.session() as session:
        first = service.start_rollout(
            session, model_name=model, version="v1", strategy=None, actor=actor, now=t0
        )
        assert first.id is not None
        first_id = first.id
    record_step(
        database,
        first_id,
        t0 + tick,
        kind="transition",
        phase=Phase.PROGRESSING,
        weight=100,
        message="weight 100% in force (2 canary, 0 stable replicas)",
    )
    record_step(
        database,
        first_id,
        t0 + 2 * tick,
        kind="transition",
        phase=Phase.SUCCEEDED,
        step_index=1,
        message="succeeded: v1 is stable",
    )
    _set_status(database, "v1", VersionStatus.STABLE, t0 + 2 * tick)

    # v2: canaried, two passing measurements, promoted
    t1 = t0 + timedelta(minutes=20)
    with database.session() as session:
        promoted = service.start_rollout(
            session, model_name=model, version="v2", strategy=STRATEGY, actor=actor, now=t1
        )
        assert promoted.id is not None
        promoted_id = promoted.id
    record_step(
        database,
        promoted_id,
        t1 + tick,
        kind="step",
        phase=Phase.PROGRESSING,
        weight=25,
        step_index=1,
        message="weight 25% in force (1 canary, 2 stable replicas)",
    )
    for i in range(3):
        record_step(
            database,
            promoted_id,
            t1 + (2 + i) * tick * 2,
            kind="step",
            message=f"measurement {i + 1} of 3 at 25%",
            measurement=measured(t1 + (2 + i) * tick * 2, 0.43 + 0.005 * i, 3, seed=10 + i),
        )
    record_step(
        database,
        promoted_id,
        t1 + 10 * tick,
        kind="step",
        step_index=2,
        message="analysis passed at 25% (3 measurements)",
    )
    record_step(
        database,
        promoted_id,
        t1 + 11 * tick,
        kind="transition",
        phase=Phase.PROMOTING,
        weight=100,
        message="weight 100% in force (2 canary, 0 stable replicas)",
    )
    record_step(
        database,
        promoted_id,
        t1 + 12 * tick,
        kind="transition",
        phase=Phase.SUCCEEDED,
        step_index=3,
        message="succeeded: v2 is stable, v1 retired",
    )
    _set_status(database, "v2", VersionStatus.STABLE, t1 + 12 * tick)
    _set_status(database, "v1", VersionStatus.RETIRED, t1 + 12 * tick)

    # v3: canaried at 25%; the second measurement fails on ttft: rolled back
    t2 = t0 + timedelta(minutes=50)
    with database.session() as session:
        rolled = service.start_rollout(
            session, model_name=model, version="v3", strategy=STRATEGY, actor=actor, now=t2
        )
        assert rolled.id is not None
        rolled_id = rolled.id
    record_step(
        database,
        rolled_id,
        t2 + tick,
        kind="step",
        phase=Phase.PROGRESSING,
        weight=25,
        step_index=1,
        message="weight 25% in force (1 canary, 2 stable replicas)",
    )
    record_step(
        database,
        rolled_id,
        t2 + 3 * tick,
        kind="step",
        message="measurement 1 of 3 at 25%",
        measurement=measured(t2 + 3 * tick, 0.44, 4, seed=20),
    )
    failing = measured(t2 + 5 * tick, 0.68, 5, seed=21)
    assert failing[0] == "fail", failing[1]
    reason = f"analysis failed at 25% (1 failed measurements, limit 0): {failing[1]}"
    record_step(
        database,
        rolled_id,
        t2 + 5 * tick,
        kind="transition",
        phase=Phase.ROLLING_BACK,
        reason=reason,
        message=reason,
        measurement=failing,
        evidence={"failed": 1, "limit": 0, "summary": failing[1]},
    )
    record_step(
        database,
        rolled_id,
        t2 + 6 * tick,
        kind="step",
        weight=0,
        message="weight 0% in force: all traffic back on stable v2",
    )
    record_step(
        database,
        rolled_id,
        t2 + 7 * tick,
        kind="transition",
        phase=Phase.ROLLED_BACK,
        message=f"rolled_back: {reason}",
    )
    _set_status(database, "v3", VersionStatus.ROLLED_BACK, t2 + 7 * tick)
    return History(first_id, promoted_id, rolled_id, reason)
