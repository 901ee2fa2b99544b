"""The Kubernetes driver against a real API server, scheduler and controllers (kwok nodes)."""

from __future__ import annotations

from typing import Any

import pytest

from controlplane.kube import (
    KubeDriver,
    PermanentKubeError,
    ProblemKind,
    TemporaryKubeError,
    Track,
    VersionState,
    Workload,
)
from controlplane.kube.client import DEPLOYMENT, HTTPROUTE, POD, SERVICE, KubeApi
from controlplane.kube.errors import FieldConflictError, NotFoundError
from controlplane.kube.render import Backend, render_deployment, routing_objects, workload_for
from controlplane.models import (
    Model,
    ModelCreate,
    ModelVersion,
    RoutingMode,
    VersionCreate,
    env_json,
    utcnow,
)
from tests.support.cluster import patch_route_by_hand, scale_by_hand, wait_for

pytestmark = pytest.mark.cluster

FAULT = "sim.controlplane.dev/fault"


def workload(
    namespace: str,
    version: str,
    node: dict[str, Any] | None = None,
    *,
    replicas: int = 1,
    gpus: int = 4,
    track: Track = Track.CANARY,
    fault: str | None = None,
    image: str = "vllm/vllm-openai:v0.11.0",
) -> Workload:
    return Workload(
        model="chat",
        namespace=namespace,
        version=version,
        image=image,
        port=8000,
        gpus=gpus,
        gpu_resource="nvidia.com/gpu",
        artifact_uri=f"s3://models/chat/{version}",
        replicas=replicas,
        track=track,
        args=("--model", f"s3://models/chat/{version}"),
        extra_labels=((FAULT, fault),) if fault else (),
        node_selector=tuple(node["node_selector"].items()) if node else (),
        tolerations=tuple(tuple(t.items()) for t in node["tolerations"]) if node else (),
    )


def observed(driver: KubeDriver, namespace: str, version: str) -> VersionState:
    return driver.observe_version(namespace, "chat", version)


def until_ready(
    driver: KubeDriver, namespace: str, version: str, timeout: float = 60
) -> VersionState:
    return wait_for(
        f"chat-{version} to be ready",
        lambda: (s := observed(driver, namespace, version)).is_ready and s,
        timeout=timeout,
    )


def test_two_4gpu_versions_fill_an_8gpu_node_and_a_third_is_unschedulable(
    driver: KubeDriver, namespace: str, gpu_node: dict[str, Any]
) -> None:
    driver.apply_version(workload(namespace, "v1", gpu_node, track=Track.STABLE))
    driver.apply_version(workload(namespace, "v2", gpu_node))
    assert until_ready(driver, namespace, "v1").ready == 1
    assert until_ready(driver, namespace, "v2").ready == 1

    driver.apply_version(workload(namespace, "v3", gpu_node))
    state = wait_for(
        "chat-v3 to be reported unschedulable",
        lambda: (s := observed(driver, namespace, "v3")).failure and s,
    )
    assert not state.is_ready
    assert state.failure is not None
    assert state.failure.kind is ProblemKind.UNSCHEDULABLE
    assert "needs 4 nvidia.com/gpu, 0 free on the 1 GPU nodes it may use" in state.failure.message
    assert "Insufficient nvidia.com/gpu" in state.failure.message


def test_crash_looping_version_is_reported_within_seconds(
    driver: KubeDriver, namespace: str
) -> None:
    driver.apply_version(workload(namespace, "v2", gpus=0, fault="crashloop"))
    state = wait_for(
        "a crash loop to be reported",
        lambda: (s := observed(driver, namespace, "v2")).failure and s,
        timeout=30,
    )
    assert state.failure is not None
    assert state.failure.kind is ProblemKind.CRASH_LOOP
    assert state.failure.restarts > 0
    assert "crash-looping" in state.failure.message
    assert state.ready == 0


def test_unpullable_image_is_reported(driver: KubeDriver, namespace: str) -> None:
    driver.apply_version(
        workload(namespace, "v2", gpus=0, fault="imagepull", image="registry.invalid/nope:1")
    )
    state = wait_for(
        "an image pull failure to be reported",
        lambda: (s := observed(driver, namespace, "v2")).failure and s,
        timeout=30,
    )
    assert state.failure is not None
    assert state.failure.kind is ProblemKind.IMAGE_PULL
    assert "registry.invalid/nope:1" in state.failure.message


