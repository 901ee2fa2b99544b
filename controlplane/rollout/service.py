"""Rollouts as records: start one, read them, and take a person's command.

Nothing here touches the cluster: the reconciler (``reconciler.py``) does, on its next tick.
A command is stored on the rollout and the rollout is made due at once, so the planner is
the single writer of phase transitions.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from controlplane import audit, pagination
from controlplane.analysis.metrics import Catalog
from controlplane.errors import ConflictError, FieldIssue, InvalidRequestError, NotFoundError
from controlplane.kube.budget import replica_shares
from controlplane.models import (
    Command,
    Measurement,
    Model,
    ModelVersion,
    Phase,
    Rollout,
    RolloutEvent,
    RoutingMode,
    VersionStatus,
    utcnow,
)
from controlplane.registry import evals, pools
from controlplane.registry.models import get_model
from controlplane.registry.versions import get_version
from controlplane.rollout.strategy import (
    Analysis,
    Bake,
    Evaluation,
    SetWeight,
    Step,
    Strategy,
    default_strategy,
    first_deploy_strategy,
)

log = logging.getLogger(__name__)


def _log(rollout: Rollout, actor: str, message: str) -> None:
    log.info(
        "rollout %s: %s",
        rollout.id,
        message,
        extra={
            "rollout_id": rollout.id,
            "model": rollout.model,
            "version": rollout.canary_version,
            "actor": actor,
        },
    )


def add_event(
    session: Session,
    rollout: Rollout,
    *,
    at: datetime,
    actor: str,
    kind: str,
    message: str,
    evidence: dict[str, object] | None = None,
) -> RolloutEvent:
    assert rollout.id is not None
    event = RolloutEvent(
        rollout_id=rollout.id,
        at=at,
        actor=actor,
        kind=kind,
        phase=rollout.phase,
        step_index=rollout.step_index,
        weight=rollout.routed_weight,
        message=message,
        evidence=dict(evidence or {}),
    )
    session.add(event)
    return event


def _live_conflict(rollout: Rollout) -> ConflictError:
    return ConflictError(
        f"model {rollout.model!r} already has a live rollout: #{rollout.id} of version "
        f"{rollout.canary_version!r} is {rollout.phase.value}; promote, abort or wait for it "
        "before starting another",
        code="rollout_in_progress",
        context={"rollout_id": rollout.id, "phase": rollout.phase.value},
    )


def start_rollout(
    session: Session,
    *,
    model_name: str,
    version: str,
    strategy: Strategy | None,
    actor: str,
    now: datetime | None = None,
) -> Rollout:
    now = now or utcnow()
    model = get_model(session, model_name, for_update=True)
    _, canary = get_version(session, model_name=model_name, version=version)
    live = session.exec(select(Rollout).where(Rollout.live_model_id == model.id)).first()
    if live is not None:
        raise _live_conflict(live)
    stable = session.exec(
        select(ModelVersion).where(
            ModelVersion.model_id == model.id, ModelVersion.status == VersionStatus.STABLE
        )
    ).first()
    if stable is not None and stable.version == version:
        raise ConflictError(
            f"version {version!r} is already the stable version of "
            f"{model_name!r}: nothing to roll out",
            code="already_stable",
        )
    # the request's strategy, else the model's default, else ours; the first version has
    # nothing to compare with: straight to stable (after its eval floors and ceilings)
    requested = strategy
    if requested is None and model.default_strategy is not None:
        requested = Strategy.model_validate(model.default_strategy)
    chosen = first_deploy_strategy(requested) if stable is None else requested or default_strategy()
    _check_metrics(chosen, adapters=model.base_pool is not None)
    chosen = _pin_suites(session, model, chosen)
    pools.check_room(session, model, version)
    assert model.id is not None
    rollout = Rollout(
        model_id=model.id,
        model=model.name,
        live_model_id=model.id,
        canary_version=version,
        stable_version=stable.version if stable else None,
        phase=Phase.PENDING,
        strategy=chosen.model_dump(mode="json"),
        step_index=0,
        step_started_at=now,
        routed_weight=0,
        stable_replicas=model.replicas if stable else 0,
        next_check_at=now,
        created_at=now,
        created_by=actor,
        updated_at=now,
    )
    session.add(rollout)
    canary.status = VersionStatus.CANARY if stable else canary.status
    canary.status_changed_at = now
    session.add(canary)
    try:
        session.flush()
    except IntegrityError as error:  # a concurrent start for the same model won
        session.rollback()
        live = session.exec(select(Rollout).where(Rollout.live_model_id == model.id)).first()
        if live is not None:
            raise _live_conflict(live) from error
        raise
    message = (
        f"rollout of {version} started by {actor}, from stable {stable.version}"
        if stable
        else f"first deployment of {model_name}: {version} goes straight to stable"
    )
    warning = _replica_warning(model, chosen) if stable is not None else None
    evidence: dict[str, Any] = {"strategy": rollout.strategy}
    if warning is not None:
        message += f"; {warning[0]}"
        evidence["warnings"] = [warning[0]]
        evidence["weights"] = warning[1]
    add_event(
        session,
        rollout,
        at=now,
        actor=actor,
        kind="created",
        message=message,
        evidence=evidence,
    )
    audit.record(
        session,
        actor=actor,
        action="rollout.started",
        at=now,
        model=model.name,
        version=version,
        details={"rollout_id": rollout.id},
    )
    session.commit()
    session.refresh(rollout)
    _log(rollout, actor, message)
    return rollout


def _pin_suites(session: Session, model: Model, strategy: Strategy) -> Strategy:
    """Each evaluation step's suite at the version it will run (its latest now, when the
    step names none): a suite changed mid-rollout does not change the rollout. A canary
    can answer before any user only where it can run without weight: not in ``replicas``
    routing, where its pods are behind the model's one Service."""
    steps: list[Step] = []
    weight = 0
    for index, step in enumerate(strategy.steps):
        if isinstance(step, SetWeight):
            weight = step.weight
        if not isinstance(step, Evaluation):
            steps.append(step)
        else:
            if weight == 0 and model.routing_mode is RoutingMode.REPLICAS and not model.base_pool:
                raise InvalidRequestError(
                    f"step {index} (evaluation) comes before any traffic, but model "
                    f"{model.name!r} uses replicas routing: its canary pods would take a share "
                    "of users' requests as soon as they run. Use gateway-api or "
                    "inference-pool routing, or put the evaluation after a set_weight step",
                    code="evaluation_needs_routing",
                )
            try:
                suite = evals.get_suite(session, step.suite, step.suite_version)
            except NotFoundError as error:
                raise InvalidRequestError(
                    f"step {index} (evaluation): {error.message}", code="eval_suite_not_found"
                ) from error
            steps.append(step.model_copy(update={"suite_version": suite.version}))
    return strategy.model_copy(update={"steps": tuple(steps)})


