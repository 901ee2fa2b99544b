"""The rollout engine end to end on the real parts it owns: the database (SQLite and
PostgreSQL), the reconciler, the Kubernetes driver and a real API server with kwok pods.

Metrics come from a scripted prober here (the Prometheus-backed one has its own tests);
the clock is injected so analysis intervals pass without sleeping, while pods become
ready in real time.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlmodel import col, select

from controlplane.analysis.verdict import Verdict
from controlplane.db import Database
from controlplane.kube import KubeDriver
from controlplane.kube.client import DEPLOYMENT, HTTPROUTE, KubeApi
from controlplane.models import (
    Command,
    Measurement,
    Model,
    ModelCreate,
    ModelVersion,
    Phase,
    Rollout,
    RolloutEvent,
    RoutingMode,
    VersionCreate,
    VersionStatus,
    utcnow,
)
from controlplane.registry import models as model_service
from controlplane.registry import versions as version_service
from controlplane.rollout import service
from controlplane.rollout.reconciler import ProbeResult, Reconciler
from controlplane.rollout.strategy import (
    Analysis,
    EvalCheck,
    EvalGate,
    Pause,
    SetWeight,
    Strategy,
)
from tests.support.cluster import (
    patch_route_by_hand,
    scale_by_hand,
    wait_for,
    watch_events,
)

pytestmark = pytest.mark.cluster


@dataclass
class Clock:
    now: datetime = field(default_factory=utcnow)

    def __call__(self) -> datetime:
        return self.now


@dataclass
class ScriptedProber:
    verdict: Verdict = Verdict.PASS
    calls: int = 0

    def measure(self, **_: Any) -> ProbeResult:
        self.calls += 1
        return ProbeResult(
            self.verdict,
            f"scripted {self.verdict.value} #{self.calls}",
            [{"metric": "ttft", "verdict": self.verdict.value}],
        )


def setup_model(
    database: Database,
    namespace: str,
    *,
    routing: RoutingMode = RoutingMode.REPLICAS,
    labels: dict[str, dict[str, str]] | None = None,
    metadata: dict[str, dict[str, Any]] | None = None,
    gpu_node: dict[str, Any] | None = None,
    gpu_budget: int | None = None,
) -> None:
    """chat on 2 replicas, no GPU; or 1 GPU each on ``gpu_node`` (the fake GPU node)."""
    placement: dict[str, Any] = {}
    if gpu_node is not None:
        placement = {
            "node_selector": gpu_node["node_selector"],
            "tolerations": gpu_node["tolerations"],
        }
    with database.session() as session:
        model_service.create_model(
            session,
            data=ModelCreate(
                name="chat",
                namespace=namespace,
                image="vllm/vllm-openai:v0.11.0",
                gpus_per_replica=1 if gpu_node is not None else 0,
                replicas=2,
                gpu_budget=gpu_budget,
                routing_mode=routing,
                gateway="gw" if routing is RoutingMode.GATEWAY_API else None,
                **placement,
            ),
            actor="test",
        )
        for version in ("v1", "v2"):
            version_service.register_version(
                session,
                model_name="chat",
                data=VersionCreate(
                    version=version,
                    artifact_uri=f"s3://models/chat/{version}",
                    labels=(labels or {}).get(version, {}),
                    metadata=(metadata or {}).get(version, {}),
                ),
                actor="test",
            )


def drive(
    reconciler: Reconciler,
    clock: Clock,
    database: Database,
    rollout_id: int,
    *,
    until: set[Phase],
    timeout: float = 90,
) -> Rollout:
    """Tick the reconciler (the clock jumps a minute a tick; pods get real time)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reconciler.run_due()
        with database.session() as session:
            rollout = session.get(Rollout, rollout_id)
            assert rollout is not None
            if rollout.phase in until:
                return rollout
        clock.now += timedelta(seconds=61)
        time.sleep(0.3)
    pytest.fail(
        f"rollout {rollout_id} did not reach {until}; it is {rollout.phase}: {rollout.reason}"
    )


