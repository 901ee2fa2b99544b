"""What a version looks like in the cluster: pure rendering, pinned."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from controlplane.kube.render import (
    LABEL_TRACK,
    Backend,
    Track,
    Workload,
    render_deployment,
    render_httproute,
    render_model_service,
    render_version_service,
    routing_objects,
    workload_for,
)
from controlplane.models import ArtifactKind, Model, ModelVersion, RoutingMode

NOW = datetime(2026, 11, 28, tzinfo=UTC)


def make_model(**overrides: object) -> Model:
    fields: dict[str, object] = {
        "name": "chat",
        "namespace": "llm",
        "image": "vllm/vllm-openai:v0.11.0",
        "gpus_per_replica": 4,
        "replicas": 2,
        "port": 8000,
        "gpu_budget": 12,
        "args": ["--model", "{artifact_uri}", "--served-model-name", "{model}"],
        "env": {"HF_HOME": "/cache", "VLLM_LOGGING_LEVEL": "INFO"},
        "created_at": NOW,
        "created_by": "t",
        "updated_at": NOW,
        "updated_by": "t",
    }
    fields.update(overrides)
    return Model(**fields)


def make_version(**overrides: object) -> ModelVersion:
    fields: dict[str, object] = {
        "version": "v2",
        "artifact_uri": "s3://models/chat/v2",
        "model_id": 1,
        "status_changed_at": NOW,
        "created_at": NOW,
        "created_by": "t",
    }
    fields.update(overrides)
    return ModelVersion(**fields)


def workload(**overrides: object) -> Workload:
    return workload_for(make_model(**overrides), make_version(), track=Track.CANARY, replicas=1)


def test_version_resolves_against_model_defaults() -> None:
    w = workload_for(
        make_model(),
        make_version(env={"VLLM_LOGGING_LEVEL": "DEBUG"}),
        track=Track.CANARY,
        replicas=1,
    )
    assert w.name == "chat-v2"
    assert w.args == ("--model", "s3://models/chat/v2", "--served-model-name", "chat")
    assert dict(w.env) == {"HF_HOME": "/cache", "VLLM_LOGGING_LEVEL": "DEBUG"}
    assert w.image == "vllm/vllm-openai:v0.11.0"


def test_version_args_and_image_override_the_model() -> None:
    w = workload_for(
        make_model(),
        make_version(
            args=["--lora", "{base_model}"],
            image="img:2",
            artifact_kind=ArtifactKind.LORA_ADAPTER,
            base_model="llama-8b",
        ),
        track=Track.CANARY,
        replicas=1,
    )
    assert w.args == ("--lora", "llama-8b")
    assert w.image == "img:2"


def test_env_secret_references_render_as_secret_key_refs_never_as_values() -> None:
    hf = {"secret": "hf-token", "key": "token"}  # as stored: a plain object
    model = make_model(
        env={"HF_TOKEN": hf, "WANDB_API_KEY": "plain-but-stored", "HF_HOME": "/cache"}
    )
    # the version's env is merged over the model's, name by name: a reference over a plain
    # value, and a plain value (rendered as given; the API shows it redacted) over a reference
    version = make_version(
        env={
            "HF_HOME": {"secret": "paths", "key": "hf-home", "optional": True},
            "WANDB_API_KEY": {"secret": "wandb", "key": "api-key"},
            "HF_TOKEN": "hf_" + "v" * 34,
        }
    )
    deployment = render_deployment(workload_for(model, version, track=Track.CANARY, replicas=1))
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env = {entry["name"]: entry for entry in container["env"]}
    assert env["HF_HOME"] == {
        "name": "HF_HOME",
        "valueFrom": {"secretKeyRef": {"name": "paths", "key": "hf-home", "optional": True}},
    }
    assert env["WANDB_API_KEY"] == {
        "name": "WANDB_API_KEY",
        "valueFrom": {"secretKeyRef": {"name": "wandb", "key": "api-key", "optional": False}},
    }
    assert env["HF_TOKEN"] == {"name": "HF_TOKEN", "value": "hf_" + "v" * 34}

    alone = render_deployment(workload(env={"HF_TOKEN": hf}))
    [entry] = [
        e
        for e in alone["spec"]["template"]["spec"]["containers"][0]["env"]
        if e["name"] == "HF_TOKEN"
    ]
    assert entry == {
        "name": "HF_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": "hf-token", "key": "token", "optional": False}},
    }


def test_deployment_shape() -> None:
    d = render_deployment(workload())
    assert d["metadata"]["name"] == "chat-v2"
    assert d["metadata"]["namespace"] == "llm"
    assert d["metadata"]["labels"][LABEL_TRACK] == "canary"
    assert d["spec"]["replicas"] == 1
    assert d["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "chat",
        "controlplane.dev/version": "v2",
    }
    template = d["spec"]["template"]
    assert LABEL_TRACK not in template["metadata"]["labels"], "track must never restart pods"
    assert template["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    assert template["metadata"]["annotations"]["prometheus.io/port"] == "8000"
    container = template["spec"]["containers"][0]
    assert container["resources"]["limits"] == {"nvidia.com/gpu": "4"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert (
        container["startupProbe"]["failureThreshold"] * container["startupProbe"]["periodSeconds"]
        >= 1800
    )
    assert {"name": "MODEL_ARTIFACT_URI", "value": "s3://models/chat/v2"} in container["env"]
    assert template["spec"]["tolerations"][0]["key"] == "nvidia.com/gpu"


def test_track_changes_only_object_metadata() -> None:
    canary = render_deployment(workload())
    stable = render_deployment(workload().with_replicas(2, Track.STABLE))
    assert canary["spec"]["template"] == stable["spec"]["template"]
    assert stable["metadata"]["labels"][LABEL_TRACK] == "stable"


def test_other_gpu_vendors_and_cpu_models() -> None:
    amd = render_deployment(workload(gpu_resource="amd.com/gpu"))
    assert amd["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"] == {
        "amd.com/gpu": "4"
    }
    cpu = render_deployment(workload(gpus_per_replica=0))
    assert "resources" not in cpu["spec"]["template"]["spec"]["containers"][0]
    assert "tolerations" not in cpu["spec"]["template"]["spec"]


def test_services() -> None:
    version_service = render_version_service(workload())
    assert version_service["metadata"]["name"] == "chat-v2"
    assert version_service["spec"]["selector"]["controlplane.dev/version"] == "v2"
    model_service = render_model_service(model="chat", namespace="llm", port=8000)
    assert model_service["spec"]["selector"] == {"app.kubernetes.io/name": "chat"}


def test_httproute_weights_and_gateway_reference() -> None:
    route = render_httproute(
        model="chat",
        namespace="llm",
        port=8000,
        gateway="infra/gw",
        backends=[Backend("v1", 90), Backend("v2", 10)],
    )
    assert route["spec"]["parentRefs"] == [{"name": "gw", "namespace": "infra"}]
    refs = route["spec"]["rules"][0]["backendRefs"]
    assert [(r["name"], r["weight"]) for r in refs] == [("chat-v1", 90), ("chat-v2", 10)]
    local = render_httproute(model="chat", namespace="llm", port=8000, gateway="gw", backends=[])
    assert local["spec"]["parentRefs"] == [{"name": "gw", "namespace": "llm"}]


def test_routing_objects_by_mode() -> None:
    assert (
        routing_objects(
            routing_mode=RoutingMode.REPLICAS,
            model="chat",
            namespace="llm",
            port=8000,
            gateway=None,
            backends=[],
        )[0]["kind"]
        == "Service"
    )
    with pytest.raises(ValueError, match="names no gateway"):
        routing_objects(
            routing_mode=RoutingMode.GATEWAY_API,
            model="chat",
            namespace="llm",
            port=8000,
            gateway=None,
            backends=[],
        )


def test_node_placement_from_the_model() -> None:
    d = render_deployment(
        workload(
            node_selector={"pool": "h100"},
            tolerations=[
                {"key": "dedicated", "operator": "Equal", "value": "llm", "effect": "NoSchedule"}
            ],
        )
    )
    spec = d["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {"pool": "h100"}
    assert {
        "key": "dedicated",
        "operator": "Equal",
        "value": "llm",
        "effect": "NoSchedule",
    } in spec["tolerations"]


def test_version_labels_reach_pods_but_never_override_ours() -> None:
    version = make_version(labels={"team": "nlp", "app.kubernetes.io/name": "evil"})
    d = render_deployment(workload_for(make_model(), version, track=Track.CANARY, replicas=1))
    pod_labels = d["spec"]["template"]["metadata"]["labels"]
    assert pod_labels["team"] == "nlp"
    assert pod_labels["app.kubernetes.io/name"] == "chat"
