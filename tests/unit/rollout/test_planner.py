"""The rollout planner, exhaustively and without I/O: each test is one rule users rely on."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from controlplane.analysis.verdict import Inconclusive, MeasurementOutcome, Verdict
from controlplane.kube.observe import Problem, ProblemKind, VersionState, WeightReading
from controlplane.kube.render import Track
from controlplane.models import Command, Phase
from controlplane.rollout.planner import Decision, Facts, Limits, Observed, plan
from controlplane.rollout.strategy import (
    Analysis,
    Bake,
    EvalCheck,
    EvalGate,
    Evaluation,
    Pause,
    SetWeight,
    Strategy,
    default_strategy,
    first_deploy_strategy,
)

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def facts(**overrides: object) -> Facts:
    base = Facts(
        phase=Phase.PROGRESSING,
        steps=default_strategy().steps,
        step_index=0,
        step_started_at=T0,
        routed_weight=0,
        replicas=2,
        gpus_per_replica=1,
        gpu_budget=4,
        has_stable=True,
        stable_replicas=2,
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


def state(
    ready: int = 0, desired: int = 0, *, exists: bool = True, problems: tuple[Problem, ...] = ()
) -> VersionState:
    return VersionState(
        name="chat-v2", exists=exists, desired=desired, ready=ready, problems=problems
    )


def seen(canary_ready: int = 0, stable_ready: int = 2, **kwargs: object) -> Observed:
    return Observed(
        canary=state(canary_ready, canary_ready, **kwargs),  # type: ignore[arg-type]
        stable=state(stable_ready, stable_ready),
    )


def m(
    at: datetime, verdict: Verdict, summary: str = "ttft p95 canary 0.21s vs stable 0.20s"
) -> MeasurementOutcome:
    return MeasurementOutcome(at=at, verdict=verdict, summary=summary)


def run(
    f: Facts,
    observed: Observed,
    measurements: list[MeasurementOutcome] | None = None,
    now: datetime = T0,
) -> Decision:
    return plan(f, observed, measurements or [], now)


# --- starting -------------------------------------------------------------------------


def test_pending_starts_at_the_first_step() -> None:
    d = run(facts(phase=Phase.PENDING, step_index=0), seen())
    assert d.facts.phase is Phase.PROGRESSING
    assert d.facts.step_index == 0
    assert d.event is not None
    assert d.event.kind == "transition"


@pytest.mark.parametrize("command", [Command.PAUSE, Command.PROMOTE, Command.PROMOTE_FULL])
def test_a_command_given_while_pending_is_carried_out_once_started_not_dropped(
    command: Command,
) -> None:
    pending = facts(phase=Phase.PENDING, command=command, command_by="bob")
    started = run(pending, seen())
    assert started.facts.phase is Phase.PROGRESSING
    assert started.requeue_after == timedelta(0), "the command's pass follows at once"
    assert (started.facts.command, started.facts.command_by) == (command, "bob")
    then = run(started.facts, seen())
    assert then.actor == "bob"
    assert then.facts.command is None, "carried out, then cleared"
    if command is Command.PAUSE:
        assert then.facts.phase is Phase.PAUSED
    elif command is Command.PROMOTE_FULL:
        assert then.facts.phase is Phase.PROMOTING
    else:
        assert then.facts.step_index == 1


def test_an_abort_given_while_pending_ends_the_rollout_at_once() -> None:
    d = run(facts(phase=Phase.PENDING, command=Command.ABORT, command_by="bob"), seen())
    assert d.facts.phase is Phase.ROLLING_BACK
    assert d.facts.outcome_on_rollback is Phase.ABORTED


# --- set_weight: never route to an unready canary -------------------------------------


def test_set_weight_scales_the_canary_first_and_routes_nothing_yet() -> None:
    d = run(facts(), seen(canary_ready=0))
    assert d.target is not None
    assert d.target.canary_replicas == 1
    assert d.target.weight == 0, "no traffic before a canary replica is ready"
    assert d.facts.step_index == 0
    assert d.facts.routed_weight == 0


def test_set_weight_routes_once_the_needed_canary_replicas_are_ready() -> None:
    d = run(facts(), seen(canary_ready=1))
    assert d.target is not None
    assert d.target.weight == 10
    assert d.facts.routed_weight == 10
    assert d.facts.step_index == 1
    assert d.facts.step_started_at == T0


def test_replicas_routing_reports_and_keeps_the_share_actually_in_force() -> None:
    d = run(facts(replica_routing=True), seen(canary_ready=1))
    assert d.facts.routed_weight == 33, "1 canary beside 2 stable replicas takes a third"
    assert d.target is not None
    assert d.target.weight == 33
    assert d.event is not None
    assert "weight 33% in force, 10% requested" in d.event.message
    assert d.event.evidence["requested_weight"] == 10
    full = run(
        facts(replica_routing=True, phase=Phase.PROMOTING, routed_weight=33, step_index=7),
        seen(canary_ready=2),
    )
    assert full.target is not None
    assert full.target.weight == 100


def test_unobserved_canary_spec_is_not_trusted() -> None:
    observed = Observed(canary=replace(state(1, 1), observed=False), stable=state(2, 2))
    d = run(facts(), observed)
    assert d.target is not None
    assert d.target.weight == 0


@pytest.mark.parametrize("ready", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("weight", [10, 25, 50, 75, 100])
def test_routed_weight_never_exceeds_what_ready_canary_replicas_carry(
    ready: int, weight: int
) -> None:
    f = facts(
        replicas=4,
        gpus_per_replica=1,
        gpu_budget=None,
        stable_replicas=4,
        steps=(SetWeight(weight=weight),),
    )
    d = run(f, seen(canary_ready=ready, stable_ready=4))
    assert d.target is not None
    needed = -(-4 * weight // 100)
    if ready >= needed:
        assert d.facts.routed_weight == weight
    else:
        assert d.target.weight <= 100 * ready // 4
        assert d.facts.routed_weight == d.target.weight


def test_budget_without_surge_room_moves_one_replica_at_a_time() -> None:
    # 4 replicas x 1 GPU with a budget of 4: no room for any canary beside a full stable
    f = facts(replicas=4, gpu_budget=4, stable_replicas=4, steps=(SetWeight(weight=50),))
    d = run(f, seen(canary_ready=0, stable_ready=4))
    assert d.target is not None
    assert (d.target.canary_replicas, d.target.stable_replicas, d.target.weight) == (1, 3, 0)
    assert d.target.canary_replicas + d.target.stable_replicas <= 4, "within the budget"
    d = run(d.facts, seen(canary_ready=1, stable_ready=3))
    assert d.target is not None
    assert d.target.weight == 25, "traffic follows the canary's ready replica"
    d = run(d.facts, seen(canary_ready=1, stable_ready=3))
    assert d.target is not None
    assert (d.target.canary_replicas, d.target.stable_replicas) == (2, 2)
    reached = run(d.facts, seen(canary_ready=2, stable_ready=2))
    assert reached.facts.routed_weight == 50
    assert reached.facts.phase is Phase.PROMOTING


def test_budget_that_can_never_fit_the_weight_rolls_back_with_numbers() -> None:
    f = facts(replicas=2, gpus_per_replica=4, gpu_budget=8, stable_replicas=2)
    d = run(f, seen())
    assert d.facts.phase is Phase.ROLLING_BACK
    assert "GPU budget" in d.facts.reason
    assert "12 GPUs" in d.facts.reason


# --- pause ---------------------------------------------------------------------------


def test_timed_pause_waits_then_advances() -> None:
    f = facts(
        steps=(SetWeight(weight=10), Pause(duration_seconds=60), SetWeight(weight=100)),
        step_index=1,
        routed_weight=10,
    )
    early = run(f, seen(canary_ready=1), now=T0 + timedelta(seconds=30))
    assert early.facts.step_index == 1
    assert early.requeue_after == timedelta(seconds=15), "it reads the cluster back meanwhile"
    late = run(f, seen(canary_ready=1), now=T0 + timedelta(seconds=60))
    assert late.facts.step_index == 2


def test_untimed_pause_waits_for_a_person() -> None:
    f = facts(
        steps=(SetWeight(weight=10), Pause(), SetWeight(weight=100)), step_index=1, routed_weight=10
    )
    d = run(f, seen(canary_ready=1))
    assert d.facts.phase is Phase.PAUSED
    again = run(d.facts, seen(canary_ready=1), now=T0 + timedelta(days=2))
    assert again.facts.phase is Phase.PAUSED, "a pause without duration never ends by itself"
    promoted = run(
        replace(again.facts, command=Command.PROMOTE, command_by="alice"), seen(canary_ready=1)
    )
    assert promoted.facts.phase is Phase.PROGRESSING
    assert promoted.facts.step_index == 2
    assert promoted.actor == "alice"


# --- analysis ------------------------------------------------------------------------

# the fixed-sample judge's rules (Argo's AnalysisRun limits)
ANALYSIS = Analysis(
    judge="fixed",
    interval_seconds=60,
    count=3,
    failure_limit=0,
    inconclusive_limit=1,
    consecutive_error_limit=2,
)
SEQUENTIAL = Analysis(
    interval_seconds=60, count=3, max_duration_seconds=600, consecutive_error_limit=2
)


def analysis_facts() -> Facts:
    return facts(
        steps=(SetWeight(weight=10), ANALYSIS, SetWeight(weight=100)),
        step_index=1,
        routed_weight=10,
    )


def sequential_facts() -> Facts:
    return facts(
        steps=(SetWeight(weight=10), SEQUENTIAL, SetWeight(weight=100)),
        step_index=1,
        routed_weight=10,
    )


def looks(*kinds: Verdict | Inconclusive) -> list[MeasurementOutcome]:
    """One look a minute from T0: a verdict, or inconclusive for the reason given."""
    out = []
    for i, kind in enumerate(kinds, start=1):
        at = T0 + timedelta(minutes=i)
        if isinstance(kind, Inconclusive):
            out.append(
                MeasurementOutcome(at, Verdict.INCONCLUSIVE, f"why: {kind.value}", None, kind)
            )
        else:
            out.append(MeasurementOutcome(at, kind, f"look {i}: {kind.value}"))
    return out


def test_sequential_passes_once_it_has_looked_count_times_and_the_last_look_passes() -> None:
    early = looks(Verdict.PASS, Verdict.PASS)
    d = run(sequential_facts(), seen(canary_ready=1), early, now=T0 + timedelta(minutes=2))
    assert d.facts.step_index == 1, "a pass before count looks does not end the step"
    late = looks(Inconclusive.TOO_FEW, Inconclusive.TOO_FEW, Verdict.PASS)
    d = run(sequential_facts(), seen(canary_ready=1), late, now=T0 + timedelta(minutes=3))
    assert d.facts.step_index == 2, "the last look covers the whole step: it decides"
    assert d.event is not None
    assert "3 looks" in d.event.message


def test_sequential_keeps_looking_while_only_traffic_is_missing_then_pauses() -> None:
    thin = looks(*[Inconclusive.TOO_FEW] * 5)
    d = run(sequential_facts(), seen(canary_ready=1), thin, now=T0 + timedelta(minutes=5))
    assert d.facts.phase is Phase.PROGRESSING, "too few requests extends the step"
    assert d.requeue_after == timedelta(seconds=15) or d.measure
    out = looks(*[Inconclusive.TOO_FEW] * 10)
    d = run(sequential_facts(), seen(canary_ready=1), out, now=T0 + timedelta(minutes=10))
    assert d.facts.phase is Phase.PAUSED, "past max_duration_seconds a person decides"
    assert "after 10 min" in d.facts.reason
    assert "why: too_few" in d.facts.reason


@pytest.mark.parametrize(
    "kind", [Inconclusive.NO_SERIES, Inconclusive.NO_TRAFFIC, Inconclusive.UNRESOLVABLE]
)
def test_sequential_pauses_at_once_when_waiting_cannot_help(kind: Inconclusive) -> None:
    first = looks(kind, kind)
    d = run(sequential_facts(), seen(canary_ready=1), first, now=T0 + timedelta(minutes=2))
    assert d.facts.phase is Phase.PROGRESSING, "not before count looks"
    d = run(
        sequential_facts(), seen(canary_ready=1), looks(kind, kind, kind), T0 + timedelta(minutes=3)
    )
    assert d.facts.phase is Phase.PAUSED
    assert kind.value in d.facts.reason


def test_sequential_rolls_back_at_the_first_failed_look() -> None:
    d = run(
        sequential_facts(), seen(canary_ready=1), looks(Verdict.FAIL), T0 + timedelta(minutes=1)
    )
    assert d.facts.phase is Phase.ROLLING_BACK
    assert "look 1: fail" in d.facts.reason


def test_first_measurement_waits_one_interval_at_the_new_weight() -> None:
    early = run(analysis_facts(), seen(canary_ready=1), now=T0 + timedelta(seconds=10))
    assert not early.measure
    assert early.requeue_after == timedelta(seconds=15), "at most 15 s without reading back"
    due = run(analysis_facts(), seen(canary_ready=1), now=T0 + timedelta(seconds=60))
    assert due.measure


def test_analysis_passes_after_count_passing_measurements() -> None:
    ms = [m(T0 + timedelta(minutes=i), Verdict.PASS) for i in (1, 2, 3)]
    d = run(analysis_facts(), seen(canary_ready=1), ms, now=T0 + timedelta(minutes=3))
    assert d.facts.step_index == 2
    assert d.event is not None
    assert "analysis passed at 10%" in d.event.message


def test_a_failed_measurement_beyond_the_limit_rolls_back_with_its_evidence() -> None:
    ms = [m(T0 + timedelta(minutes=1), Verdict.FAIL, "ttft p95 canary 0.9s vs stable 0.2s")]
    d = run(analysis_facts(), seen(canary_ready=1), ms, now=T0 + timedelta(minutes=1))
    assert d.facts.phase is Phase.ROLLING_BACK
    assert "ttft p95 canary 0.9s" in d.facts.reason
    assert d.event is not None
    assert d.event.evidence["failed"] == 1


def test_inconclusive_is_never_a_pass_and_pauses_past_the_limit() -> None:
    ms = [
        m(T0 + timedelta(minutes=i), Verdict.INCONCLUSIVE, "canary has 3 requests, need 50")
        for i in (1, 2, 3)
    ]
    one = run(analysis_facts(), seen(canary_ready=1), ms[:1], now=T0 + timedelta(minutes=1))
    assert one.facts.phase is Phase.PROGRESSING
    assert one.facts.step_index == 1, "an inconclusive measurement does not pass the step"
    two = run(analysis_facts(), seen(canary_ready=1), ms[:2], now=T0 + timedelta(minutes=2))
    assert two.facts.phase is Phase.PAUSED
    assert "inconclusive" in two.facts.reason
    assert "canary has 3 requests" in two.facts.reason


def test_inconclusive_measurements_count_towards_count_only_within_the_limit() -> None:
    ms = [
        m(T0 + timedelta(minutes=1), Verdict.INCONCLUSIVE),
        m(T0 + timedelta(minutes=2), Verdict.PASS),
        m(T0 + timedelta(minutes=3), Verdict.PASS),
    ]
    d = run(analysis_facts(), seen(canary_ready=1), ms, now=T0 + timedelta(minutes=3))
    assert d.facts.step_index == 2


def test_errors_fail_only_after_the_consecutive_limit() -> None:
    ms = [
        m(T0 + timedelta(minutes=i), Verdict.ERROR, "prometheus: connection refused")
        for i in (1, 2, 3)
    ]
    two = run(analysis_facts(), seen(canary_ready=1), ms[:2], now=T0 + timedelta(minutes=2))
    assert two.facts.phase is Phase.PROGRESSING
    three = run(analysis_facts(), seen(canary_ready=1), ms, now=T0 + timedelta(minutes=3))
    assert three.facts.phase is Phase.ROLLING_BACK
    assert "metrics unavailable" in three.facts.reason


def test_an_error_between_passes_resets_the_consecutive_count() -> None:
    ms = [
        m(T0 + timedelta(minutes=1), Verdict.ERROR),
        m(T0 + timedelta(minutes=2), Verdict.ERROR),
        m(T0 + timedelta(minutes=3), Verdict.PASS),
        m(T0 + timedelta(minutes=4), Verdict.ERROR),
        m(T0 + timedelta(minutes=5), Verdict.ERROR),
    ]
    d = run(analysis_facts(), seen(canary_ready=1), ms, now=T0 + timedelta(minutes=5))
    assert d.facts.phase is Phase.PROGRESSING


def test_measurements_from_before_the_step_started_do_not_count() -> None:
    f = replace(analysis_facts(), step_started_at=T0 + timedelta(minutes=10))
    old = [m(T0 + timedelta(minutes=i), Verdict.FAIL) for i in (1, 2)]
    d = run(f, seen(canary_ready=1), old, now=T0 + timedelta(minutes=10))
    assert d.facts.phase is Phase.PROGRESSING


# --- the canary's health -------------------------------------------------------------


@pytest.mark.parametrize(
    "kind",
    [
        ProblemKind.CRASH_LOOP,
        ProblemKind.IMAGE_PULL,
        ProblemKind.CONFIG_ERROR,
        ProblemKind.PROGRESS_DEADLINE,
    ],
)
def test_a_broken_canary_rolls_back_at_once_with_the_reason(kind: ProblemKind) -> None:
    problem = Problem(kind, f"pod chat-v2-x: {kind.value}", "chat-v2-x")
    d = run(facts(), seen(problems=(problem,)))
    assert d.facts.phase is Phase.ROLLING_BACK
    assert kind.value in d.facts.reason
    assert d.event is not None
    assert d.event.evidence["problem"] == kind.value


def test_unschedulable_gets_a_grace_period_then_rolls_back() -> None:
    problem = Problem(ProblemKind.UNSCHEDULABLE, "needs 4 nvidia.com/gpu, 0 free", "p")
    first = run(facts(), seen(problems=(problem,)))
    assert first.facts.phase is Phase.PROGRESSING
    assert first.facts.problem_since == T0
    later = plan(first.facts, seen(problems=(problem,)), [], T0 + Limits().unschedulable_grace)
    assert later.facts.phase is Phase.ROLLING_BACK
    assert "unschedulable for 300s" in later.facts.reason
    assert "0 free" in later.facts.reason


def test_a_cleared_problem_is_forgotten() -> None:
    d = run(facts(problem_since=T0 - timedelta(minutes=1)), seen(canary_ready=1))
    assert d.facts.problem_since is None


# --- rollback: traffic back on stable first ------------------------------------------


def test_rollback_routes_to_stable_and_takes_the_canary_down() -> None:
    f = facts(phase=Phase.ROLLING_BACK, routed_weight=25, stable_replicas=2, reason="x")
    d = run(f, seen(canary_ready=1, stable_ready=2))
    assert d.target is not None
    assert d.target.weight == 0
    assert d.target.canary_replicas == 0
    assert d.target.stable_replicas == 2
    assert d.facts.phase is Phase.ROLLING_BACK, "done only when the cluster shows it"
    done = run(d.facts, seen(canary_ready=0, stable_ready=2))
    assert done.facts.phase is Phase.ROLLED_BACK


def test_rollback_waits_for_stable_to_be_back_at_full_size() -> None:
    f = facts(phase=Phase.ROLLING_BACK, routed_weight=0, stable_replicas=1)
    d = run(f, seen(canary_ready=0, stable_ready=1))
    assert d.facts.phase is Phase.ROLLING_BACK
    assert d.target is not None
    assert d.target.stable_replicas == 2


def test_abort_ends_as_aborted_and_records_who() -> None:
    f = facts(command=Command.ABORT, command_by="bob", command_reason="wrong adapter")
    d = run(f, seen(canary_ready=1))
    assert d.facts.phase is Phase.ROLLING_BACK
    assert d.actor == "bob"
    assert "aborted by bob: wrong adapter" in d.facts.reason
    done = run(replace(d.facts, routed_weight=0), seen(canary_ready=0, stable_ready=2))
    assert done.facts.phase is Phase.ABORTED


# --- promotion -----------------------------------------------------------------------


def test_last_step_leads_to_promotion_then_success() -> None:
    f = facts(steps=(SetWeight(weight=100),), replicas=2, gpu_budget=4, stable_replicas=2)
    d = run(f, seen(canary_ready=2))
    assert d.facts.phase is Phase.PROMOTING
    done = run(d.facts, seen(canary_ready=2, stable_ready=0))
    assert done.facts.phase is Phase.SUCCEEDED
    assert done.target is not None
    assert done.target.canary_track is Track.STABLE
    assert done.target.retire_stable
    assert done.target.stable_replicas == 0


def test_promote_full_skips_the_remaining_steps() -> None:
    d = run(
        facts(step_index=1, routed_weight=10, command=Command.PROMOTE_FULL, command_by="carol"),
        seen(canary_ready=1),
    )
    assert d.facts.phase is Phase.PROMOTING
    hold = run(d.facts, seen(canary_ready=1))
    assert hold.facts.phase is Phase.PROMOTING, "waits for the canary at full size"
    assert hold.target is not None
    assert hold.target.canary_replicas == 2


def test_first_version_goes_straight_to_stable() -> None:
    f = facts(steps=first_deploy_strategy().steps, has_stable=False, stable_replicas=0)
    d = run(f, seen(canary_ready=2, stable_ready=0))
    assert d.facts.phase is Phase.PROMOTING
    done = run(d.facts, Observed(canary=state(2, 2), stable=None))
    assert done.facts.phase is Phase.SUCCEEDED
    assert done.target is not None
    assert not done.target.retire_stable


# --- people ---------------------------------------------------------------------------


def test_pause_and_resume_restart_the_step() -> None:
    paused = run(
        facts(step_index=1, routed_weight=10, command=Command.PAUSE, command_by="d"),
        seen(canary_ready=1),
    )
    assert paused.facts.phase is Phase.PAUSED
    resumed = run(
        replace(paused.facts, command=Command.RESUME, command_by="d"),
        seen(canary_ready=1),
        now=T0 + timedelta(hours=1),
    )
    assert resumed.facts.phase is Phase.PROGRESSING
    assert resumed.facts.step_started_at == T0 + timedelta(hours=1)


def test_a_command_that_does_not_apply_is_dropped_with_a_trace() -> None:
    d = run(
        facts(phase=Phase.ROLLING_BACK, command=Command.RESUME, command_by="e"),
        seen(canary_ready=1),
    )
    assert d.facts.command is None
    assert d.event is not None
    assert "ignored" in d.event.message


def test_terminal_rollouts_do_nothing() -> None:
    for phase in (Phase.SUCCEEDED, Phase.ROLLED_BACK, Phase.ABORTED):
        d = run(facts(phase=phase, command=Command.ABORT), seen())
        assert d.target is None
        assert d.facts.phase is phase


def test_planning_twice_gives_the_same_decision() -> None:
    f = facts(step_index=1, routed_weight=10)
    ms = [m(T0 + timedelta(minutes=1), Verdict.PASS)]
    now = T0 + timedelta(minutes=2)
    assert plan(f, seen(canary_ready=1), ms, now) == plan(f, seen(canary_ready=1), ms, now)


@pytest.mark.parametrize("seed", range(40))
def test_invariants_over_simulated_rollouts(seed: int) -> None:
    """Drive the planner against a toy cluster that converges with random lag, with random
    measurement verdicts; check the safety rules at every decision."""
    import random

    from controlplane.kube.budget import plan_replicas

    rng = random.Random(seed)
    replicas, gpus = rng.choice([(2, 1), (4, 1), (3, 2), (4, 4)])
    budget = rng.choice([None, replicas * gpus, replicas * gpus + gpus, 2 * replicas * gpus])
    strategy = default_strategy().steps
    f = facts(
        phase=Phase.PENDING,
        steps=tuple(
            s.model_copy(update={"interval_seconds": 10, "count": 2})
            if isinstance(s, Analysis)
            else s
            for s in strategy
        ),
        replicas=replicas,
        gpus_per_replica=gpus,
        gpu_budget=budget,
        stable_replicas=replicas,
    )
    canary_ready, stable_ready = 0, replicas
    measurements: list[MeasurementOutcome] = []
    now = T0
    for _ in range(300):
        observed = Observed(
            canary=state(canary_ready, canary_ready), stable=state(stable_ready, stable_ready)
        )
        d = plan(f, observed, measurements, now)
        if d.target is not None:
            t = d.target
            if budget is not None:
                assert (t.canary_replicas + t.stable_replicas) * gpus <= budget, "over budget"
            if t.weight > f.routed_weight:
                needed = plan_replicas(
                    weight=t.weight, replicas=replicas, gpus_per_replica=gpus, gpu_budget=None
                ).canary
                assert canary_ready >= needed or t.weight <= 100 * canary_ready // replicas, (
                    "routed to canary replicas that are not ready"
                )
            if f.phase is Phase.ROLLING_BACK:
                # stable never carries more than its ready replicas can while the canary
                # could still carry it, but where the GPU budget leaves no room
                stable_can = min(100, 100 * stable_ready // replicas)
                canary_can = min(100, 100 * canary_ready // replicas)
                squeezed = budget is not None and (t.canary_replicas + replicas) * gpus > budget
                assert 100 - t.weight <= stable_can or t.weight >= canary_can or squeezed, (
                    "stable asked to carry more than its ready replicas while the canary could"
                )
                assert t.canary_replicas <= max(f.canary_replicas, canary_ready), (
                    "a rollback never grows the canary"
                )
            # the toy cluster moves part of the way toward the target
            if rng.random() < 0.7:
                canary_ready = t.canary_replicas
            if rng.random() < 0.7:
                stable_ready = t.stable_replicas
        if d.measure:
            measurements.append(
                m(
                    now,
                    rng.choice(
                        [Verdict.PASS] * 6 + [Verdict.INCONCLUSIVE, Verdict.ERROR, Verdict.FAIL]
                    ),
                )
            )
        f = d.facts
        if f.phase is Phase.PAUSED and rng.random() < 0.5:
            f = replace(
                f,
                command=rng.choice([Command.RESUME, Command.PROMOTE, Command.ABORT]),
                command_by="sim",
            )
        if f.phase.is_terminal:
            break
        now += max(d.requeue_after, timedelta(seconds=1))
    assert f.phase.is_terminal, f"no end after 300 decisions: {f.phase} step {f.step_index}"


# --- eval_gate: offline quality, judged once, before traffic ----------------------------

GATED = (
    EvalGate(checks=(EvalCheck(score="mmlu", max_regression=0.01),)),
    SetWeight(weight=50),
    SetWeight(weight=100),
)


def test_an_eval_gate_first_measures_and_risks_no_traffic() -> None:
    d = run(facts(steps=GATED), seen())
    assert d.measure
    assert d.target is not None
    assert (d.target.canary_replicas, d.target.weight) == (0, 0)  # no GPU spent yet


def test_a_passing_eval_gate_moves_to_the_next_step() -> None:
    passed = m(T0, Verdict.PASS, "pass: mmlu v2 0.62 vs v1 0.62 (+0; ...)")
    d = run(facts(steps=GATED), seen(), [passed])
    assert d.facts.step_index == 1
    assert d.event is not None
    assert d.event.message.startswith("eval gate passed: pass: mmlu v2 0.62")


def test_a_failing_eval_gate_rolls_back_with_the_scores() -> None:
    failed = m(T0, Verdict.FAIL, "fail: mmlu v2 0.55 vs v1 0.62 (-0.07; ...)")
    d = run(facts(steps=GATED), seen(), [failed])
    assert d.facts.phase is Phase.ROLLING_BACK
    assert d.facts.reason == "eval gate failed: fail: mmlu v2 0.55 vs v1 0.62 (-0.07; ...)"
    assert d.event is not None
    assert d.event.evidence["last"] == failed.summary


@pytest.mark.parametrize("verdict", [Verdict.INCONCLUSIVE, Verdict.ERROR])
def test_an_unsure_eval_gate_waits_for_a_person_who_may_skip_it(verdict: Verdict) -> None:
    unsure = m(T0, verdict, "inconclusive: mmlu: v2 has no eval score 'mmlu'")
    d = run(facts(steps=GATED), seen(), [unsure])
    assert d.facts.phase is Phase.PAUSED
    assert d.facts.reason.startswith("eval gate inconclusive: inconclusive: mmlu: v2 has no")
    assert d.facts.reason.endswith(
        "promote to skip the gate, resume to judge the same recorded scores again, or abort"
    )
    promoted = run(
        replace(d.facts, command=Command.PROMOTE, command_by="alice"),
        seen(),
        [unsure],
        now=T0 + timedelta(minutes=5),
    )
    assert promoted.facts.phase is Phase.PROGRESSING
    assert promoted.facts.step_index == 1


def test_measurements_from_before_the_gate_started_do_not_count() -> None:
    old = m(T0 - timedelta(seconds=1), Verdict.FAIL)
    assert run(facts(steps=GATED), seen(), [old]).measure


def test_a_gate_right_after_an_analysis_does_not_take_its_last_measurement() -> None:
    steps = (Analysis(count=1), *GATED)
    passed = MeasurementOutcome(T0, Verdict.PASS, "ttft ok", step_index=0)
    advanced = run(facts(steps=steps, routed_weight=0), seen(), [passed])
    assert advanced.facts.step_index == 1
    assert advanced.facts.step_started_at == T0  # the same instant as the measurement
    assert run(advanced.facts, seen(), [passed]).measure, "the gate judges its own scores"


# --- the world moves: drift and a stable that lost replicas ----------------------------------


def route(canary: int, owner: str | None = "kubectl-patch") -> WeightReading:
    return WeightReading(canary, 100 - canary, "HTTPRoute llm/chat", owner)


def gateway_seen(canary_weight: int, owner: str | None = "kubectl-patch") -> Observed:
    return replace(seen(canary_ready=1), route=route(canary_weight, owner))


def test_a_hand_edited_route_is_restored_with_a_drift_event_naming_who() -> None:
    f = replace(analysis_facts(), canary_replicas=1, routed_weight=10)
    d = run(f, gateway_seen(90), now=T0 + timedelta(minutes=2))
    assert d.event is not None
    assert d.event.kind == "drift"
    assert "HTTPRoute llm/chat route weight 90% instead of 10%" in d.event.message
    assert "kubectl-patch" in d.event.message
    assert d.event.evidence["drift"][0]["manager"] == "kubectl-patch"
    assert d.target is not None
    assert (d.target.weight, d.target.canary_replicas) == (10, 1), "our decision, again"
    assert d.facts.drift_count == 1
    assert d.facts.phase is Phase.PROGRESSING
    # the analysis' evidence ran on a route that was not ours: it starts again
    assert d.facts.step_started_at == T0 + timedelta(minutes=2)
    assert d.discard is not None
    assert "90%" in d.discard


def test_drift_that_comes_back_pauses_for_a_person() -> None:
    f = replace(analysis_facts(), canary_replicas=1, routed_weight=10, drift_count=1)
    d = run(f, gateway_seen(90), now=T0 + timedelta(minutes=3))
    assert d.facts.phase is Phase.PAUSED
    assert d.facts.reason.startswith("drift came back")
    assert d.target is not None
    assert d.target.weight == 10, "restored once more, then a person decides"


def test_a_difference_the_control_plane_left_itself_is_no_drift() -> None:
    f = replace(analysis_facts(), canary_replicas=1, routed_weight=10)
    d = run(f, gateway_seen(0, owner=None), now=T0 + timedelta(minutes=2))
    assert d.event is None or d.event.kind != "drift"
    assert d.facts.drift_count == 0


def test_stable_scaled_by_hand_is_drift_and_restored() -> None:
    f = replace(analysis_facts(), canary_replicas=1)
    stable = VersionState("chat-v1", True, desired=0, ready=2, replicas_owner="kubectl-scale")
    d = run(f, Observed(canary=state(1, 1), stable=stable), now=T0 + timedelta(minutes=1))
    assert d.event is not None
    assert d.event.kind == "drift"
    assert "Deployment chat-v1 stable replicas 0 instead of 2" in d.event.message
    assert d.target is not None
    assert d.target.stable_replicas == 2


def test_a_stable_short_of_ready_replicas_holds_the_weight_and_says_so_once() -> None:
    f = replace(facts(steps=(SetWeight(weight=10), SetWeight(weight=50))), step_index=1)
    f = replace(f, routed_weight=10, canary_replicas=1)
    short = Observed(canary=state(1, 1), stable=state(0, 2))
    d = run(f, short)
    assert d.facts.routed_weight == 10, "no weight increase while stable could not take it back"
    assert d.facts.step_index == 1
    assert d.event is not None
    assert "stable has 0 of the 2 ready replicas its share needs" in d.event.message
    assert d.target is not None
    assert d.target.stable_replicas == 2, "stable is asked for its size"
    again = run(d.facts, short, now=T0 + timedelta(seconds=5))
    assert again.event is None, "said once"
    back = run(again.facts, seen(canary_ready=1), now=T0 + timedelta(seconds=10))
    assert back.event is not None
    assert "stable is back" in back.event.message
    assert back.facts.stable_short_since is None


def test_drift_during_a_rollback_is_undone_by_the_rollback_and_reported() -> None:
    f = facts(phase=Phase.ROLLING_BACK, routed_weight=0, canary_replicas=1, reason="bad")
    d = run(f, replace(seen(canary_ready=1), route=route(30)))
    assert d.facts.phase is Phase.ROLLING_BACK
    assert d.target is not None
    assert d.target.weight == 0
    assert d.event is not None
    assert d.event.kind == "drift"


# --- rolling back without overloading anyone --------------------------------------------


def rolling(**overrides: object) -> Facts:
    return facts(phase=Phase.ROLLING_BACK, reason="aborted", **overrides)  # type: ignore[arg-type]


def test_an_abort_with_stable_whole_moves_all_traffic_and_removes_the_canary_at_once() -> None:
    d = run(rolling(routed_weight=50, canary_replicas=1, stable_replicas=2), seen(1, 2))
    assert d.target is not None
    assert (d.target.weight, d.target.canary_replicas, d.target.stable_replicas) == (0, 0, 2)
    assert d.event is not None
    assert "stable's ready replicas carry it all" in d.event.message


def test_an_abort_with_stable_short_keeps_on_the_canary_what_stable_cannot_carry() -> None:
    f = rolling(routed_weight=50, canary_replicas=1, stable_replicas=1, gpu_budget=None)
    d = run(f, seen(canary_ready=1, stable_ready=1))
    assert d.target is not None
    assert d.target.stable_replicas == 2, "stable grows first"
    assert d.target.weight == 50, "stable's one ready replica carries half, not all"
    assert d.target.canary_replicas == 1
    assert d.event is None or "50%" in d.event.message
    d = run(d.facts, seen(canary_ready=1, stable_ready=2))
    assert d.target is not None
    assert (d.target.weight, d.target.canary_replicas) == (0, 0), "traffic follows stable"


def test_an_abort_with_stable_lost_never_routes_to_an_empty_stable() -> None:
    d = run(rolling(routed_weight=10, canary_replicas=1), seen(canary_ready=1, stable_ready=0))
    assert d.target is not None
    assert d.target.weight == 100, "the only ready replicas left take the traffic"
    assert d.target.stable_replicas == 2
    assert d.facts.phase is Phase.ROLLING_BACK


def test_an_abort_without_gpu_room_gives_up_the_canary_a_replica_at_a_time() -> None:
    # budget 4, 4 replicas x 1 GPU; at 50%: canary 2, stable 2
    f = rolling(routed_weight=50, canary_replicas=2, stable_replicas=2, replicas=4, gpu_budget=4)
    d = run(f, seen(canary_ready=2, stable_ready=2))
    assert d.target is not None
    assert d.target.canary_replicas == 1, "one replica at a time"
    assert d.target.stable_replicas == 3, "stable takes the freed GPU"
    assert d.target.canary_replicas + d.target.stable_replicas <= 4
    assert d.target.weight == 25, "the canary keeps what its remaining replica carries"
    assert d.event is not None
    assert "no GPU room" in d.event.message
    d = run(d.facts, seen(canary_ready=1, stable_ready=3))
    assert d.target is not None
    assert (d.target.canary_replicas, d.target.stable_replicas, d.target.weight) == (0, 4, 0)
    done = run(d.facts, seen(canary_ready=0, stable_ready=4))
    assert done.facts.phase is Phase.ROLLED_BACK


# --- the watch after promotion -----------------------------------------------------------

BAKED = (SetWeight(weight=50), SetWeight(weight=100), Bake(duration_seconds=600))


def test_a_bake_must_be_the_last_step_after_full_weight() -> None:
    from pydantic import ValidationError

    from controlplane.rollout.strategy import Strategy

    with pytest.raises(ValidationError, match="after set_weight 100"):
        Strategy(steps=(SetWeight(weight=50), Bake(duration_seconds=600)))
    with pytest.raises(ValidationError, match="last step"):
        Strategy(steps=(SetWeight(weight=100), Bake(duration_seconds=600), Pause()))
    assert Strategy(steps=BAKED).bakes


def test_full_weight_before_a_bake_keeps_the_old_stable_warm() -> None:
    f = facts(steps=BAKED, step_index=1, routed_weight=50, gpu_budget=None)
    d = run(f, seen(canary_ready=2, stable_ready=2))
    assert d.target is not None
    assert (d.target.weight, d.target.canary_replicas, d.target.stable_replicas) == (100, 2, 2)
    assert d.facts.step_index == 2, "on to the bake"
    tight = run(replace(f, gpu_budget=3), seen(canary_ready=2, stable_ready=1))
    assert tight.target is not None
    assert tight.target.stable_replicas == 1, "what the budget leaves beside the canary"


def test_a_breach_during_the_bake_rolls_back_after_promotion() -> None:
    f = facts(steps=BAKED, step_index=2, routed_weight=100, canary_replicas=2, gpu_budget=None)
    looks = [m(T0 + timedelta(minutes=1), Verdict.FAIL, "ttft p95 +40% over the old version")]
    d = run(f, seen(canary_ready=2, stable_ready=2), looks, now=T0 + timedelta(minutes=1))
    assert d.facts.phase is Phase.ROLLING_BACK
    assert d.facts.reason.startswith("rolled back after promotion")
    assert d.event is not None
    assert d.event.evidence["after_promotion"] is True
    back = run(d.facts, seen(canary_ready=2, stable_ready=2), now=T0 + timedelta(minutes=1))
    assert back.target is not None
    assert back.target.weight == 0, "the warm old version takes it all back at once"


def test_a_quiet_bake_promotes_and_retires_the_old_version() -> None:
    f = facts(steps=BAKED, step_index=2, routed_weight=100, canary_replicas=2, gpu_budget=None)
    looks = [m(T0 + timedelta(minutes=i), Verdict.PASS) for i in range(1, 11)]
    early = run(f, seen(2, 2), looks[:3], now=T0 + timedelta(minutes=3, seconds=30))
    assert early.facts.phase is Phase.PROGRESSING
    done = run(f, seen(2, 2), looks, now=T0 + timedelta(minutes=10))
    assert done.facts.phase is Phase.PROMOTING
    assert done.event is not None
    assert "bake passed" in done.event.message
    final = run(done.facts, seen(2, 2), now=T0 + timedelta(minutes=10))
    assert final.facts.phase is Phase.SUCCEEDED
    assert final.target is not None
    assert final.target.retire_stable


def test_the_budget_is_split_over_the_analysis_steps_the_rollout_and_the_bake() -> None:
    from controlplane.rollout.strategy import Strategy

    plain = Strategy(steps=default_strategy().steps)
    step, rollout = plain.analysis_alphas(1)
    assert rollout is not None
    assert 3 * step + rollout == pytest.approx(0.01)
    baked = Strategy(steps=(*default_strategy().steps, Bake(duration_seconds=600)))
    step, rollout = baked.analysis_alphas(1)
    bake, none = baked.analysis_alphas(7)
    assert none is None
    assert rollout is not None
    assert 3 * step + rollout + bake == pytest.approx(0.01), "one budget for the rollout"
    with pytest.raises(ValueError, match="not a sequential analysis step"):
        baked.analysis_alphas(0)


# --- evaluation (prompts to both versions before traffic) ------------------------------

EVALUATION_STEPS = (Evaluation(suite="starter"), SetWeight(weight=50), SetWeight(weight=100))


def test_an_evaluation_runs_the_canary_at_one_replica_without_weight() -> None:
    d = run(facts(steps=EVALUATION_STEPS), seen(canary_ready=0))
    assert d.target is not None
    assert (d.target.canary_replicas, d.target.weight) == (1, 0)
    assert not d.measure  # waits for the canary to be ready before asking it anything
    ready = run(facts(steps=EVALUATION_STEPS), seen(canary_ready=1))
    assert ready.measure
    assert ready.target is not None
    assert ready.target.weight == 0


def test_an_evaluations_verdict_decides_the_step() -> None:
    f = facts(steps=EVALUATION_STEPS)
    later = T0 + timedelta(seconds=30)
    passed = run(f, seen(canary_ready=1), [m(later, Verdict.PASS, "pass: general ok")], later)
    assert passed.facts.step_index == 1
    assert passed.event is not None
    assert passed.event.message.startswith("evaluation passed")
    failed = run(f, seen(canary_ready=1), [m(later, Verdict.FAIL, "fail: general")], later)
    assert failed.facts.phase is Phase.ROLLING_BACK
    assert "evaluation failed" in failed.facts.reason
    unsure = run(f, seen(canary_ready=1), [m(later, Verdict.INCONCLUSIVE, "unanswered")], later)
    assert unsure.facts.phase is Phase.PAUSED
    assert "resume to run the suite again" in unsure.facts.reason


def test_an_evaluation_that_does_not_fit_the_gpu_budget_rolls_back() -> None:
    d = run(facts(steps=EVALUATION_STEPS, gpu_budget=2), seen())
    assert d.facts.phase is Phase.ROLLING_BACK
    assert "the evaluation needs 1 canary beside 2 stable" in d.facts.reason


def test_a_first_deployment_skips_evaluations() -> None:
    strategy = first_deploy_strategy(Strategy(steps=EVALUATION_STEPS))
    assert [s.kind for s in strategy.steps] == ["set_weight"]