def metric(name: str, **labels: str) -> float:
    from controlplane.telemetry import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


def events(database: Database, rollout_id: int) -> list[RolloutEvent]:
    with database.session() as session:
        return list(
            session.exec(
                select(RolloutEvent)
                .where(RolloutEvent.rollout_id == rollout_id)
                .order_by(col(RolloutEvent.id))
            ).all()
        )


def status_of(database: Database, version: str) -> VersionStatus:
    with database.session() as session:
        return (
            session.exec(select(ModelVersion).where(ModelVersion.version == version)).one().status
        )


def deploy_v1(database: Database, reconciler: Reconciler, clock: Clock) -> None:
    with database.session() as session:
        first = service.start_rollout(
            session, model_name="chat", version="v1", strategy=None, actor="ci", now=clock()
        )
    assert first.id is not None
    done = drive(reconciler, clock, database, first.id, until={Phase.SUCCEEDED})
    assert done.finished_at is not None
    assert status_of(database, "v1") is VersionStatus.STABLE


def start_v2(database: Database, clock: Clock, strategy: Strategy) -> int:
    """Request the rollout of v2 (over the stable v1) as CI would; returns its id."""
    with database.session() as session:
        rollout = service.start_rollout(
            session, model_name="chat", version="v2", strategy=strategy, actor="ci", now=clock()
        )
    assert rollout.id is not None
    return rollout.id


STRATEGY = Strategy(
    steps=(SetWeight(weight=50), Analysis(interval_seconds=60, count=2), SetWeight(weight=100))
)


def test_first_version_then_a_canary_promoted_through_its_steps(
    database: Database, kube_api: KubeApi, namespace: str
) -> None:
    setup_model(database, namespace)
    clock, prober = Clock(), ScriptedProber(Verdict.PASS)
    reconciler = Reconciler(database, KubeDriver(kube_api), prober, clock=clock)
    deploy_v1(database, reconciler, clock)
    v1 = kube_api.get(DEPLOYMENT, namespace, "chat-v1")
    assert v1 is not None
    assert v1["metadata"]["labels"]["controlplane.dev/track"] == "stable"
    assert v1["spec"]["replicas"] == 2

    rollout_id = start_v2(database, clock, STRATEGY)
    done = drive(reconciler, clock, database, rollout_id, until={Phase.SUCCEEDED})
    assert done.routed_weight == 100
    assert prober.calls == 2
    assert status_of(database, "v2") is VersionStatus.STABLE
    assert status_of(database, "v1") is VersionStatus.RETIRED
    v2 = kube_api.get(DEPLOYMENT, namespace, "chat-v2")
    assert v2 is not None
    assert v2["metadata"]["labels"]["controlplane.dev/track"] == "stable"
    assert v2["spec"]["replicas"] == 2
    assert kube_api.get(DEPLOYMENT, namespace, "chat-v1") is None, "the old version is gone"
    messages = [e.message for e in events(database, rollout_id)]
    # replicas routing: 1 canary beside 2 stable replicas takes a third of the traffic,
    # whatever the step asked for, and the rollout says so and judges that
    assert any("weight 33% in force, 50% requested" in m for m in messages)
    assert any("analysis passed at 33%" in m for m in messages)
    assert messages[-1] == "promoted: the canary is the new stable"


def test_a_crash_looping_canary_is_rolled_back_with_the_reason(
    database: Database, kube_api: KubeApi, namespace: str
) -> None:
    setup_model(database, namespace, labels={"v2": {"sim.controlplane.dev/fault": "crashloop"}})
    clock = Clock()
    reconciler = Reconciler(database, KubeDriver(kube_api), ScriptedProber(), clock=clock)
    deploy_v1(database, reconciler, clock)
    rollout_id = start_v2(database, clock, STRATEGY)
    done = drive(reconciler, clock, database, rollout_id, until={Phase.ROLLED_BACK})
    assert "crash-looping" in done.reason
    assert status_of(database, "v2") is VersionStatus.ROLLED_BACK
    assert status_of(database, "v1") is VersionStatus.STABLE
    v2 = kube_api.get(DEPLOYMENT, namespace, "chat-v2")
    assert v2 is not None
    assert v2["spec"]["replicas"] == 0
    rollback = [e for e in events(database, rollout_id) if e.phase is Phase.ROLLING_BACK]
    assert rollback[0].evidence["problem"] == "crash_loop"