def _replica_warning(model: Model, strategy: Strategy) -> tuple[str, dict[str, Any]] | None:
    """In replicas routing the weight in force is the canary's share of the replicas: say,
    when the rollout is requested, which requested weights it cannot honor and the nearest
    ones it can (the rollout reports and judges the share actually in force)."""
    if model.routing_mode is not RoutingMode.REPLICAS:
        return None
    weights = [s.weight for s in strategy.steps if isinstance(s, SetWeight)]
    shares, possible = replica_shares(
        weights,
        replicas=model.replicas,
        gpus_per_replica=model.gpus_per_replica,
        gpu_budget=model.gpu_budget,
    )
    off = [(w, s) for w, s in zip(weights, shares, strict=True) if s is not None and abs(s - w) > 2]
    if not off:
        return None
    moves = ", ".join(f"{w}% -> {s}%" for w, s in off)
    text = (
        f"replicas routing splits traffic by replica count: with {model.replicas} stable "
        f"replica(s) the requested weights become {moves} on the canary; shares it can put in "
        f"force: {', '.join(f'{p}%' for p in possible)}. The rollout reports and judges the "
        "share in force; use gateway-api routing for exact weights"
    )
    evidence = {"requested": weights, "in_force": shares, "possible": possible}
    return text, evidence


def rollout_warnings(session: Session, rollout: Rollout) -> list[str]:
    """The warnings recorded when the rollout was requested (on its ``created`` event)."""
    row = session.exec(
        select(RolloutEvent).where(
            RolloutEvent.rollout_id == rollout.id, RolloutEvent.kind == "created"
        )
    ).first()
    warnings = row.evidence.get("warnings", []) if row is not None else []
    return [str(w) for w in warnings] if isinstance(warnings, list) else []


def _check_metrics(strategy: Strategy | None, *, adapters: bool = False) -> None:
    """Unknown metric names are a 400 now, not an error verdict minutes into the rollout
    (an adapter model is judged on the endpoint picker's per-adapter metrics)."""
    catalog = Catalog.for_adapters() if adapters else Catalog()
    for index, step in enumerate(strategy.steps if strategy else ()):
        if isinstance(step, Analysis | Bake) and (step.metrics is not None or step.checks):
            try:
                catalog.resolve(step.metrics, step.check_overrides())
            except ValueError as error:
                raise InvalidRequestError(
                    f"step {index}: {error}",
                    code="unknown_metric",
                    issues=[
                        FieldIssue(
                            field=f"strategy.steps.{index}.metrics",
                            message=str(error),
                            code="unknown_metric",
                        )
                    ],
                ) from error


