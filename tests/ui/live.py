"""Rollouts at an analysis step, written the way the engine writes them: started through
``controlplane.rollout.service``, the step entered with the planner's ``step`` event (its
evidence names the step it left), looks stored as ``Measurement`` rows whose metrics are
the sequential judge's own verdicts (``SequentialJudge`` on per-pod histograms and counts,
with the step's share of the false-rollback budget split over the metrics, serialized by
``analysis.measure.Measurement.evidence`` as the Prometheus prober does).

Used by the history page's tests and by the CLI's ``rollout status`` test."""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import col, select

from controlplane.analysis.judge import Check, Histogram, MetricVerdict, PodHistograms, Ratio
from controlplane.analysis.judge import combine as combine_verdicts
from controlplane.analysis.measure import Measurement as Taken
from controlplane.analysis.measure import summarize
from controlplane.analysis.sequential import Look, SequentialJudge
from controlplane.db import Database
from controlplane.models import Measurement, Model, ModelVersion, Phase, Rollout, VersionStatus
from controlplane.rollout import service
from controlplane.rollout.strategy import Strategy
from tests.ui import history

JUDGE = SequentialJudge()
# ttft must have had the traffic to catch +25% before it passes (the default is +50%), so
# a few hundred requests are not yet enough: the page has something to say it needs
TTFT = Check("ttft", margin=0.10, detect=0.25)
ERROR_RATE = Check("error_rate", margin=0.005)
BOUNDS = [round(0.05 * i, 2) for i in range(1, 41)] + [float("inf")]
INTERVAL = 60


def strategy(judge: str = "sequential", count: int = 5) -> Strategy:
    return Strategy.model_validate(
        {
            "steps": [
                {"kind": "set_weight", "weight": 25},
                {
                    "kind": "analysis",
                    "judge": judge,
                    "count": count,
                    "interval_seconds": INTERVAL,
                    "metrics": ["ttft", "error_rate"],
                },
                {"kind": "set_weight", "weight": 100},
            ]
        }
    )


Stored = tuple[str, str, list[dict[str, Any]]]  # verdict, summary, metrics as stored


def histogram(median: float, n: int, seed: int) -> Histogram:
    rng = random.Random(seed)
    values = [median * math.exp(rng.gauss(0, 0.35)) for _ in range(n)]
    return Histogram(tuple((le, float(sum(v <= le for v in values))) for le in BOUNDS))


def stored(verdicts: list[MetricVerdict], at: datetime) -> Stored:
    """A look as the prober stores it."""
    verdict = combine_verdicts(verdicts)
    taken = Taken(at, verdict, summarize(verdict, verdicts), tuple(verdicts))
    return verdict.value, taken.summary, json.loads(json.dumps(taken.evidence()["metrics"]))


def sequential_look(
    at: datetime,
    *,
    elapsed: float,
    canary_requests: int,
    canary_ttft: float = 0.44,
    canary_errors: int = 1,
    scraped: bool = True,
    seed: int = 1,
    alpha: float = 0.01,
) -> Stored:
    """One look of the sequential judge over everything since the weight went into force:
    a canary pod against two stable pods with three times its traffic, ttft and error
    rate; ``scraped=False`` is a canary whose series the selector does not find."""
    look = Look(alpha=alpha / 2, elapsed_seconds=elapsed)
    stable_requests = 3 * canary_requests
    canary = PodHistograms(
        (("canary-0", histogram(canary_ttft, canary_requests, seed)),) if scraped else ()
    )
    stable = PodHistograms(
        tuple((f"stable-{i}", histogram(0.42, stable_requests // 2, seed + 10 + i)) for i in (0, 1))
    )
    errors = Ratio(canary_errors, canary_requests, 1 if scraped else 0)
    verdicts = [
        JUDGE.histogram(TTFT, canary, stable, look),
        JUDGE.ratio(ERROR_RATE, errors, Ratio(3 * canary_errors, stable_requests, 2), look),
    ]
    return stored(verdicts, at)


def set_status(database: Database, model: str, version: str, status: VersionStatus) -> None:
    with database.session() as session:
        row = session.exec(
            select(ModelVersion)
            .join(Model, col(Model.id) == col(ModelVersion.model_id))
            .where(Model.name == model, ModelVersion.version == version)
        ).one()
        row.status = status
        session.add(row)
        session.commit()


@dataclass(frozen=True)
class Analysing:
    rollout_id: int
    step_started_at: datetime


def at_analysis(
    database: Database,
    *,
    model: str,
    version: str,
    plan: Strategy,
    started: datetime,
    step_started_at: datetime,
    actor: str = "admin",
) -> Analysing:
    """Start a rollout of ``version`` (the model's stable version must be set) and bring it
    through its first step (25%) into the analysis step at ``step_started_at``."""
    with database.session() as session:
        rollout = service.start_rollout(
            session, model_name=model, version=version, strategy=plan, actor=actor, now=started
        )
        assert rollout.id is not None
        rollout_id = rollout.id
    record(
        database,
        rollout_id,
        started + timedelta(seconds=1),
        kind="transition",
        message="rollout started",
        evidence={"from": "pending", "to": "progressing", "step": 0},
        phase=Phase.PROGRESSING,
    )
    record(
        database,
        rollout_id,
        step_started_at,
        kind="step",
        message="weight 25% in force (1 canary, 2 stable replicas)",
        evidence={"step": 0, "weight": 25},
        step_index=1,
        weight=25,
    )
    return Analysing(rollout_id, step_started_at)


# one reconcile pass that decided something: the new facts and their event
record = history.record_step


def add_look(database: Database, rollout_id: int, at: datetime, look: Stored) -> None:
    """A look as the reconciler stores it (a measure decision writes no event)."""
    verdict, summary, metrics = look
    with database.session() as session:
        rollout = session.get(Rollout, rollout_id)
        assert rollout is not None
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
        session.commit()