def test_a_failed_analysis_moves_traffic_back_to_stable_first(
    database: Database, kube_api: KubeApi, namespace: str
) -> None:
    setup_model(database, namespace, routing=RoutingMode.GATEWAY_API)
    clock = Clock()
    prober = ScriptedProber(Verdict.PASS)
    driver = KubeDriver(kube_api)
    reconciler = Reconciler(database, driver, prober, clock=clock)
    deploy_v1(database, reconciler, clock)
    prober.verdict = Verdict.FAIL
    rollout_id = start_v2(database, clock, STRATEGY)
    drive(reconciler, clock, database, rollout_id, until={Phase.ROLLING_BACK, Phase.ROLLED_BACK})
    # the tick that decided the rollback already moved the traffic
    route = kube_api.get(HTTPROUTE, namespace, "chat")
    assert route is not None
    weights = {r["name"]: r["weight"] for r in route["spec"]["rules"][0]["backendRefs"]}
    assert weights == {"chat-v1": 100, "chat-v2": 0}, "traffic is back on stable"
    done = drive(reconciler, clock, database, rollout_id, until={Phase.ROLLED_BACK})
    assert "analysis failed at 50%" in done.reason
    assert "scripted fail" in done.reason


GATED = Strategy(
    steps=(
        EvalGate(
            checks=(
                EvalCheck(score="mmlu", max_regression=0.01),
                EvalCheck(score="toxicity", at_most=0.05, higher_is_better=False),
            )
        ),
        SetWeight(weight=50),
        SetWeight(weight=100),
    )
)


def test_an_eval_gate_rolls_back_a_forgetful_fine_tune_before_any_gpu_is_spent(
    database: Database, kube_api: KubeApi, namespace: str
) -> None:
    setup_model(
        database,
        namespace,
        metadata={
            "v1": {"eval": {"mmlu": 0.62, "toxicity": 0.02}},
            "v2": {"eval": {"mmlu": 0.55, "toxicity": 0.02}, "run": "ft-0042"},
        },
    )
    clock = Clock()
    prober = ScriptedProber(Verdict.PASS)
    reconciler = Reconciler(database, KubeDriver(kube_api), prober, clock=clock)
    deploy_v1(database, reconciler, clock)
    rollout_id = start_v2(database, clock, GATED)
    done = drive(reconciler, clock, database, rollout_id, until={Phase.ROLLED_BACK})
    assert done.reason.startswith(
        "eval gate failed: fail: mmlu v2 0.55 vs v1 0.62 (-0.07; higher is better, "
        "at most 0.01 worse) [2 scores: 1 fail, 1 pass]"
    )
    assert prober.calls == 0, "the gate reads the registry, not Prometheus"
    assert status_of(database, "v2") is VersionStatus.ROLLED_BACK
    messages = [e.message for e in events(database, rollout_id)]
    assert not any(message.startswith("weight ") for message in messages), messages
    canary = kube_api.get(DEPLOYMENT, namespace, "chat-v2")
    assert canary is None or canary["spec"]["replicas"] == 0, "no canary pod was started"
    with database.session() as session:
        [measured] = session.exec(
            select(Measurement).where(Measurement.rollout_id == rollout_id)
        ).all()
    assert measured.verdict == "fail"
    assert [(x["metric"], x["canary_value"], x["stable_value"]) for x in measured.metrics] == [
        ("mmlu", 0.55, 0.62),
        ("toxicity", 0.02, 0.02),
    ]