def test_httproute_weights_set_to_90_10_read_back_as_90_10(
    driver: KubeDriver, namespace: str
) -> None:
    driver.apply_version(workload(namespace, "v1", gpus=0, track=Track.STABLE))
    driver.apply_version(workload(namespace, "v2", gpus=0))
    until_ready(driver, namespace, "v2")
    driver.set_weight(
        model="chat",
        namespace=namespace,
        port=8000,
        gateway="infra/llm-gw",
        stable_version="v1",
        canary_version="v2",
        weight=10,
    )
    reading = driver.read_weight(
        routing_mode=RoutingMode.GATEWAY_API,
        model="chat",
        namespace=namespace,
        stable_version="v1",
        canary_version="v2",
    )
    assert (reading.stable, reading.canary) == (90, 10)
    route = driver.api.get(HTTPROUTE, namespace, "chat")
    assert route is not None
    refs = route["spec"]["rules"][0]["backendRefs"]
    assert [(r["name"], r["weight"]) for r in refs] == [("chat-v1", 90), ("chat-v2", 10)]
    assert route["spec"]["parentRefs"] == [
        {
            "group": "gateway.networking.k8s.io",
            "kind": "Gateway",
            "name": "llm-gw",
            "namespace": "infra",
        }
    ]


def test_traffic_is_never_routed_to_a_canary_without_ready_replicas(
    driver: KubeDriver, namespace: str
) -> None:
    driver.apply_version(workload(namespace, "v2", gpus=0, fault="crashloop"))
    with pytest.raises(TemporaryKubeError, match="no ready replica"):
        driver.set_weight(
            model="chat",
            namespace=namespace,
            port=8000,
            gateway="gw",
            stable_version="v1",
            canary_version="v2",
            weight=10,
        )
    assert driver.api.get(HTTPROUTE, namespace, "chat") is None


def test_replicas_mode_weight_is_the_share_of_ready_pods(
    driver: KubeDriver, namespace: str
) -> None:
    driver.apply_version(workload(namespace, "v1", gpus=0, replicas=3, track=Track.STABLE))
    driver.apply_version(workload(namespace, "v2", gpus=0, replicas=1))
    driver.apply_routing(
        routing_mode=RoutingMode.REPLICAS,
        model="chat",
        namespace=namespace,
        port=8000,
        gateway=None,
        backends=[],
    )
    until_ready(driver, namespace, "v1")
    until_ready(driver, namespace, "v2")
    reading = driver.read_weight(
        routing_mode=RoutingMode.REPLICAS,
        model="chat",
        namespace=namespace,
        stable_version="v1",
        canary_version="v2",
    )
    assert (reading.stable, reading.canary) == (75, 25)
    service = driver.api.get(SERVICE, namespace, "chat")
    assert service is not None
    assert service["spec"]["selector"] == {"app.kubernetes.io/name": "chat"}


def test_applying_the_same_version_twice_changes_nothing(
    driver: KubeDriver, namespace: str
) -> None:
    w = workload(namespace, "v1", gpus=0)
    first = driver.apply_version(w)
    until_ready(driver, namespace, "v1")
    before = driver.api.get(DEPLOYMENT, namespace, "chat-v1")
    assert before is not None
    second = driver.apply_version(w)
    assert second.deployment["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert (
        second.service["metadata"]["resourceVersion"]
        == first.service["metadata"]["resourceVersion"]
    )
    assert second.deployment["metadata"]["generation"] == 1


def test_env_from_a_secret_reaches_the_cluster_as_a_secret_key_ref(
    driver: KubeDriver, namespace: str
) -> None:
    """A model's env as the API takes it, through the registry's types and workload_for, is
    accepted by the API server as rendered: Secret references as valueFrom.secretKeyRef
    (names and keys our checks accept, dots included), plain values as given."""
    now = utcnow()
    stamps = {"created_at": now, "created_by": "t", "updated_at": now, "updated_by": "t"}
    data = ModelCreate(
        name="chat",
        namespace=namespace,
        image="vllm/vllm-openai:v0.11.0",
        gpus_per_replica=0,
        env={
            "HF_TOKEN": {"secret": "hf-token", "key": "token"},
            "WANDB_API_KEY": "plain-but-named",  # redacted in the API, still deployed
            "HF_HOME": "/cache",
        },
    )
    version_data = VersionCreate(
        version="v1",
        artifact_uri="s3://models/chat/v1",
        env={
            "EXTRA_TOKEN": {"secret": "team.hf-token", "key": "HF_TOKEN.v2_x-y", "optional": True}
        },
    )
    model = Model.model_validate(data.model_dump(), update=stamps)
    version = ModelVersion.model_validate(
        version_data,
        update={"model_id": 1, "env": env_json(version_data.env), "status_changed_at": now}
        | {"created_at": now, "created_by": "t"},
    )
    w = workload_for(model, version, track=Track.CANARY, replicas=1)
    first = driver.apply_version(w)
    deployed = driver.api.get(DEPLOYMENT, namespace, "chat-v1")
    assert deployed is not None
    env = {e["name"]: e for e in deployed["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["HF_TOKEN"] == {
        "name": "HF_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": "hf-token", "key": "token", "optional": False}},
    }
    assert env["EXTRA_TOKEN"] == {
        "name": "EXTRA_TOKEN",
        "valueFrom": {
            "secretKeyRef": {"name": "team.hf-token", "key": "HF_TOKEN.v2_x-y", "optional": True}
        },
    }
    assert env["WANDB_API_KEY"] == {"name": "WANDB_API_KEY", "value": "plain-but-named"}
    assert env["HF_HOME"] == {"name": "HF_HOME", "value": "/cache"}
    # the server keeps the references as rendered: applying again leaves the spec as it was
    again = driver.apply_version(w)
    assert first.deployment["metadata"]["generation"] == 1
    assert again.deployment["metadata"]["generation"] == 1


