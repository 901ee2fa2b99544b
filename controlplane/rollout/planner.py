"""The rollout planner: from what is stored, what the cluster shows, the measurements of
the current step and the time, decide the one next thing to do. Pure: no I/O, no clock.

The executor applies a :class:`Decision` (make the cluster look like ``target``, measure
if asked, record the new facts and the event in one transaction) and the reconciler calls
the planner again later. Calling it twice with the same inputs gives the same decision, so
a control plane that died half-way through a tick just decides again.

Rules that must hold whatever happens (tests/unit/rollout pin them):

- traffic is never raised to a weight whose canary replicas are not ready;
- a rollback first moves traffic to stable, and only then takes the canary down;
- a canary that crash-loops, cannot pull its image, cannot start, misses its progress
  deadline, or stays unschedulable past a grace period fails the rollout, with that reason;
- missing or too-thin metrics are ``inconclusive`` (a pause for a person after the limit),
  never a pass and never a fail; unreadable metrics are ``error`` (a failure after the
  consecutive-error limit).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from controlplane.analysis.verdict import MeasurementOutcome, Verdict, Window
from controlplane.kube.adapters import PoolState
from controlplane.kube.budget import BudgetError, plan_replicas
from controlplane.kube.observe import ProblemKind, VersionState, WeightReading
from controlplane.kube.render import Track
from controlplane.models import Command, Phase
from controlplane.rollout.drift import Drift, drifts
from controlplane.rollout.strategy import (
    Analysis,
    Bake,
    EvalGate,
    Evaluation,
    Pause,
    SetWeight,
    Step,
)


@dataclass(frozen=True)
class Limits:
    unschedulable_grace: timedelta = timedelta(minutes=5)
    poll: timedelta = timedelta(seconds=5)
    paused_poll: timedelta = timedelta(seconds=30)
    # the longest a live rollout goes without reading back what it owns (a long timed pause
    # or analysis interval included)
    observe_every: timedelta = timedelta(seconds=15)
    # how soon to look again at an evaluation run going on in the background
    evaluation_poll: timedelta = timedelta(seconds=2)


@dataclass(frozen=True)
class Facts:
    """What is stored about a rollout (the planner's memory between ticks)."""

    phase: Phase
    steps: tuple[Step, ...]
    step_index: int
    step_started_at: datetime
    routed_weight: int  # the canary weight last put in force
    replicas: int
    gpus_per_replica: int
    gpu_budget: int | None
    has_stable: bool
    stable_replicas: int  # what the stable Deployment is currently asked to run
    problem_since: datetime | None = None
    outcome_on_rollback: Phase = Phase.ROLLED_BACK
    reason: str = ""
    command: Command | None = None
    command_by: str | None = None
    command_reason: str = ""
    # replicas routing: one Service over both versions, so the weight in force is the
    # canary's share of the ready replicas, whatever the step asked for
    replica_routing: bool = False
    # the passed sequential analysis steps so far: their evidence counts for the rest
    analysis_windows: tuple[Window, ...] = ()
    canary_replicas: int = 0  # what the canary Deployment was last asked to run
    drift_count: int = 0  # someone else's changes undone in this rollout
    stable_short_since: datetime | None = None  # stable below what its share needs


@dataclass(frozen=True)
class Observed:
    canary: VersionState
    stable: VersionState | None
    route: WeightReading | None = None  # the route's weights read back (gateway-api)
    # an adapter model's base pool: which pod holds which adapter (for the executor)
    pool: PoolState | None = None


@dataclass(frozen=True)
class Target:
    """The cluster shape to converge to. The executor applies it in a safe order: when the
    weight goes down, route first and scale after; when it goes up, scale first."""

    canary_replicas: int
    stable_replicas: int
    weight: int
    canary_track: Track = Track.CANARY
    retire_stable: bool = False  # promotion is complete: the old version can go


@dataclass(frozen=True)
class Event:
    kind: str  # "transition", "step", "measure", "hold"
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    facts: Facts  # the facts to store after acting
    target: Target | None
    requeue_after: timedelta
    measure: bool = False
    event: Event | None = None
    actor: str = "system"
    # the current step's measurements are no longer evidence (taken on a changed cluster):
    # the executor marks them with this reason
    discard: str | None = None


def _target(facts: Facts, weight: int, *, track: Track = Track.CANARY) -> Target:
    plan = plan_replicas(
        weight=weight,
        replicas=facts.replicas,
        gpus_per_replica=facts.gpus_per_replica,
        gpu_budget=facts.gpu_budget,
    )
    stable = plan.stable if facts.has_stable else 0
    if weight == 100 and facts.has_stable and _bakes(facts):
        stable = _warm(facts, plan.canary)
    return Target(
        canary_replicas=plan.canary, stable_replicas=stable, weight=weight, canary_track=track
    )


def _bakes(facts: Facts) -> bool:
    """The strategy ends with a watch after promotion: the old stable stays warm at 100%."""
    return bool(facts.steps) and isinstance(facts.steps[-1], Bake)


def _warm(facts: Facts, canary: int) -> int:
    """The old stable's size while the new version carries everything: all of it while the
    GPU budget allows, what is left beside the canary otherwise."""
    if facts.gpu_budget is None or not facts.gpus_per_replica:
        return facts.replicas
    return max(0, min(facts.replicas, facts.gpu_budget // facts.gpus_per_replica - canary))


def _transition(
    facts: Facts,
    phase: Phase,
    message: str,
    *,
    now: datetime,
    actor: str = "system",
    **changes: Any,
) -> Decision:
    new = replace(facts, phase=phase, command=None, command_by=None, command_reason="", **changes)
    return Decision(
        facts=new,
        target=None,
        requeue_after=timedelta(0),
        actor=actor,
        event=Event(
            "transition",
            message,
            {"from": facts.phase.value, "to": phase.value, "step": facts.step_index},
        ),
    )


def rollback(
    facts: Facts,
    reason: str,
    *,
    now: datetime,
    actor: str = "system",
    outcome: Phase = Phase.ROLLED_BACK,
    evidence: dict[str, Any] | None = None,
) -> Decision:
    """Start rolling back (or aborting, with ``outcome``): the reason is kept on the
    rollout and in the event, with the evidence."""
    decision = _transition(
        facts,
        Phase.ROLLING_BACK,
        reason,
        now=now,
        actor=actor,
        reason=reason,
        outcome_on_rollback=outcome,
    )
    assert decision.event is not None
    event = replace(decision.event, evidence={**decision.event.evidence, **(evidence or {})})
    return replace(decision, event=event)


def _advance(
    facts: Facts, now: datetime, message: str, evidence: dict[str, Any] | None = None
) -> Decision:
    if facts.step_index + 1 >= len(facts.steps):
        return _transition(
            facts,
            Phase.PROMOTING,
            f"{message}; every step passed: promoting",
            now=now,
            step_index=len(facts.steps),
        )
    new = replace(
        facts,
        step_index=facts.step_index + 1,
        step_started_at=now,
        command=None,
        command_by=None,
        command_reason="",
    )
    return Decision(
        facts=new,
        target=None,
        requeue_after=timedelta(0),
        event=Event("step", message, {"step": facts.step_index, **(evidence or {})}),
    )


def _hold(
    facts: Facts, target: Target | None, after: timedelta, event: Event | None = None
) -> Decision:
    return Decision(facts=facts, target=target, requeue_after=after, event=event)


def _commands(facts: Facts, now: datetime) -> Decision | None:
    command, actor = facts.command, facts.command_by or "system"
    if command is None:
        return None
    why = f": {facts.command_reason}" if facts.command_reason else ""
    if facts.phase is Phase.PENDING and command is not Command.ABORT:
        return None  # kept: carried out by the pass after the one that starts the rollout
    if command is Command.ABORT and facts.phase is not Phase.ROLLING_BACK:
        return rollback(
            facts, f"aborted by {actor}{why}", now=now, actor=actor, outcome=Phase.ABORTED
        )
    if command is Command.PAUSE and facts.phase is Phase.PROGRESSING:
        return _transition(
            facts,
            Phase.PAUSED,
            f"paused by {actor}{why}",
            now=now,
            actor=actor,
            reason=f"paused by {actor}{why}",
        )
    if command is Command.RESUME and facts.phase is Phase.PAUSED:
        # the step starts over: an analysis measures afresh at the current weight
        return _transition(
            facts,
            Phase.PROGRESSING,
            f"resumed by {actor}",
            now=now,
            actor=actor,
            step_started_at=now,
            reason="",
        )
    if command is Command.PROMOTE_FULL and facts.phase in (Phase.PROGRESSING, Phase.PAUSED):
        return _transition(
            facts,
            Phase.PROMOTING,
            f"promoted by {actor}, skipping the remaining steps{why}",
            now=now,
            actor=actor,
            step_index=len(facts.steps),
            reason="",
        )
    if command is Command.PROMOTE and facts.phase in (Phase.PROGRESSING, Phase.PAUSED):
        decision = _advance(
            replace(facts, phase=Phase.PROGRESSING, reason=""),
            now,
            f"step {facts.step_index} promoted by {actor}{why}",
        )
        return replace(decision, actor=actor)
    # a command that does not apply to this phase is dropped, with a trace
    return Decision(
        facts=replace(facts, command=None, command_by=None, command_reason=""),
        target=None,
        requeue_after=timedelta(0),
        actor=actor,
        event=Event(
            "hold", f"{command.value} by {actor} ignored: the rollout is {facts.phase.value}"
        ),
    )


def _canary_failure(
    facts: Facts, observed: Observed, now: datetime, limits: Limits
) -> Decision | None:
    """Turn what the cluster shows about the canary into a rollback, or remember when a
    problem that may still clear (unschedulable) was first seen."""
    failure = observed.canary.failure
    if failure is None:
        return None
    evidence = {"problem": failure.kind.value, "pod": failure.pod, "message": failure.message}
    if failure.kind is ProblemKind.UNSCHEDULABLE:
        since = facts.problem_since or now
        if now - since < limits.unschedulable_grace:
            held = replace(facts, problem_since=since)
            return _hold(
                held,
                None,
                limits.poll,
                Event("hold", failure.message, evidence) if facts.problem_since is None else None,
            )
        return rollback(
            facts,
            f"canary unschedulable for {int((now - since).total_seconds())}s: {failure.message}",
            now=now,
            evidence=evidence,
        )
    return rollback(facts, f"canary failed: {failure.message}", now=now, evidence=evidence)


def _this_step(facts: Facts, measurements: list[MeasurementOutcome]) -> list[MeasurementOutcome]:
    """The current step's measurements since it (re)started: a step that follows another
    at the same instant must not count the previous step's last measurement."""
    return [
        m
        for m in measurements
        if m.at >= facts.step_started_at and m.step_index in (None, facts.step_index)
    ]


def _analysis(
    facts: Facts,
    step: Analysis,
    measurements: list[MeasurementOutcome],
    now: datetime,
    target: Target,
) -> Decision:
    taken = _this_step(facts, measurements)
    failed = [m for m in taken if m.verdict is Verdict.FAIL]
    inconclusive = [m for m in taken if m.verdict is Verdict.INCONCLUSIVE]
    trailing_errors = _trailing_errors(taken)
    counted = [m for m in taken if m.verdict is not Verdict.ERROR]
    elapsed = now - facts.step_started_at
    evidence: dict[str, Any] = {
        "measurements": len(counted),
        "failed": len(failed),
        "inconclusive": len(inconclusive),
        "consecutive_errors": trailing_errors,
        "judge": step.judge,
        "elapsed_seconds": int(elapsed.total_seconds()),
        "last": taken[-1].summary if taken else None,
    }
    if len(failed) > step.failure_limit:
        return rollback(
            facts,
            f"analysis failed at {facts.routed_weight}% "
            f"({len(failed)} failed measurements, limit {step.failure_limit}): "
            f"{failed[-1].summary}",
            now=now,
            evidence=evidence,
        )
    if trailing_errors > step.consecutive_error_limit:
        return rollback(
            facts,
            f"metrics unavailable: {trailing_errors} measurements in a row "
            f"could not be taken: {taken[-1].summary}",
            now=now,
            evidence=evidence,
        )
    if step.judge == "sequential":
        decided = _sequential_outcome(facts, step, counted, elapsed, now, evidence)
        if decided is not None:
            return decided
    else:
        if len(inconclusive) > step.inconclusive_limit:
            reason = (
                f"analysis inconclusive at {facts.routed_weight}% ({len(inconclusive)} "
                f"inconclusive measurements, limit {step.inconclusive_limit}): "
                f"{inconclusive[-1].summary}; promote, resume or abort"
            )
            return _pause(facts, reason, now, evidence)
        if len(counted) >= step.count:
            return _advance(
                facts,
                now,
                f"analysis passed at {facts.routed_weight}% ({len(counted)} measurements)",
                evidence,
            )
    return _next_look(facts, taken, step.interval_seconds, now, target)


def _trailing_errors(taken: list[MeasurementOutcome]) -> int:
    """Looks in a row, the latest last, that could not be taken (metrics unavailable)."""
    count = 0
    for m in reversed(taken):
        if m.verdict is not Verdict.ERROR:
            break
        count += 1
    return count


def _next_look(
    facts: Facts,
    taken: list[MeasurementOutcome],
    interval_seconds: int,
    now: datetime,
    target: Target,
    *,
    until: datetime | None = None,
) -> Decision:
    """Look now when an interval has passed since the last look (or the step's start),
    else wait for that (or for ``until``, the step's end, if sooner)."""
    interval = timedelta(seconds=interval_seconds)
    due = (taken[-1].at if taken else facts.step_started_at) + interval
    if now >= due:
        return Decision(facts=facts, target=target, requeue_after=interval, measure=True)
    return _hold(facts, target, (due if until is None else min(due, until)) - now)


def _sequential_outcome(
    facts: Facts,
    step: Analysis,
    counted: list[MeasurementOutcome],
    elapsed: timedelta,
    now: datetime,
    evidence: dict[str, Any],
) -> Decision | None:
    """A sequential analysis passes once it has looked ``count`` times and its last look
    (which covers the whole step) passes; it keeps looking while only more traffic is
    missing, up to its maximum duration; it pauses for a person when waiting cannot help
    (no series, no requests, an unresolvable quantile) or the time is up."""
    if len(counted) < step.count:
        return None
    last = counted[-1]
    minutes = elapsed.total_seconds() / 60
    took = f"{minutes:.0f} min" if minutes >= 2 else f"{elapsed.total_seconds():.0f}s"
    if last.verdict is Verdict.PASS:
        window = Window(facts.step_index, facts.step_started_at, now, facts.routed_weight)
        return _advance(
            replace(facts, analysis_windows=(*facts.analysis_windows, window)),
            now,
            f"analysis passed at {facts.routed_weight}% ({len(counted)} looks over {took})",
            evidence,
        )
    kind = last.inconclusive
    if kind is not None and not kind.waits_for_traffic:
        reason = (
            f"analysis inconclusive at {facts.routed_weight}% ({kind.value}): "
            f"{last.summary}; fix the cause, then resume, or promote or abort"
        )
        return _pause(facts, reason, now, evidence)
    if elapsed.total_seconds() >= step.max_duration:
        reason = (
            f"analysis inconclusive at {facts.routed_weight}% after {minutes:.0f} min (the "
            f"step's maximum): {last.summary}; promote, resume (to look again) or abort"
        )
        return _pause(facts, reason, now, evidence)
    return None


def _bake(
    facts: Facts,
    step: Bake,
    measurements: list[MeasurementOutcome],
    now: datetime,
    target: Target,
) -> Decision:
    """The watch after promotion: a fail (the new version worse than the old one was before
    the rollout, or over an absolute bound) rolls back to the warm old version at once;
    metrics that stay unreadable roll back too (no watch is no promotion); at the end of
    the duration the rollout is promoted and the old version retired."""
    taken = _this_step(facts, measurements)
    failed = [m for m in taken if m.verdict is Verdict.FAIL]
    trailing_errors = _trailing_errors(taken)
    elapsed = now - facts.step_started_at
    evidence: dict[str, Any] = {
        "measurements": len(taken),
        "failed": len(failed),
        "consecutive_errors": trailing_errors,
        "elapsed_seconds": int(elapsed.total_seconds()),
        "after_promotion": True,
        "last": taken[-1].summary if taken else None,
    }
    if failed:
        return rollback(
            facts,
            f"rolled back after promotion: the bake found {failed[-1].summary}",
            now=now,
            evidence=evidence,
        )
    if trailing_errors > step.consecutive_error_limit:
        return rollback(
            facts,
            f"rolled back after promotion: metrics unavailable during the bake "
            f"({trailing_errors} looks in a row): {taken[-1].summary}",
            now=now,
            evidence=evidence,
        )
    if elapsed.total_seconds() >= step.duration_seconds:
        return _advance(
            facts,
            now,
            f"bake passed: {len(taken)} looks over {elapsed.total_seconds() / 60:.0f} min at "
            "100%, no breach",
            evidence,
        )
    end = facts.step_started_at + timedelta(seconds=step.duration_seconds)
    return _next_look(facts, taken, step.interval_seconds, now, target, until=end)


def _pause(facts: Facts, reason: str, now: datetime, evidence: dict[str, Any]) -> Decision:
    """Wait for a person, saying why, with the evidence on the event."""
    decision = _transition(facts, Phase.PAUSED, reason, now=now, reason=reason)
    assert decision.event is not None
    return replace(
        decision, event=replace(decision.event, evidence={**decision.event.evidence, **evidence})
    )


def _decided_once(
    facts: Facts, last: MeasurementOutcome, taken: int, now: datetime, what: str, unsure: str
) -> Decision:
    """A step that one measurement decides: pass goes on, fail rolls back, anything else
    waits for a person (``unsure`` says what each command would do)."""
    evidence = {"measurements": taken, "last": last.summary}
    if last.verdict is Verdict.PASS:
        return _advance(facts, now, f"{what} passed: {last.summary}", evidence)
    if last.verdict is Verdict.FAIL:
        return rollback(facts, f"{what} failed: {last.summary}", now=now, evidence=evidence)
    return _pause(facts, f"{what} inconclusive: {last.summary}; {unsure}", now, evidence)


def _eval_gate(
    facts: Facts, measurements: list[MeasurementOutcome], now: datetime, target: Target
) -> Decision:
    """One measurement of the recorded eval scores decides (a missing score waits)."""
    taken = _this_step(facts, measurements)
    if not taken:
        return Decision(facts=facts, target=target, requeue_after=timedelta(0), measure=True)
    unsure = "promote to skip the gate, resume to judge the same recorded scores again, or abort"
    return _decided_once(facts, taken[-1], len(taken), now, "eval gate", unsure)


def _evaluation(
    facts: Facts,
    observed: Observed,
    measurements: list[MeasurementOutcome],
    now: datetime,
    limits: Limits,
    current: Target,
) -> Decision:
    """Both versions answer the suite: the canary runs (one replica, or its adapter loaded)
    whatever its weight, the run is asked for once it is ready, and its one measurement
    decides: pass goes on, fail rolls back, inconclusive waits for a person."""
    taken = _this_step(facts, measurements)
    if taken:
        unsure = "resume to run the suite again, promote to skip it, or abort"
        return _decided_once(facts, taken[-1], len(taken), now, "evaluation", unsure)
    target = replace(current, canary_replicas=max(current.canary_replicas, 1))
    if facts.gpu_budget is not None and facts.gpus_per_replica:
        needed = (target.canary_replicas + target.stable_replicas) * facts.gpus_per_replica
        if needed > facts.gpu_budget:
            return rollback(
                facts,
                f"GPU budget: the evaluation needs {target.canary_replicas} canary beside "
                f"{target.stable_replicas} stable replicas x {facts.gpus_per_replica} GPUs = "
                f"{needed} GPUs, over the model's gpu_budget of {facts.gpu_budget}",
                now=now,
            )
    held = replace(facts, canary_replicas=target.canary_replicas)
    if observed.canary.ready < 1 or (observed.stable is not None and observed.stable.ready < 1):
        return _hold(held, target, limits.poll)
    return Decision(facts=held, target=target, requeue_after=limits.poll, measure=True)


def plan(
    facts: Facts,
    observed: Observed,
    measurements: list[MeasurementOutcome],
    now: datetime,
    limits: Limits = Limits(),
) -> Decision:
    if facts.phase.is_terminal:
        return _hold(facts, None, timedelta(days=365))

    commanded = _commands(facts, now)
    if commanded is not None:
        return commanded

    drift = drifts(facts, observed) if facts.phase is not Phase.PENDING else []
    if facts.phase is Phase.ROLLING_BACK:
        decision = _planrollback(facts, observed, now, limits)
        if drift and decision.event is None:  # the rollback's own apply undoes it
            decision = replace(decision, event=_drift_event(drift, "; the rollback goes on"))
        return decision

    failed = _canary_failure(facts, observed, now, limits)
    if failed is not None:
        return failed
    if facts.problem_since is not None:
        facts = replace(facts, problem_since=None)

    if facts.phase is Phase.PENDING:
        started = _transition(
            facts, Phase.PROGRESSING, "rollout started", now=now, step_index=0, step_started_at=now
        )
        # a pause or promote given while it was pending (accepted with 202) stays for the
        # next pass, which follows at once
        kept = replace(
            started.facts,
            command=facts.command,
            command_by=facts.command_by,
            command_reason=facts.command_reason,
        )
        return replace(started, facts=kept)
    if drift:
        return _on_drift(facts, drift, measurements, now, limits)
    if facts.phase is Phase.PROMOTING:
        return _plan_promotion(facts, observed, now, limits)

    try:
        current = _target(facts, facts.routed_weight)
    except BudgetError as error:
        return rollback(facts, f"GPU budget: {error}", now=now)
    guarded = _guard_stable(facts, observed, measurements, now, limits, current)
    if guarded is not None:
        return guarded
    if facts.stable_short_since is not None:
        facts = replace(facts, stable_short_since=None)
    if facts.phase is Phase.PAUSED:
        return _hold(facts, current, limits.paused_poll)

    step = facts.steps[facts.step_index]
    if isinstance(step, SetWeight):
        return _plan_set_weight(facts, step, observed, now, limits, current)
    if isinstance(step, Pause):
        if step.duration_seconds is None:
            reason = f"step {facts.step_index}: paused until a person promotes"
            return _transition(facts, Phase.PAUSED, reason, now=now, reason=reason)
        until = facts.step_started_at + timedelta(seconds=step.duration_seconds)
        if now >= until:
            return _advance(facts, now, f"paused {step.duration_seconds}s")
        return _hold(facts, current, min(until - now, limits.observe_every))
    if isinstance(step, EvalGate):
        return _eval_gate(facts, measurements, now, current)
    if isinstance(step, Evaluation):
        return _evaluation(facts, observed, measurements, now, limits, current)
    if isinstance(step, Bake):
        decision = _bake(facts, step, measurements, now, current)
    else:
        decision = _analysis(facts, step, measurements, now, current)
    if decision.target is not None and decision.requeue_after > limits.observe_every:
        decision = replace(decision, requeue_after=limits.observe_every)
    return decision


def _drift_event(drift: list[Drift], then: str) -> Event:
    text = "; ".join(d.describe() for d in drift)
    evidence = {"drift": [d.evidence() for d in drift]}
    return Event("drift", f"drift: {text}: restored{then}", evidence)


def _restore(facts: Facts) -> Target:
    """What the control plane last decided, to apply again over someone else's change."""
    return Target(
        canary_replicas=facts.canary_replicas,
        stable_replicas=facts.stable_replicas if facts.has_stable else 0,
        weight=facts.routed_weight,
    )


def _on_drift(
    facts: Facts,
    drift: list[Drift],
    measurements: list[MeasurementOutcome],
    now: datetime,
    limits: Limits,
) -> Decision:
    """Someone else changed what we own: restore our decision and say who changed what.
    The second time in a rollout, stop fighting: restore once more and wait for a person.
    An analysis under way starts its evidence again: what it saw since the step began ran
    on a cluster that was not the one it was judging."""
    counted = replace(facts, drift_count=facts.drift_count + 1)
    if facts.drift_count >= 1 and facts.phase is not Phase.PAUSED:
        text = "; ".join(d.describe() for d in drift)
        reason = (
            f"drift came back: {text}; the control plane restored its decision again and "
            "pauses: stop the other writer (or make its change part of the strategy), then "
            "resume, promote or abort"
        )
        paused = _pause(counted, reason, now, {"drift": [d.evidence() for d in drift]})
        return replace(paused, target=_restore(facts))
    step = facts.steps[facts.step_index] if facts.step_index < len(facts.steps) else None
    analysing = facts.phase is Phase.PROGRESSING and isinstance(step, Analysis)
    then = ""
    discard = None
    if analysing:
        taken = len(_this_step(facts, measurements))
        then = f"; the analysis starts its evidence again ({taken} looks set aside)"
        discard = f"taken while {drift[0].describe()}"
        counted = replace(counted, step_started_at=now)
    return Decision(
        facts=counted,
        target=_restore(facts),
        requeue_after=limits.poll,
        event=_drift_event(drift, then),
        discard=discard,
    )


def _guard_stable(
    facts: Facts,
    observed: Observed,
    measurements: list[MeasurementOutcome],
    now: datetime,
    limits: Limits,
    current: Target,
) -> Decision | None:
    """Stable must be able to take its traffic back at any moment: below the ready replicas
    its share needs, the rollout holds its weight (no step advances, no look is taken),
    keeps asking for stable's size, and says why; when stable is back, an analysis under
    way starts its evidence again."""
    stable = observed.stable
    if (
        not facts.has_stable
        or stable is None
        or facts.phase
        not in (
            Phase.PROGRESSING,
            Phase.PAUSED,
        )
    ):
        return None
    # what its share needs, or what the rollout itself left it (a stable shrunk on purpose
    # to make GPU room is the planner's move, not a loss)
    needed = min(_stable_needed(facts, facts.routed_weight), facts.stable_replicas)
    if stable.ready >= needed:
        if facts.stable_short_since is None:
            return None
        step = facts.steps[facts.step_index] if facts.step_index < len(facts.steps) else None
        restart = facts.phase is Phase.PROGRESSING and isinstance(step, Analysis)
        back = replace(
            facts,
            stable_short_since=None,
            step_started_at=now if restart else facts.step_started_at,
        )
        recovered = Event(
            "hold",
            f"stable is back: {stable.ready} of {needed} ready replicas its share needs"
            + ("; the analysis starts its evidence again" if restart else ""),
            {"stable_ready": stable.ready, "stable_needed": needed, "weight": facts.routed_weight},
        )
        return Decision(
            back,
            current,
            timedelta(0),
            event=recovered,
            discard="taken while stable was short of ready replicas" if restart else None,
        )
    event: Event | None = None
    if facts.stable_short_since is None:
        event = Event(
            "hold",
            f"stable has {stable.ready} of the {needed} ready replicas its share needs: "
            f"holding at {facts.routed_weight}%, no step advances until stable is back "
            f"({stable.summary()})",
            {
                "stable_ready": stable.ready,
                "stable_desired": stable.desired,
                "stable_needed": needed,
                "weight": facts.routed_weight,
            },
        )
    held = replace(facts, stable_short_since=facts.stable_short_since or now)
    restore = replace(current, stable_replicas=max(current.stable_replicas, facts.stable_replicas))
    return Decision(held, restore, limits.poll, event=event)


def _stable_needed(facts: Facts, weight: int) -> int:
    """Stable replicas needed to carry the traffic stable gets at ``weight``."""
    if not facts.has_stable:
        return 0
    return -(-facts.replicas * (100 - weight) // 100)


def _in_force(facts: Facts, weight: int, canary: int, stable: int) -> int:
    """The canary's share of traffic once ``weight`` is applied: the weight itself behind a
    gateway, the canary's share of the replicas when one Service spans both versions."""
    if not facts.replica_routing or weight in (0, 100):
        # at 100% the model's Service selects the canary alone (a warm old stable waits
        # out of rotation); at 0% there is no canary replica in it
        return weight
    total = canary + stable
    return round(100 * canary / total) if total else 0


def _toward(facts: Facts, weight: int, observed: Observed) -> tuple[Facts, Target, bool]:
    """One move toward ``weight``: scale the canary up (within the GPU budget, never taking
    from stable the replicas its current traffic needs), then route to the canary only what
    its ready replicas can carry. Returns the facts to store, the target, and whether
    ``weight`` is now in force. Raises BudgetError if ``weight`` can never fit."""
    wanted = _target(facts, weight)
    stable_floor = _stable_needed(facts, facts.routed_weight)
    stable = min(facts.stable_replicas, max(wanted.stable_replicas, stable_floor))
    canary = observed.canary
    ready = canary.ready if canary.exists and canary.observed else 0
    canary_max = wanted.canary_replicas
    if facts.gpu_budget is not None and facts.gpus_per_replica:
        fits = facts.gpu_budget // facts.gpus_per_replica
        canary_max = min(canary_max, fits - stable)
        if canary_max <= ready < wanted.canary_replicas:
            # no room to surge: stable gives the canary one replica at a time (a replica
            # it can spare first; else one it needs, the budget's price: its share is over
            # its ready replicas by one until the canary's new replica is ready and takes
            # traffic)
            spare = max(wanted.stable_replicas, stable_floor)
            stable = spare if spare < stable else max(wanted.stable_replicas, stable - 1)
            canary_max = min(wanted.canary_replicas, fits - stable)
    if ready >= wanted.canary_replicas:
        in_force = _in_force(facts, weight, wanted.canary_replicas, wanted.stable_replicas)
        done = replace(wanted, canary_track=Track.CANARY, weight=in_force)
        return (
            replace(facts, routed_weight=in_force, stable_replicas=wanted.stable_replicas),
            done,
            True,
        )
    carry = min(weight, 100 * ready // facts.replicas)
    if facts.replica_routing:  # the Service spans both: the ready replicas' share
        carry = round(100 * ready / (ready + stable)) if ready + stable else 0
    routed = max(facts.routed_weight, carry)
    # with more traffic on the canary, stable may shrink to make room: next tick
    stable_after = min(stable, max(wanted.stable_replicas, _stable_needed(facts, routed)))
    target = Target(
        canary_replicas=max(canary_max, ready), stable_replicas=stable_after, weight=routed
    )
    return replace(facts, routed_weight=routed, stable_replicas=stable_after), target, False


def _ready(observed: Observed) -> dict[str, int]:
    """The ready replicas on both sides, for a traffic move's event."""
    stable = observed.stable
    return {
        "canary_ready": observed.canary.ready if observed.canary.exists else 0,
        "stable_ready": stable.ready if stable is not None and stable.exists else 0,
    }


def _plan_set_weight(
    facts: Facts,
    step: SetWeight,
    observed: Observed,
    now: datetime,
    limits: Limits,
    current: Target,
) -> Decision:
    try:
        new_facts, target, reached = _toward(facts, step.weight, observed)
    except BudgetError as error:
        return rollback(facts, f"GPU budget: {error}", now=now)
    if not reached:
        event = None
        if new_facts.routed_weight != facts.routed_weight:
            event = Event(
                "step",
                f"weight {new_facts.routed_weight}% in force on the way to "
                f"{step.weight}% (the ready canary replicas carry that much)",
                {"weight": new_facts.routed_weight, **_ready(observed)},
            )
        return _hold(new_facts, target, limits.poll, event)
    in_force = new_facts.routed_weight
    replicas = f"{target.canary_replicas} canary, {target.stable_replicas} stable replicas"
    if in_force == step.weight:
        message = f"weight {step.weight}% in force ({replicas})"
    else:
        message = (
            f"weight {in_force}% in force, {step.weight}% requested: replicas routing splits "
            f"traffic by ready replicas ({replicas})"
        )
    decision = _advance(
        new_facts,
        now,
        message,
        {"weight": in_force, "requested_weight": step.weight, **_ready(observed)},
    )
    return replace(decision, target=target)


def _plan_promotion(facts: Facts, observed: Observed, now: datetime, limits: Limits) -> Decision:
    try:
        new_facts, target, reached = _toward(facts, 100, observed)
    except BudgetError as error:
        return rollback(facts, f"GPU budget: {error}", now=now)
    if not reached:
        return _hold(new_facts, target, limits.poll)
    done = Target(
        canary_replicas=facts.replicas,
        stable_replicas=0,
        weight=100,
        canary_track=Track.STABLE,
        retire_stable=facts.has_stable,
    )
    decision = _transition(
        replace(new_facts, stable_replicas=0),
        Phase.SUCCEEDED,
        "promoted: the canary is the new stable",
        now=now,
    )
    return replace(decision, target=done)


def _planrollback(facts: Facts, observed: Observed, now: datetime, limits: Limits) -> Decision:
    """Traffic back on stable without ever asking a version to carry more than its ready
    replicas can, in either direction.

    Stable is asked for its full size at once (within the GPU budget beside what the canary
    still holds). The canary keeps only the share stable's *ready* replicas cannot carry
    yet (all of it goes at once when stable is whole, the usual case), and only the replicas
    that share needs; as stable's pods become ready its share falls to zero and the canary
    goes. With no GPU room for stable beside the canary, the canary gives up one replica at a
    time, stable takes its traffic (over its ready capacity until the freed GPU's replica is
    ready: the one moment the budget forces) and grows into the freed GPUs. Each traffic
    move is an event with the weight routed and the ready replicas on both sides."""
    if not facts.has_stable:  # a first deployment has nothing to go back to
        target = Target(canary_replicas=0, stable_replicas=0, weight=0)
        rolled = replace(facts, routed_weight=0, stable_replicas=0, canary_replicas=0)
        if not observed.canary.exists or observed.canary.ready == 0:
            return _rolled_back(rolled, target, now)
        return _hold(rolled, target, limits.poll)
    replicas = facts.replicas
    canary = observed.canary
    stable = observed.stable
    canary_ready = canary.ready if canary.exists else 0
    stable_ready = stable.ready if stable is not None and stable.exists else 0
    canary_held = max(facts.canary_replicas, canary.desired if canary.exists else 0)
    weight = _rollback_weight(replicas, canary_ready, stable_ready)
    canary_keep = min(canary_held, -(-replicas * weight // 100)) if weight > 0 else 0
    fits = (
        facts.gpu_budget // facts.gpus_per_replica
        if facts.gpu_budget is not None and facts.gpus_per_replica
        else None
    )
    stable_target = replicas if fits is None else max(0, min(replicas, fits - canary_keep))
    squeezed = False
    if (
        fits is not None
        and canary_keep > 0
        and stable_target < replicas
        and stable_ready >= stable_target
    ):
        # no room to grow stable beside the canary: the canary gives up one replica
        squeezed = True
        canary_keep -= 1
        weight = min(weight, 100 * canary_keep // replicas) if canary_keep else 0
        stable_target = min(replicas, fits - canary_keep)
    in_force = weight
    if facts.replica_routing:
        total = canary_keep + stable_ready
        in_force = round(100 * min(canary_keep, canary_ready) / total) if total else 0
    target = Target(canary_replicas=canary_keep, stable_replicas=stable_target, weight=weight)
    rolled = replace(
        facts,
        routed_weight=in_force,
        stable_replicas=stable_target,
        canary_replicas=canary_keep,
    )
    done = (not canary.exists or canary_ready == 0) and stable_ready >= replicas and weight == 0
    if done and canary_keep == 0:
        return _rolled_back(rolled, target, now)
    event = None
    if in_force != facts.routed_weight or squeezed:
        why = (
            "no GPU room beside the canary: it gives up a replica, stable takes its traffic "
            "and grows into the freed GPU"
            if squeezed
            else "the canary keeps only what stable's ready replicas cannot carry yet"
            if in_force
            else "stable's ready replicas carry it all"
        )
        event = Event(
            "step",
            f"rollback: {in_force}% on the canary ({canary_ready} ready, keeping "
            f"{canary_keep}), stable {stable_ready} of {replicas} ready: {why}",
            {
                "weight": in_force,
                "canary_ready": canary_ready,
                "canary_replicas": canary_keep,
                "stable_ready": stable_ready,
                "stable_replicas": stable_target,
            },
        )
    return _hold(rolled, target, limits.poll, event)


def _rolled_back(facts: Facts, target: Target, now: datetime) -> Decision:
    """The rollback (or abort) is complete: its outcome, with the reason it began with."""
    decision = _transition(
        facts,
        facts.outcome_on_rollback,
        f"{facts.outcome_on_rollback.value}: {facts.reason}",
        now=now,
    )
    return replace(decision, target=target)


def _rollback_weight(replicas: int, canary_ready: int, stable_ready: int) -> int:
    """The canary's share while rolling back: what stable's ready replicas cannot carry (a
    version with k of its ``replicas`` ready carries k / replicas of the traffic); when
    neither can carry its part, traffic is split by what each can carry."""
    stable_can = min(100, 100 * stable_ready // replicas)
    if stable_can >= 100 or canary_ready == 0:
        return 0
    canary_can = min(100, 100 * canary_ready // replicas)
    needed = 100 - stable_can
    if canary_can >= needed:
        return needed
    return round(100 * canary_can / (canary_can + stable_can)) if canary_can + stable_can else 0