def test_a_passing_eval_gate_lets_the_canary_through(
    database: Database, kube_api: KubeApi, namespace: str
) -> None:
    setup_model(
        database,
        namespace,
        metadata={
            "v1": {"eval": {"mmlu": 0.62, "toxicity": 0.02}},
            "v2": {"eval": {"mmlu": 0.615, "toxicity": 0.01}},
        },
    )
    clock = Clock()
    reconciler = Reconciler(database, KubeDriver(kube_api), ScriptedProber(), clock=clock)
    deploy_v1(database, reconciler, clock)
    rollout_id = start_v2(database, clock, GATED)
    done = drive(reconciler, clock, database, rollout_id, until={Phase.SUCCEEDED})
    assert done.finished_at is not None
    messages = [e.message for e in events(database, rollout_id)]
    gate = next(i for i, msg in enumerate(messages) if msg.startswith("eval gate passed"))
    traffic = next(i for i, msg in enumerate(messages) if "weight 33% in force" in msg)
    assert gate < traffic
    assert status_of(database, "v2") is VersionStatus.STABLE


def test_abort_by_a_person_ends_aborted(
    database: Database, kube_api: KubeApi, namespace: str
) -> None:
    setup_model(database, namespace)
    clock = Clock()
    reconciler = Reconciler(database, KubeDriver(kube_api), ScriptedProber(), clock=clock)
    deploy_v1(database, reconciler, clock)
    rollout_id = start_v2(database, clock, STRATEGY)
    drive(reconciler, clock, database, rollout_id, until={Phase.PROGRESSING})
    with database.session() as session:
        service.request_command(
            session,
            rollout_id=rollout_id,
            command=Command.ABORT,
            actor="alice",
            reason="wrong adapter",
            now=clock(),
        )
    done = drive(reconciler, clock, database, rollout_id, until={Phase.ABORTED})
    assert done.reason == "aborted by alice: wrong adapter"
    assert any(
        e.actor == "alice" and e.phase is Phase.ROLLING_BACK for e in events(database, rollout_id)
    )


def test_a_restarted_control_plane_continues_without_repeating_moves(
    database: Database, kube_api: KubeApi, namespace: str
) -> None:
    setup_model(database, namespace)
    clock = Clock()
    first = Reconciler(
        database, KubeDriver(kube_api), ScriptedProber(), clock=clock, owner="replica-a"
    )
    deploy_v1(database, first, clock)
    rollout_id = start_v2(database, clock, STRATEGY)
    drive(first, clock, database, rollout_id, until={Phase.PROGRESSING})
    # the process dies; a new one (new owner, new driver, new prober) takes over
    second = Reconciler(
        database, KubeDriver(kube_api), ScriptedProber(), clock=clock, owner="replica-b"
    )
    done = drive(second, clock, database, rollout_id, until={Phase.SUCCEEDED})
    assert done.phase is Phase.SUCCEEDED
    moves = [e.message for e in events(database, rollout_id) if "in force" in e.message]
    assert len(moves) == len(set(moves)), f"a traffic move was recorded twice: {moves}"


def test_a_held_lease_keeps_other_replicas_off(
    database: Database, kube_api: KubeApi, namespace: str
) -> None:
    setup_model(database, namespace)
    clock = Clock()
    a = Reconciler(database, KubeDriver(kube_api), ScriptedProber(), clock=clock, owner="a")
    b = Reconciler(database, KubeDriver(kube_api), ScriptedProber(), clock=clock, owner="b")
    with database.session() as session:
        rollout = service.start_rollout(
            session, model_name="chat", version="v1", strategy=None, actor="ci", now=clock()
        )
    assert rollout.id is not None
    assert a.leases.claim(rollout.id)
    assert not b.reconcile(rollout.id), "b must not act while a holds the lease"
    a.leases.close()  # a died: nothing renews its lease
    clock.now += timedelta(minutes=5)  # and it lapsed
    assert b.reconcile(rollout.id)
    with database.session() as session:
        model = session.exec(select(Model)).one()
        assert model.name == "chat"


@dataclass
class SlowProber:
    """A check that takes its time: it waits until the test lets it finish."""

    entered: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    def measure(self, **_: Any) -> ProbeResult:
        self.entered.set()
        assert self.release.wait(30), "the test never let the check finish"
        return ProbeResult(Verdict.INCONCLUSIVE, "slow check: too few requests yet")