def test_promotion_relabels_the_track_without_restarting_pods(
    driver: KubeDriver, namespace: str
) -> None:
    driver.apply_version(workload(namespace, "v2", gpus=0, replicas=2))
    until_ready(driver, namespace, "v2")
    selector = "app.kubernetes.io/name=chat,controlplane.dev/version=v2"
    pods_before = {
        p["metadata"]["uid"] for p in driver.api.list(POD, namespace, label_selector=selector)
    }
    applied = driver.apply_version(
        workload(namespace, "v2", gpus=0, replicas=2, track=Track.STABLE)
    )
    assert applied.deployment["metadata"]["labels"]["controlplane.dev/track"] == "stable"
    assert applied.deployment["metadata"]["generation"] == 1, "the pod template did not change"
    state = until_ready(driver, namespace, "v2")
    assert state.track == "stable"
    pods_after = {
        p["metadata"]["uid"] for p in driver.api.list(POD, namespace, label_selector=selector)
    }
    assert pods_after == pods_before


def test_replicas_someone_else_set_are_named_then_taken_back(
    driver: KubeDriver, kube_api: KubeApi, namespace: str
) -> None:
    w = workload(namespace, "v1", gpus=0, replicas=1)
    driver.apply_version(w)
    assert observed(driver, namespace, "v1").replicas_owner is None, "ours alone"
    # an HPA (or any controller) takes over replicas with its own field manager
    kube_api.apply(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "chat-v1", "namespace": namespace},
            "spec": {"replicas": 3},
        },
        field_manager="autoscaler",
        force=True,
    )
    state = observed(driver, namespace, "v1")
    assert (state.desired, state.replicas_owner) == (3, "autoscaler")
    applied = driver.apply_version(w.with_replicas(1))
    assert applied.replicas_owned_elsewhere, "it was someone else's when we applied"
    assert applied.deployment["spec"]["replicas"] == 1, "the rollout's decision stands"
    assert observed(driver, namespace, "v1").replicas_owner is None


def test_kubectl_scale_leaves_no_manager_but_is_still_told_apart(
    driver: KubeDriver, kube_api: KubeApi, namespace: str
) -> None:
    driver.apply_version(workload(namespace, "v1", gpus=0, replicas=2))
    scale_by_hand(kube_api, namespace, "chat-v1", 0)
    state = observed(driver, namespace, "v1")
    assert state.desired == 0
    assert state.replicas_owner is not None
    assert state.replicas_owner.startswith("someone else")


def test_scale_down_and_delete_an_old_version(driver: KubeDriver, namespace: str) -> None:
    driver.apply_version(workload(namespace, "v1", gpus=0, replicas=2))
    until_ready(driver, namespace, "v1")
    driver.apply_version(workload(namespace, "v1", gpus=0, replicas=0))
    state = wait_for(
        "chat-v1 to scale to zero",
        lambda: (s := observed(driver, namespace, "v1")).ready == 0 and s.desired == 0 and s,
    )
    assert state.is_ready
    assert driver.delete_version(namespace, "chat", "v1")
    assert not observed(driver, namespace, "v1").exists
    assert driver.api.get(SERVICE, namespace, "chat-v1") is None
    assert not driver.delete_version(namespace, "chat", "v1"), "deleting again is a no-op"


