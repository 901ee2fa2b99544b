"""inference-pool routing end to end on the engine and a real API server: each version gets
its InferencePool (selecting that version's pods only) with its own endpoint picker, and the
model's HTTPRoute weights backendRefs to the pools (the inference extension's pool rollout
guide). A healthy canary is promoted and the old version's pool and picker removed; a
failing one has its traffic put back on stable's pool first."""

from __future__ import annotations

from typing import Any

import pytest

from controlplane.analysis.verdict import Verdict
from controlplane.db import Database
from controlplane.kube import KubeDriver
from controlplane.kube.client import DEPLOYMENT, HTTPROUTE, INFERENCEPOOL, POD, SERVICE, KubeApi
from controlplane.kube.render import selector_labels
from controlplane.models import EndpointPicker, ModelCreate, Phase, RoutingMode, VersionCreate
from controlplane.registry import models as model_service
from controlplane.registry import versions as version_service
from controlplane.rollout.reconciler import Reconciler
from tests.rollout.test_engine import (
    STRATEGY,
    Clock,
    ScriptedProber,
    deploy_v1,
    drive,
    start_v2,
)

pytestmark = pytest.mark.cluster


def setup(database: Database, namespace: str) -> None:
    with database.session() as session:
        model_service.create_model(
            session,
            data=ModelCreate(
                name="chat",
                namespace=namespace,
                image="vllm/vllm-openai:v0.11.0",
                gpus_per_replica=0,
                replicas=2,
                routing_mode=RoutingMode.INFERENCE_POOL,
                gateway="infra/inference-gateway",
                endpoint_picker=EndpointPicker(service_account="default", config_map="epp-plugins"),
            ),
            actor="test",
        )
        for version in ("v1", "v2", "v3"):
            version_service.register_version(
                session,
                model_name="chat",
                data=VersionCreate(version=version, artifact_uri=f"s3://models/chat/{version}"),
                actor="test",
            )


def route(api: KubeApi, namespace: str) -> list[tuple[str, str, int]]:
    obj = api.get(HTTPROUTE, namespace, "chat")
    assert obj is not None
    return [(r["kind"], r["name"], r["weight"]) for r in obj["spec"]["rules"][0]["backendRefs"]]


def pool_of(api: KubeApi, namespace: str, version: str) -> dict[str, Any] | None:
    return api.get(INFERENCEPOOL, namespace, f"chat-{version}")


def test_each_version_gets_its_pool_and_picker_and_the_route_weights_the_pools(
    database: Database, kube_api: KubeApi, namespace: str
) -> None:
    setup(database, namespace)
    clock, prober = Clock(), ScriptedProber(Verdict.PASS)
    driver = KubeDriver(kube_api)
    reconciler = Reconciler(database, driver, prober, clock=clock)
    deploy_v1(database, reconciler, clock)
    assert route(kube_api, namespace) == [("InferencePool", "chat-v1", 100)]
    v1_pool = pool_of(kube_api, namespace, "v1")
    assert v1_pool is not None
    assert v1_pool["spec"]["selector"]["matchLabels"] == selector_labels("chat", "v1")
    assert v1_pool["spec"]["endpointPickerRef"]["name"] == "chat-v1-epp"
    picker = kube_api.get(DEPLOYMENT, namespace, "chat-v1-epp")
    assert picker is not None
    args = picker["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[:4] == ["--pool-name", "chat-v1", "--pool-namespace", namespace]
    assert "--config-file" in args
    assert kube_api.get(SERVICE, namespace, "chat-v1-epp") is not None
    # the picker's pod is not one of the pool's servers, nor the model's
    pool_pods = kube_api.list(POD, namespace, label_selector="app.kubernetes.io/name=chat")
    assert pool_pods
    assert all(not p["metadata"]["name"].startswith("chat-v1-epp") for p in pool_pods)

    # a healthy v2: its pool and picker, 50/50 on the pools, then v1's removed
    seen: list[list[tuple[str, str, int]]] = []
    original = driver.apply_routing

    def spy(**kwargs: Any) -> None:
        original(**kwargs)
        seen.append(route(kube_api, namespace))

    driver.apply_routing = spy  # type: ignore[method-assign]
    second = start_v2(database, clock, STRATEGY)
    drive(reconciler, clock, database, second, until={Phase.SUCCEEDED})
    assert [("InferencePool", "chat-v1", 50), ("InferencePool", "chat-v2", 50)] in seen
    assert route(kube_api, namespace) == [("InferencePool", "chat-v2", 100)]
    assert pool_of(kube_api, namespace, "v1") is None
    assert kube_api.get(DEPLOYMENT, namespace, "chat-v1-epp") is None
    assert kube_api.get(SERVICE, namespace, "chat-v1-epp") is None
    assert pool_of(kube_api, namespace, "v2") is not None

    # a failing v3: the route goes back to v2's pool in the pass that decides
    with database.session() as session:
        from controlplane.rollout import service

        third = service.start_rollout(
            session, model_name="chat", version="v3", strategy=STRATEGY, actor="ci", now=clock()
        )
    assert third.id is not None
    drive(reconciler, clock, database, third.id, until={Phase.PROGRESSING})
    prober.verdict = Verdict.FAIL
    drive(reconciler, clock, database, third.id, until={Phase.ROLLING_BACK, Phase.ROLLED_BACK})
    assert route(kube_api, namespace) == [
        ("InferencePool", "chat-v2", 100),
        ("InferencePool", "chat-v3", 0),
    ]
    drive(reconciler, clock, database, third.id, until={Phase.ROLLED_BACK})


def test_a_canary_whose_picker_is_not_available_takes_no_traffic(
    database: Database, kube_api: KubeApi, namespace: str
) -> None:
    setup(database, namespace)
    driver = KubeDriver(kube_api)
    clock = Clock()
    reconciler = Reconciler(database, driver, ScriptedProber(), clock=clock)
    deploy_v1(database, reconciler, clock)
    kube_api.delete(DEPLOYMENT, namespace, "chat-v1-epp")
    state = driver.observe_version(namespace, "chat", "v1", endpoint_picker=True)
    assert state.ready == 0
    assert state.note == "endpoint picker chat-v1-epp missing"
    assert driver.observe_version(namespace, "chat", "v1").ready == 2