def test_a_command_written_during_a_slow_check_takes_effect_on_the_next_tick(
    database: Database, kube_api: KubeApi, namespace: str
) -> None:
    setup_model(database, namespace)
    clock = Clock()
    quick = Reconciler(database, KubeDriver(kube_api), ScriptedProber(), clock=clock)
    deploy_v1(database, quick, clock)
    rollout_id = start_v2(database, clock, STRATEGY)
    drive(quick, clock, database, rollout_id, until={Phase.PROGRESSING})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # up to the analysis step, before its first look
        quick.run_due()
        with database.session() as session:
            rollout = session.get(Rollout, rollout_id)
            assert rollout is not None
            if rollout.step_index == 1:
                break
        clock.now += timedelta(seconds=5)
        time.sleep(0.3)
    assert rollout.step_index == 1, rollout.reason
    clock.now += timedelta(seconds=61)  # the first look is due
    slow = SlowProber()
    reconciler = Reconciler(database, KubeDriver(kube_api), slow, clock=clock)
    check = threading.Thread(target=reconciler.reconcile, args=(rollout_id,))
    check.start()
    assert slow.entered.wait(30)
    with database.session() as session:  # a person pauses while the check runs
        service.request_command(
            session, rollout_id=rollout_id, command=Command.PAUSE, actor="bob", now=clock()
        )
    slow.release.set()
    check.join(30)
    with database.session() as session:
        rollout = session.get(Rollout, rollout_id)
        assert rollout is not None
        assert rollout.command is Command.PAUSE
        assert rollout.next_check_at <= clock(), (
            "the check rescheduled itself 60 s out over the pending command"
        )
    reconciler.run_due()  # the next tick, at the same moment
    with database.session() as session:
        rollout = session.get(Rollout, rollout_id)
        assert rollout is not None
        assert rollout.phase is Phase.PAUSED
        assert rollout.reason == "paused by bob"


PAUSED_AT_50 = Strategy(
    steps=(SetWeight(weight=50), Pause(duration_seconds=600), SetWeight(weight=100))
)


def tick(reconciler: Reconciler, clock: Clock, seconds: float = 16) -> None:
    """One reconcile tick, the clock a little past the longest wait between read-backs."""
    clock.now += timedelta(seconds=seconds)
    reconciler.run_due()


def rollout_row(database: Database, rollout_id: int) -> Rollout:
    with database.session() as session:
        rollout = session.get(Rollout, rollout_id)
        assert rollout is not None
        return rollout


def until_step(
    reconciler: Reconciler, clock: Clock, database: Database, rollout_id: int, step: int
) -> Rollout:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        tick(reconciler, clock, 5)
        rollout = rollout_row(database, rollout_id)
        if rollout.step_index == step:
            return rollout
        time.sleep(0.3)
    pytest.fail(f"rollout {rollout_id} never reached step {step}")


def route_weights(kube_api: KubeApi, namespace: str) -> dict[str, int]:
    route = kube_api.get(HTTPROUTE, namespace, "chat")
    assert route is not None
    return {r["name"]: r["weight"] for r in route["spec"]["rules"][0]["backendRefs"]}


