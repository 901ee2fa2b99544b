"""LoRA adapter rollouts end to end on the parts they own: the database, the reconciler and
the pool keeper, a real API server whose kwok pods form a base pool, one simulated vLLM
server per pod (reached through the pod address map, as the control plane is configured in
the demo), and the InferenceModelRewrite the gateway would read.

What must hold whatever the outcome: the pool's Deployment is never changed and no pod is
created; an adapter takes traffic only once every serving pod holds it; a rollback puts the
model name back on the stable adapter before it unloads the canary.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from controlplane.analysis.verdict import Verdict
from controlplane.db import Database
from controlplane.kube import KubeDriver
from controlplane.kube.adapters import ADAPTERS_GATE, AddressMap, PoolPod, PoolState
from controlplane.kube.client import DEPLOYMENT, POD, KubeApi, rewrite_resource
from controlplane.kube.vllm import VllmAdmin
from controlplane.models import (
    ModelCreate,
    ModelVersion,
    Phase,
    PoolCreate,
    Rollout,
    VersionCreate,
    VersionStatus,
)
from controlplane.registry import models as model_service
from controlplane.registry import pools as pool_service
from controlplane.registry import versions as version_service
from controlplane.rollout import service
from controlplane.rollout.keeper import PoolKeeper
from controlplane.rollout.reconciler import Reconciler
from controlplane.rollout.schemas import RolloutPublic
from controlplane.rollout.strategy import Analysis, Pause, SetWeight, Strategy
from controlplane.simulate import harness
from controlplane.simulate.pods import PodServers
from controlplane.simulate.server import ServerConfig
from tests.rollout.test_engine import Clock, ScriptedProber, drive, events
from tests.support.cluster import wait_for

pytestmark = pytest.mark.cluster

BASE = "meta-llama/Llama-3.1-8B-Instruct"
POOL_LABELS = {"app": "llama-base"}
REWRITE_API = "inference.networking.x-k8s.io/v1alpha2"


def base_deployment(namespace: str, replicas: int, *, gated: bool) -> dict[str, Any]:
    """The team's own base-model Deployment (vLLM with runtime LoRA updating)."""
    spec: dict[str, Any] = {
        "containers": [
            {
                "name": "vllm",
                "image": "vllm/vllm-openai:v0.11.0",
                "args": ["--model", BASE, "--enable-lora", "--max-loras", "4"],
                "env": [{"name": "VLLM_ALLOW_RUNTIME_LORA_UPDATING", "value": "True"}],
                "ports": [{"containerPort": 8000}],
            }
        ]
    }
    labels = dict(POOL_LABELS)
    if gated:
        spec["readinessGates"] = [{"conditionType": ADAPTERS_GATE}]
        # the local cluster's kwok stage that computes Ready from the gate, as a kubelet
        labels["sim.controlplane.dev/fault"] = "adapters-gate"
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "llama-base", "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": POOL_LABELS},
            "template": {"metadata": {"labels": labels}, "spec": spec},
        },
    }


def inference_pool(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "inference.networking.k8s.io/v1",
        "kind": "InferencePool",
        "metadata": {"name": "llama-base", "namespace": namespace},
        "spec": {
            "selector": {"matchLabels": POOL_LABELS},
            "targetPorts": [{"number": 8000}],
            "endpointPickerRef": {"name": "llama-epp", "port": {"number": 9002}},
        },
    }


def serving_pods(api: KubeApi, namespace: str) -> list[dict[str, Any]]:
    pods = api.list(POD, namespace, label_selector="app=llama-base")
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def snapshot(api: KubeApi, namespace: str) -> tuple[Any, Any, set[str]]:
    """The pool's Deployment spec and generation, and its pods' uids."""
    deployment = api.get(DEPLOYMENT, namespace, "llama-base")
    assert deployment is not None
    uids = {p["metadata"]["uid"] for p in serving_pods(api, namespace)}
    return deployment["metadata"]["generation"], deployment["spec"], uids