def test_api_errors_are_translated_with_the_server_message(
    driver: KubeDriver, kube_api: KubeApi, namespace: str
) -> None:
    with pytest.raises(NotFoundError, match='namespaces "no-such-ns" not found'):
        driver.apply_version(workload("no-such-ns", "v1", gpus=0))
    invalid = render_deployment(workload(namespace, "v1", gpus=0))
    invalid["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = 70000
    with pytest.raises(PermanentKubeError, match="containerPort"):
        kube_api.apply(invalid, field_manager="controlplane")


def test_unreachable_api_server_is_a_temporary_error() -> None:
    from kubernetes import client as k8s_client

    configuration = k8s_client.Configuration()
    configuration.host = "https://127.0.0.1:1"
    api = KubeApi(k8s_client.ApiClient(configuration), timeout=(1.0, 1.0))
    with pytest.raises(TemporaryKubeError, match="did not answer"):
        api.get(DEPLOYMENT, "default", "x")
    api.close()


def test_routing_backends_render_for_both_versions(driver: KubeDriver, namespace: str) -> None:
    driver.apply_routing(
        routing_mode=RoutingMode.GATEWAY_API,
        model="chat",
        namespace=namespace,
        port=8000,
        gateway="gw",
        backends=[Backend("v1", 100)],
    )
    reading = driver.read_weight(
        routing_mode=RoutingMode.GATEWAY_API,
        model="chat",
        namespace=namespace,
        stable_version="v1",
        canary_version="v2",
    )
    assert (reading.stable, reading.canary) == (100, 0)


def test_progress_deadline_exceeded_is_reported(driver: KubeDriver, namespace: str) -> None:
    from dataclasses import replace

    stuck = replace(
        workload(namespace, "v2", gpus=0, fault="imagepull", image="registry.invalid/slow:1"),
        progress_deadline_seconds=2,
    )
    driver.apply_version(stuck)

    def deadline_passed() -> VersionState | None:
        state = observed(driver, namespace, "v2")
        kinds = {problem.kind for problem in state.problems}
        return state if ProblemKind.PROGRESS_DEADLINE in kinds else None

    state = wait_for("the progress deadline to pass", deadline_passed, timeout=60)
    assert "exceeded its progress deadline (2s)" in " ".join(p.message for p in state.problems)


def test_gateway_api_and_inference_extension_crds_are_served(kube_api: KubeApi) -> None:
    routes = kube_api.request("GET", "/apis/gateway.networking.k8s.io/v1", action="discover")
    assert "httproutes" in {r["name"] for r in routes["resources"]}
    pools = kube_api.request("GET", "/apis/inference.networking.k8s.io/v1", action="discover")
    assert "inferencepools" in {r["name"] for r in pools["resources"]}


def test_a_hand_edited_route_is_a_field_manager_conflict_naming_the_editor(
    driver: KubeDriver, namespace: str
) -> None:
    """The 409 is the real API server's, not a body written by hand: someone runs
    `kubectl patch httproute chat --type=json ...` and our next apply conflicts with them."""
    route = {
        "routing_mode": RoutingMode.GATEWAY_API,
        "model": "chat",
        "namespace": namespace,
        "port": 8000,
        "gateway": "gw",
    }
    driver.apply_routing(**route, backends=[Backend("v1", 50), Backend("v2", 50)])  # type: ignore[arg-type]
    patch_route_by_hand(driver.api, namespace, "chat", [90, 10])
    ours = routing_objects(**route, backends=[Backend("v1", 50), Backend("v2", 50)])  # type: ignore[arg-type]
    with pytest.raises(FieldConflictError) as caught:  # an apply that does not force
        driver.api.apply(ours[0], field_manager=driver.field_manager)
    conflict = caught.value
    assert conflict.status == 409
    assert conflict.managers == ["kubectl-patch"]
    assert any(".spec.rules" in field for field in conflict.fields), conflict.fields
    assert isinstance(conflict, PermanentKubeError), "retrying the same apply will never work"
    # the driver, as a controller should, forces: the route is the rollout's again
    reading = driver.read_weight(
        routing_mode=RoutingMode.GATEWAY_API,
        model="chat",
        namespace=namespace,
        stable_version="v1",
        canary_version="v2",
    )
    assert (reading.canary, reading.owner) == (10, "kubectl-patch")
    driver.apply_routing(**route, backends=[Backend("v1", 50), Backend("v2", 50)])  # type: ignore[arg-type]
    reading = driver.read_weight(
        routing_mode=RoutingMode.GATEWAY_API,
        model="chat",
        namespace=namespace,
        stable_version="v1",
        canary_version="v2",
    )
    assert (reading.canary, reading.owner) == (50, None)