def test_a_hand_edited_route_is_restored_within_two_ticks_with_a_drift_event(
    database: Database, kube_api: KubeApi, namespace: str
) -> None:
    setup_model(database, namespace, routing=RoutingMode.GATEWAY_API)
    clock = Clock()
    reconciler = Reconciler(database, KubeDriver(kube_api), ScriptedProber(), clock=clock)
    deploy_v1(database, reconciler, clock)
    rollout_id = start_v2(database, clock, PAUSED_AT_50)
    until_step(reconciler, clock, database, rollout_id, 1)
    assert route_weights(kube_api, namespace) == {"chat-v1": 50, "chat-v2": 50}
    # someone runs `kubectl patch httproute chat --type=json -p '[...weight 90, 10]'`
    patch_route_by_hand(kube_api, namespace, "chat", [90, 10])
    tick(reconciler, clock)
    tick(reconciler, clock)
    assert route_weights(kube_api, namespace) == {"chat-v1": 50, "chat-v2": 50}
    drift = [e for e in events(database, rollout_id) if e.kind == "drift"]
    assert len(drift) == 1
    assert "route weight 10% instead of 50% (changed by kubectl-patch)" in drift[0].message
    assert drift[0].evidence["drift"][0]["manager"] == "kubectl-patch"
    assert rollout_row(database, rollout_id).phase is Phase.PROGRESSING
    # the same edit again: the control plane stops fighting and asks a person
    patch_route_by_hand(kube_api, namespace, "chat", [90])
    tick(reconciler, clock)
    paused = rollout_row(database, rollout_id)
    assert paused.phase is Phase.PAUSED
    assert paused.reason.startswith("drift came back")
    assert route_weights(kube_api, namespace) == {"chat-v1": 50, "chat-v2": 50}


def test_stable_scaled_to_zero_mid_pause_is_restored_and_no_weight_moves_meanwhile(
    database: Database, kube_api: KubeApi, namespace: str
) -> None:
    setup_model(database, namespace)
    clock = Clock()
    reconciler = Reconciler(database, KubeDriver(kube_api), ScriptedProber(), clock=clock)
    deploy_v1(database, reconciler, clock)
    rollout_id = start_v2(database, clock, PAUSED_AT_50)
    held = until_step(reconciler, clock, database, rollout_id, 1)
    weight = held.routed_weight
    # `kubectl scale deployment chat-v1 --replicas=0`
    scale_by_hand(kube_api, namespace, "chat-v1", 0)
    seen_weights = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        tick(reconciler, clock, 5)
        rollout = rollout_row(database, rollout_id)
        seen_weights.append(rollout.routed_weight)
        v1 = kube_api.get(DEPLOYMENT, namespace, "chat-v1")
        assert v1 is not None
        ready = (v1.get("status") or {}).get("readyReplicas", 0)
        if v1["spec"]["replicas"] == 2 and ready == 2 and rollout.stable_short_since is None:
            break
        time.sleep(0.3)
    assert set(seen_weights) == {weight}, "no weight increase while stable was short"
    assert rollout_row(database, rollout_id).step_index == 1
    messages = [e.message for e in events(database, rollout_id)]
    # the scale subresource records no field manager: the event says so
    assert any("stable replicas 0 instead of 2 (changed by someone else" in m for m in messages), (
        messages
    )


def replay(
    changes: list[dict[str, Any]], start: list[dict[str, Any]]
) -> list[tuple[dict[str, int], dict[str, int]]]:
    """The route's weights and each Deployment's ready replicas right after every change of
    the route the API server recorded (each a traffic move the control plane made), in
    resourceVersion order, from the objects as they were at the start."""
    weights: dict[str, int] = {}
    ready: dict[str, int] = {}
    states = []
    changes = [{"type": "START", "object": obj} for obj in start] + [
        c for c in changes if c.get("type") in ("ADDED", "MODIFIED", "DELETED")
    ]
    for change in sorted(
        changes,
        key=lambda c: (c["type"] != "START", int(c["object"]["metadata"]["resourceVersion"])),
    ):
        obj = change["object"]
        if obj["kind"] == "HTTPRoute":
            weights = {
                r["name"]: r.get("weight", 1) for r in obj["spec"]["rules"][0]["backendRefs"]
            }
            if change["type"] != "START":
                states.append((dict(weights), dict(ready)))
        elif obj["kind"] == "Deployment":
            name = obj["metadata"]["name"]
            ready[name] = (
                0 if change["type"] == "DELETED" else obj["status"].get("readyReplicas", 0)
            )
    states.append((dict(weights), dict(ready)))  # and how it all ended
    return states