def get_rollout(session: Session, rollout_id: int) -> Rollout:
    rollout = session.get(Rollout, rollout_id)
    if rollout is None:
        raise NotFoundError(f"rollout {rollout_id} does not exist", code="rollout_not_found")
    return rollout


def list_rollouts(
    session: Session, *, model_name: str, cursor: str | None = None, limit: int = 50
) -> tuple[list[Rollout], str | None]:
    model = get_model(session, model_name)
    statement = select(Rollout).where(Rollout.model_id == model.id)
    statement = pagination.page_after(statement, col(Rollout.id), cursor, limit)
    rows = list(session.exec(statement).all())
    return pagination.split_page(rows, limit, lambda rollout: rollout.id)


COMMAND_PHASES = {
    Command.PROMOTE: (Phase.PENDING, Phase.PROGRESSING, Phase.PAUSED),
    Command.PROMOTE_FULL: (Phase.PENDING, Phase.PROGRESSING, Phase.PAUSED),
    Command.PAUSE: (Phase.PENDING, Phase.PROGRESSING),
    Command.RESUME: (Phase.PAUSED,),
    Command.ABORT: (Phase.PENDING, Phase.PROGRESSING, Phase.PAUSED, Phase.PROMOTING),
}


def request_command(
    session: Session,
    *,
    rollout_id: int,
    command: Command,
    actor: str,
    reason: str = "",
    now: datetime | None = None,
) -> Rollout:
    now = now or utcnow()
    rollout = session.exec(
        select(Rollout).where(Rollout.id == rollout_id).with_for_update()
    ).first()
    if rollout is None:
        raise NotFoundError(f"rollout {rollout_id} does not exist", code="rollout_not_found")
    if rollout.command is Command.ABORT and command is not Command.ABORT:
        # an accepted abort is never replaced: the person who asked for it was told 202
        session.rollback()
        raise ConflictError(
            f"cannot {command.value.replace('_', ' ')} rollout {rollout_id}: an abort "
            f"requested by {rollout.command_by} is pending and is carried out on the next "
            "reconcile; a later command does not replace it",
            code="abort_pending",
            context={"pending_command": Command.ABORT.value, "command_by": rollout.command_by},
        )
    allowed = COMMAND_PHASES[command]
    if rollout.phase not in allowed:
        session.rollback()
        raise ConflictError(
            f"cannot {command.value.replace('_', ' ')} rollout {rollout_id}: it is "
            f"{rollout.phase.value} (allowed when {', '.join(p.value for p in allowed)})",
            code="invalid_phase",
            context={"phase": rollout.phase.value},
        )
    if len(reason) > 1000:
        raise InvalidRequestError("reason is longer than 1000 characters", code="reason_too_long")
    rollout.command, rollout.command_by, rollout.command_reason = command, actor, reason
    rollout.next_check_at = now
    rollout.updated_at = now
    session.add(rollout)
    add_event(
        session,
        rollout,
        at=now,
        actor=actor,
        kind="command",
        message=f"{command.value} requested by {actor}" + (f": {reason}" if reason else ""),
    )
    audit.record(
        session,
        actor=actor,
        action=f"rollout.{command.value}",
        at=now,
        model=rollout.model,
        version=rollout.canary_version,
        details={"rollout_id": rollout_id, "reason": reason},
    )
    session.commit()
    session.refresh(rollout)
    _log(rollout, actor, f"{command.value} requested" + (f": {reason}" if reason else ""))
    return rollout


def list_events(
    session: Session, *, rollout_id: int, cursor: str | None = None, limit: int = 200
) -> tuple[list[RolloutEvent], str | None]:
    get_rollout(session, rollout_id)
    statement = select(RolloutEvent).where(RolloutEvent.rollout_id == rollout_id)
    statement = pagination.page_after(statement, col(RolloutEvent.id), cursor, limit)
    rows = list(session.exec(statement).all())
    return pagination.split_page(rows, limit, lambda event: event.id)


def list_measurements(
    session: Session, *, rollout_id: int, cursor: str | None = None, limit: int = 200
) -> tuple[list[Measurement], str | None]:
    get_rollout(session, rollout_id)
    statement = select(Measurement).where(Measurement.rollout_id == rollout_id)
    statement = pagination.page_after(statement, col(Measurement.id), cursor, limit)
    rows = list(session.exec(statement).all())
    return pagination.split_page(rows, limit, lambda measurement: measurement.id)