@pytest.fixture
def pool(
    database: Database,
    kube_api: KubeApi,
    kubeconfig: str,
    namespace: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[PodServers]:
    """A 3-pod base pool with a simulated vLLM per pod; ``chat`` served as adapters on it,
    with versions v1 and v2 registered."""
    gated = bool(getattr(request, "param", False))
    kube_api.apply(base_deployment(namespace, 3, gated=gated), field_manager="team", force=True)
    kube_api.apply(inference_pool(namespace), field_manager="team", force=True)
    with database.session() as session:
        pool_service.create_pool(
            session,
            data=PoolCreate(
                name="llama",
                namespace=namespace,
                base_model=BASE,
                deployment="llama-base",
                inference_pool="llama-base",
                max_loras=4,
                max_lora_rank=16,
            ),
            actor="test",
        )
        model_service.create_model(
            session, data=ModelCreate(name="chat", base_pool="llama"), actor="test"
        )
        for version in ("v1", "v2"):
            version_service.register_version(
                session,
                model_name="chat",
                data=VersionCreate(
                    version=version,
                    artifact_uri=f"s3://adapters/chat/{version}",
                    artifact_kind="lora_adapter",
                    base_model=BASE,
                    lora_rank=8,
                ),
                actor="test",
            )
    servers = PodServers(
        kubectl=harness.kubectl(),
        kubeconfig=kubeconfig,
        namespace=namespace,
        selector="app=llama-base",
        config=ServerConfig(model=BASE, version="base", time_scale=0.0, max_loras=4),
        map_file=tmp_path / "pods.json",
    )
    with servers:
        wait_for("3 pod servers", lambda: len(servers.urls()) == 3, timeout=90)
        yield servers


@pytest.fixture
def driver(kube_api: KubeApi, tmp_path: Path) -> Iterator[KubeDriver]:
    vllm = VllmAdmin()
    yield KubeDriver(kube_api, addresses=AddressMap(tmp_path / "pods.json"), vllm=vllm)
    vllm.close()


def rewrite(api: KubeApi, namespace: str) -> list[tuple[str, int]]:
    obj = api.get(rewrite_resource(REWRITE_API), namespace, "chat")
    assert obj is not None
    rule = obj["spec"]["rules"][0]
    assert rule["matches"] == [{"model": {"type": "Exact", "value": "chat"}}]
    assert obj["spec"]["poolRef"]["name"] == "llama-base"
    return [(t["modelRewrite"], t["weight"]) for t in rule["targets"]]


def start(database: Database, version: str, strategy: Strategy | None, clock: Clock) -> int:
    with database.session() as session:
        rollout = service.start_rollout(
            session, model_name="chat", version=version, strategy=strategy, actor="ci", now=clock()
        )
    assert rollout.id is not None
    return rollout.id


def holding(pool: PodServers) -> set[tuple[str, ...]]:
    """The different sets of adapters the pool's pods hold (one set: they all agree)."""
    held = pool.adapters()
    assert len(held) == 3, held
    return {tuple(adapters) for adapters in held.values()}


def status_of(database: Database, version: str) -> VersionStatus:
    with database.session() as session:
        row = session.exec(select(ModelVersion).where(ModelVersion.version == version)).one()
        return row.status


STRATEGY = Strategy(
    steps=(SetWeight(weight=10), Analysis(interval_seconds=60, count=2), SetWeight(weight=100))
)


def test_an_adapter_is_promoted_then_one_is_rolled_back_without_touching_the_pool(
    database: Database, kube_api: KubeApi, namespace: str, pool: PodServers, driver: KubeDriver
) -> None:
    before = snapshot(kube_api, namespace)
    clock, prober = Clock(), ScriptedProber(Verdict.PASS)
    reconciler = Reconciler(database, driver, prober, clock=clock)

    first = start(database, "v1", None, clock)
    drive(reconciler, clock, database, first, until={Phase.SUCCEEDED})
    assert holding(pool) == {("chat-v1",)}
    assert rewrite(kube_api, namespace) == [("chat-v1", 100)]

    # a healthy v2: loaded everywhere, 10% of the name's requests, then all, v1 unloaded
    second = start(database, "v2", STRATEGY, clock)
    seen: list[list[tuple[str, int]]] = []
    original = reconciler.driver.adapters.apply_rewrite

    def spy(**kwargs: Any) -> None:
        # every time the rewrite gives the canary weight, every pod holds it already
        if any(name == "chat-v2" for name, _ in kwargs["targets"]):
            assert all("chat-v2" in held for held in pool.adapters().values())
        seen.append(kwargs["targets"])
        original(**kwargs)

    reconciler.driver.adapters.apply_rewrite = spy  # type: ignore[method-assign]
    # loaded on every pod in one pass, routed in the next one at once: no poll in between
    reconciler.run_due()
    assert [("chat-v1", 90), ("chat-v2", 10)] in seen
    drive(reconciler, clock, database, second, until={Phase.SUCCEEDED})
    assert [("chat-v1", 90), ("chat-v2", 10)] in seen
    assert rewrite(kube_api, namespace) == [("chat-v2", 100)]
    # the old adapter stays loaded while the gateway may still route a request to it;
    # the keeper unloads it once it has been out of the route for the drain time
    keeper = PoolKeeper(database, driver, clock=clock)
    keeper.run()
    assert holding(pool) == {("chat-v1", "chat-v2")}
    clock.now += timedelta(seconds=11)
    keeper.run()
    assert holding(pool) == {("chat-v2",)}
    assert status_of(database, "v2") is VersionStatus.STABLE
    assert status_of(database, "v1") is VersionStatus.RETIRED

    # a v3 that fails its analysis: the name goes back to v2 first, then v3 is unloaded
    with database.session() as session:
        version_service.register_version(
            session,
            model_name="chat",
            data=VersionCreate(
                version="v3",
                artifact_uri="s3://adapters/chat/v3",
                artifact_kind="lora_adapter",
                base_model=BASE,
                lora_rank=8,
            ),
            actor="test",
        )
    prober.verdict = Verdict.FAIL
    seen.clear()
    third = start(database, "v3", STRATEGY, clock)
    done = drive(reconciler, clock, database, third, until={Phase.ROLLED_BACK})
    assert "analysis failed" in done.reason
    assert seen[-1] == [("chat-v2", 100)]
    assert rewrite(kube_api, namespace) == [("chat-v2", 100)]
    assert holding(pool) == {("chat-v2",)}
    assert status_of(database, "v3") is VersionStatus.ROLLED_BACK

    assert snapshot(kube_api, namespace) == before, "the pool's Deployment and pods unchanged"
    messages = [e.message for e in events(database, third)]
    assert any("weight 10% in force" in m for m in messages)


def test_an_adapter_the_pool_refuses_rolls_back_with_vllms_reason(
    database: Database, kube_api: KubeApi, namespace: str, pool: PodServers, driver: KubeDriver
) -> None:
    clock = Clock()
    reconciler = Reconciler(database, driver, ScriptedProber(), clock=clock)
    drive(reconciler, clock, database, start(database, "v1", None, clock), until={Phase.SUCCEEDED})
    # every pod is full: a 4-slot pool already holding four adapters loaded by someone else
    admin = VllmAdmin()
    for url in pool.urls().values():
        for name in ("other-a", "other-b", "other-c"):
            admin.load(url, name, f"/adapters/{name}")
    admin.close()
    rollout = start(database, "v2", STRATEGY, clock)
    done = drive(reconciler, clock, database, rollout, until={Phase.ROLLED_BACK})
    assert "refused adapter chat-v2" in done.reason
    assert "max_loras" in done.reason
    assert rewrite(kube_api, namespace) == [("chat-v1", 100)]
    assert all("chat-v2" not in held for held in pool.adapters().values())


def test_a_restarted_pod_and_a_new_pod_get_the_adapters_back(
    database: Database, kube_api: KubeApi, namespace: str, pool: PodServers, driver: KubeDriver
) -> None:
    clock = Clock()
    reconciler = Reconciler(database, driver, ScriptedProber(), clock=clock)
    keeper = PoolKeeper(database, driver)
    drive(reconciler, clock, database, start(database, "v1", None, clock), until={Phase.SUCCEEDED})
    paused = Strategy(steps=(SetWeight(weight=50), Pause(), SetWeight(weight=100)))
    rollout = start(database, "v2", paused, clock)
    drive(reconciler, clock, database, rollout, until={Phase.PAUSED})
    assert holding(pool) == {("chat-v1", "chat-v2")}

    # a container restarts in place, and a pod is deleted (its ReplicaSet makes another)
    restarted = sorted(pool.urls())[0]
    pool.restart(restarted)
    gone = sorted(pool.urls())[1]
    kube_api.delete(POD, namespace, gone)
    assert pool.adapters()[restarted] == []
    wait_for(
        "the new pod's server",
        lambda: len(pool.urls()) == 3 and gone not in pool.urls(),
        timeout=90,
    )
    new = next(name for name in pool.urls() if name not in (restarted, gone) and name)
    keeper.run()
    held = pool.adapters()
    assert held[restarted] == ["chat-v1", "chat-v2"]
    assert all(h == ["chat-v1", "chat-v2"] for h in held.values()), held
    assert new in held

    # the keeper's reading is on the pool; the rollout's (next pass) on the rollout, and
    # each move of its adapters is an event of its history
    with database.session() as session:
        reading = pool_service.to_public(pool_service.get_pool(session, "llama"))
    assert reading.observed_at is not None
    assert {p.pod: p.adapters for p in reading.pods if p.serving} == held
    clock.now += timedelta(seconds=61)
    reconciler.run_due()
    with database.session() as session:
        row = session.get(Rollout, rollout)
        assert row is not None
        placement = RolloutPublic.of(row).placement
    assert placement is not None
    assert (placement.pool, placement.stable_adapter, placement.canary_adapter) == (
        "llama",
        "chat-v1",
        "chat-v2",
    )
    assert {p.pod: p.adapters for p in placement.pods if p.serving} == held
    moves = [e for e in events(database, rollout) if e.kind == "placement"]
    assert moves[0].message == (
        "chat-v2: adapter on 0 of 3 serving pods of pool llama; "
        "chat-v1: adapter on 3 of 3 serving pods"
    )
    assert moves[1].message.startswith("chat-v2: adapter on 3 of 3 serving pods")
    assert moves[-1].message.startswith("chat-v2: adapter on 3 of 3 serving pods")
    assert new in str(moves[-1].evidence)
    assert len(moves) >= 2, [m.message for m in moves]


@pytest.mark.parametrize("pool", [True], indirect=True)
def test_a_gated_pod_is_ready_only_once_it_holds_what_the_routing_needs(
    database: Database, kube_api: KubeApi, namespace: str, pool: PodServers, driver: KubeDriver
) -> None:
    clock = Clock()
    reconciler = Reconciler(database, driver, ScriptedProber(), clock=clock)
    keeper = PoolKeeper(database, driver)
    drive(reconciler, clock, database, start(database, "v1", None, clock), until={Phase.SUCCEEDED})

    def gates() -> dict[str, str]:
        found = {}
        for pod in serving_pods(kube_api, namespace):
            for condition in pod["status"].get("conditions") or []:
                if condition["type"] == ADAPTERS_GATE:
                    found[pod["metadata"]["name"]] = condition["status"]
        return found

    def ready(pod: str) -> str:
        found = kube_api.get(POD, namespace, pod) or {}
        for condition in (found.get("status") or {}).get("conditions") or []:
            if condition["type"] == "Ready":
                return str(condition["status"])
        return "missing"

    keeper.run()
    assert set(gates().values()) == {"True"}
    victim = sorted(pool.urls())[0]
    wait_for("the gated pods to be Ready", lambda: ready(victim) == "True")
    pool.restart(victim)
    # a look at the pool before anything is loaded again: the gate of the pod that lost
    # what the routing needs closes, and the pod leaves the endpoints (Ready False)
    state = driver.adapters.observe_pool(pool_service_ref(database))
    assert driver.adapters.set_gates(state, {"chat-v1"}) == [victim]
    assert gates()[victim] == "False"
    wait_for("the restarted pod to be taken out (Ready False)", lambda: ready(victim) == "False")
    keeper.run()
    assert pool.adapters()[victim] == ["chat-v1"]
    assert gates()[victim] == "True"
    wait_for("the reloaded pod to be Ready again", lambda: ready(victim) == "True")


def pool_service_ref(database: Database) -> Any:
    from controlplane.models import BasePool
    from controlplane.rollout.base_pools import pool_ref

    with database.session() as session:
        row = session.exec(select(BasePool)).one()
        return pool_ref(row)


def test_a_gate_is_left_alone_on_a_pod_gone_or_going(namespace: str, driver: KubeDriver) -> None:
    # a pod deleted between the read and the patch (a scale-down, a drain) is no reason to
    # fail a pass, and so no reason to roll a rollout back
    def gated(name: str, *, terminating: bool) -> PoolPod:
        return PoolPod(
            name=name,
            serving=True,
            ready=False,
            gated=True,
            gate_open=False,
            url="http://127.0.0.1:9",
            adapters=frozenset({"chat-v1"}),
            terminating=terminating,
        )

    state = PoolState(
        "llama", namespace, (gated("gone-0", terminating=False), gated("going-1", terminating=True))
    )
    assert driver.adapters.set_gates(state, {"chat-v1"}) == []


def test_one_replica_at_a_time_acts_on_a_pool(
    database: Database, pool: PodServers, driver: KubeDriver
) -> None:
    clock = Clock()
    reconciler = Reconciler(database, driver, ScriptedProber(), clock=clock)
    drive(reconciler, clock, database, start(database, "v1", None, clock), until={Phase.SUCCEEDED})
    # another replica (its keeper, or a rollout of another model on the pool) holds the lease
    with database.session() as session:
        assert pool_service.claim_pool(session, "llama", owner="replica-b", now=clock())
    rollout = start(database, "v2", STRATEGY, clock)
    reconciler.run_due()
    assert holding(pool) == {("chat-v1",)}, "nothing loaded while another replica acts"
    held = [e.message for e in events(database, rollout) if e.kind == "hold"]
    assert any("base pool llama is being changed by another replica" in m for m in held), held
    keeper = PoolKeeper(database, driver, clock=clock, owner="replica-c")
    assert keeper.run() == 0
    with database.session() as session:
        assert pool_service.claim_pool(session, "llama", owner="replica-c", now=clock()) is False
    # the lease runs out (a replica died holding it): the rollout goes on
    clock.now += timedelta(seconds=31)
    drive(reconciler, clock, database, rollout, until={Phase.SUCCEEDED})
    assert holding(pool) == {("chat-v1", "chat-v2")}
    with database.session() as session:
        row = pool_service.get_pool(session, "llama")
        assert row.lease_owner is None, "released after each pass"