def abort_at_half_and_watch(
    database: Database,
    kube_api: KubeApi,
    namespace: str,
    *,
    before_abort: Any = None,
) -> tuple[list[tuple[dict[str, int], dict[str, int]]], list[str]]:
    """v2 at 50% (paused there), then an abort, with the API server watched throughout:
    the states after every change, and the rollout's event messages."""
    clock = Clock()
    reconciler = Reconciler(database, KubeDriver(kube_api), ScriptedProber(), clock=clock)
    deploy_v1(database, reconciler, clock)
    strategy = Strategy(steps=(SetWeight(weight=50), Pause(), SetWeight(weight=100)))
    rollout_id = start_v2(database, clock, strategy)
    drive(reconciler, clock, database, rollout_id, until={Phase.PAUSED})
    assert route_weights(kube_api, namespace) == {"chat-v1": 50, "chat-v2": 50}
    listed = kube_api.request("GET", DEPLOYMENT.path(namespace), action="list")
    since = str(listed["metadata"]["resourceVersion"])
    route = kube_api.get(HTTPROUTE, namespace, "chat")
    assert route is not None
    start = [{**d, "kind": "Deployment"} for d in listed["items"]]
    start.append({**route, "kind": "HTTPRoute"})
    recorded: list[dict[str, Any]] = []

    def watch(path: str) -> None:
        recorded.extend(watch_events(kube_api, path, resource_version=since, seconds=20))

    watchers = [
        threading.Thread(target=watch, args=(path,))
        for path in (DEPLOYMENT.path(namespace), HTTPROUTE.path(namespace))
    ]
    for watcher in watchers:
        watcher.start()
    time.sleep(1)
    if before_abort is not None:
        before_abort()
    with database.session() as session:
        service.request_command(
            session, rollout_id=rollout_id, command=Command.ABORT, actor="ops", now=clock()
        )
    drive(reconciler, clock, database, rollout_id, until={Phase.ABORTED})
    for watcher in watchers:
        watcher.join(40)
    states = replay(recorded, start)
    assert states, "the watch saw the abort"
    final_weights, final_ready = states[-1]
    assert final_weights.get("chat-v1") == 100
    assert final_weights.get("chat-v2", 0) == 0
    assert final_ready.get("chat-v1") == 2
    return states, [e.message for e in events(database, rollout_id)]


def test_an_abort_without_gpu_room_never_sends_traffic_where_no_replica_can_take_it(
    database: Database, kube_api: KubeApi, namespace: str, gpu_node: dict[str, Any]
) -> None:
    # 2 x 1 GPU, budget 2: no room to surge
    setup_model(
        database, namespace, routing=RoutingMode.GATEWAY_API, gpu_node=gpu_node, gpu_budget=2
    )
    states, messages = abort_at_half_and_watch(database, kube_api, namespace)
    for weights, ready in states:
        for version, weight in weights.items():
            if weight > 0:
                # never a share on a version with no ready replica, and never a version more
                # than the one replica the budget forces short of its share
                assert ready.get(version, 0) >= max(1, -(-2 * weight // 100) - 1), (
                    weights,
                    ready,
                )
    assert any("no GPU room beside the canary" in m for m in messages), messages


def test_an_abort_after_stable_was_lost_never_routes_to_the_empty_stable(
    database: Database, kube_api: KubeApi, namespace: str, gpu_node: dict[str, Any]
) -> None:
    setup_model(database, namespace, routing=RoutingMode.GATEWAY_API, gpu_node=gpu_node)

    def lose_stable() -> None:  # `kubectl scale deployment chat-v1 --replicas=0`
        scale_by_hand(kube_api, namespace, "chat-v1", 0)
        wait_for(
            "chat-v1 to have no ready replica",
            lambda: (
                not (kube_api.get(DEPLOYMENT, namespace, "chat-v1") or {})
                .get("status", {})
                .get("readyReplicas")
            ),
            timeout=30,
        )

    states, messages = abort_at_half_and_watch(
        database, kube_api, namespace, before_abort=lose_stable
    )
    for weights, ready in states:
        for version, weight in weights.items():
            if weight > 0:  # the canary keeps what the lost stable cannot carry
                assert ready.get(version, 0) >= 1, ("to a version with none ready", weights, ready)
    assert any("100% on the canary" in m for m in messages), messages
