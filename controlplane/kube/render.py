"""Render a model version into Kubernetes objects: pure functions from plain data to dicts.

What users see in the cluster is decided here, and only here:

- one Deployment and one Service per version, named ``<model>-<version>``;
- labels ``app.kubernetes.io/name=<model>``, ``controlplane.dev/version=<version>`` on the
  pods (the selector), and ``controlplane.dev/track=stable|canary`` on the Deployment and
  Service only: the pod template never changes with the track, so promoting a version
  relabels it without restarting a GPU pod that took minutes to load its weights;
- Prometheus scrape annotations and the version/track labels that the analysis queries;
- a model-wide Service over every version (``replicas`` routing), or an HTTPRoute with
  weighted backendRefs to the per-version Services (``gateway-api`` routing).

Nothing here does I/O; ``tests/unit/kube`` pins the output.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from controlplane.models import (
    ArtifactKind,
    EndpointPicker,
    Model,
    ModelVersion,
    RoutingMode,
    SecretKeyRef,
)
from controlplane.naming import workload_name

DOMAIN = "controlplane.dev"
LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_VERSION_STD = "app.kubernetes.io/version"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_VERSION = f"{DOMAIN}/version"
LABEL_TRACK = f"{DOMAIN}/track"
LABEL_MODEL = f"{DOMAIN}/model"
ANNOTATION_ARTIFACT = f"{DOMAIN}/artifact-uri"
ANNOTATION_BASE_MODEL = f"{DOMAIN}/base-model"
MANAGER = "controlplane"
PORT_NAME = "http"


class Track(StrEnum):
    STABLE = "stable"
    CANARY = "canary"


@dataclass(frozen=True)
class Workload:
    """Everything needed to run one version of one model, resolved from the registry."""

    model: str
    namespace: str
    version: str
    image: str
    port: int
    gpus: int
    gpu_resource: str
    artifact_uri: str
    replicas: int
    track: Track
    args: tuple[str, ...] = ()
    # a plain value, or a key of a Secret (rendered as valueFrom.secretKeyRef)
    env: tuple[tuple[str, str | SecretKeyRef], ...] = ()
    artifact_kind: ArtifactKind = ArtifactKind.WEIGHTS
    base_model: str | None = None
    health_path: str = "/health"
    metrics_path: str = "/metrics"
    progress_deadline_seconds: int = 1200
    startup_timeout_seconds: int = 1800
    extra_labels: tuple[tuple[str, str], ...] = field(default=())
    node_selector: tuple[tuple[str, str], ...] = ()
    tolerations: tuple[tuple[tuple[str, str], ...], ...] = ()
    # inference-pool routing: the version's InferencePool gets this endpoint picker
    endpoint_picker: EndpointPicker | None = None

    @property
    def name(self) -> str:
        return workload_name(self.model, self.version)

    def with_replicas(self, replicas: int, track: Track | None = None) -> Workload:
        return replace(self, replicas=replicas, track=track or self.track)


def _substitute(arg: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        arg = arg.replace("{" + key + "}", value)
    return arg


def _env_value(value: Any) -> str | SecretKeyRef:
    """A stored env value: its text, or a Secret reference (an object)."""
    return value if isinstance(value, str) else SecretKeyRef.model_validate(value)


def workload_for(model: Model, version: ModelVersion, *, track: Track, replicas: int) -> Workload:
    """Resolve a version against its model's serving defaults.

    A version's ``args`` replace the model's; its ``env`` is merged over the model's, name by
    name (a version's plain value replaces a model's Secret reference and the other way
    round).
    ``{artifact_uri}``, ``{base_model}``, ``{model}`` and ``{version}`` in args are filled
    in, so one model-level arg list (``--model {artifact_uri}``) serves every version.
    """
    values = {
        "artifact_uri": version.artifact_uri,
        "base_model": version.base_model or "",
        "model": model.name,
        "version": version.version,
    }
    args = version.args if version.args is not None else model.args
    env = {**model.env, **(version.env or {})}
    return Workload(
        model=model.name,
        namespace=model.namespace,
        version=version.version,
        image=version.image or model.image,
        port=model.port,
        gpus=model.gpus_per_replica,
        gpu_resource=model.gpu_resource,
        artifact_uri=version.artifact_uri,
        artifact_kind=ArtifactKind(version.artifact_kind),
        base_model=version.base_model,
        replicas=replicas,
        track=track,
        args=tuple(_substitute(arg, values) for arg in args),
        env=tuple(sorted((name, _env_value(value)) for name, value in env.items())),
        health_path=model.health_path,
        # a version's labels go on its objects and pods, for the team's own selectors
        extra_labels=tuple(sorted(version.labels.items())),
        node_selector=tuple(sorted(model.node_selector.items())),
        tolerations=tuple(
            tuple((k, str(v)) for k, v in toleration.items() if v is not None)
            for toleration in model.tolerations
        ),
        endpoint_picker=(
            EndpointPicker.model_validate(model.endpoint_picker)
            if model.routing_mode is RoutingMode.INFERENCE_POOL and model.endpoint_picker
            else None
        ),
    )


def selector_labels(model: str, version: str) -> dict[str, str]:
    """The Deployment's selector (immutable once created) and the version Service's."""
    return {LABEL_NAME: model, LABEL_VERSION: version}


def _object_labels(w: Workload) -> dict[str, str]:
    labels = {
        LABEL_NAME: w.model,
        LABEL_INSTANCE: w.name,
        LABEL_VERSION_STD: w.version,
        LABEL_MANAGED_BY: MANAGER,
        LABEL_COMPONENT: "inference",
        LABEL_MODEL: w.model,
        LABEL_VERSION: w.version,
        LABEL_TRACK: w.track.value,
    }
    return {**dict(w.extra_labels), **labels}  # ours win: selectors must stay intact


def _pod_labels(w: Workload) -> dict[str, str]:
    labels = _object_labels(w)
    del labels[LABEL_TRACK]  # see the module docstring: track never restarts pods
    return labels


def _annotations(w: Workload) -> dict[str, str]:
    annotations = {ANNOTATION_ARTIFACT: w.artifact_uri}
    if w.base_model:
        annotations[ANNOTATION_BASE_MODEL] = w.base_model
    return annotations


def _env_var(name: str, value: str | SecretKeyRef) -> dict[str, Any]:
    """A plain value as given; a Secret reference as ``valueFrom.secretKeyRef``, so the
    credential is read by the kubelet and never appears in the pod spec."""
    if isinstance(value, SecretKeyRef):
        ref = {"name": value.secret, "key": value.key, "optional": value.optional}
        return {"name": name, "valueFrom": {"secretKeyRef": ref}}
    return {"name": name, "value": value}


def _container(w: Workload) -> dict[str, Any]:
    env = [
        {"name": "CONTROLPLANE_MODEL", "value": w.model},
        {"name": "CONTROLPLANE_VERSION", "value": w.version},
        {"name": "MODEL_ARTIFACT_URI", "value": w.artifact_uri},
    ]
    if w.base_model:
        env.append({"name": "BASE_MODEL", "value": w.base_model})
    env += [_env_var(name, value) for name, value in w.env]
    container: dict[str, Any] = {
        "name": "server",
        "image": w.image,
        "args": list(w.args),
        "env": env,
        "ports": [{"name": PORT_NAME, "containerPort": w.port, "protocol": "TCP"}],
        # Loading weights onto a GPU takes minutes: the startup probe gives it that long,
        # liveness only starts counting once the server has answered.
        "startupProbe": {
            "httpGet": {"path": w.health_path, "port": PORT_NAME},
            "periodSeconds": 10,
            "failureThreshold": max(1, w.startup_timeout_seconds // 10),
        },
        "readinessProbe": {
            "httpGet": {"path": w.health_path, "port": PORT_NAME},
            "periodSeconds": 5,
            "failureThreshold": 3,
        },
        "livenessProbe": {
            "httpGet": {"path": w.health_path, "port": PORT_NAME},
            "periodSeconds": 15,
            "failureThreshold": 4,
        },
        # shared memory for tensor-parallel workers, not a temporary file
        "volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm"}],  # noqa: S108
    }
    if w.gpus > 0:
        container["resources"] = {
            "limits": {w.gpu_resource: str(w.gpus)},
            "requests": {w.gpu_resource: str(w.gpus)},
        }
    return container


def render_deployment(w: Workload) -> dict[str, Any]:
    pod_spec: dict[str, Any] = {
        "containers": [_container(w)],
        "terminationGracePeriodSeconds": 60,
        # tensor-parallel inference servers need a large /dev/shm
        "volumes": [{"name": "dshm", "emptyDir": {"medium": "Memory"}}],
    }
    tolerations = [dict(toleration) for toleration in w.tolerations]
    if w.gpus > 0:
        # GPU node pools are commonly tainted with their resource name
        tolerations.append({"key": w.gpu_resource, "operator": "Exists", "effect": "NoSchedule"})
    if tolerations:
        pod_spec["tolerations"] = tolerations
    if w.node_selector:
        pod_spec["nodeSelector"] = dict(w.node_selector)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": w.name,
            "namespace": w.namespace,
            "labels": _object_labels(w),
            "annotations": _annotations(w),
        },
        "spec": {
            "replicas": w.replicas,
            "selector": {"matchLabels": selector_labels(w.model, w.version)},
            "progressDeadlineSeconds": w.progress_deadline_seconds,
            "revisionHistoryLimit": 2,
            # A version's pod template never changes after creation; if it ever must,
            # replace pods one at a time without asking for a surge of GPUs.
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1},
            },
            "template": {
                "metadata": {
                    "labels": _pod_labels(w),
                    "annotations": {
                        **_annotations(w),
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(w.port),
                        "prometheus.io/path": w.metrics_path,
                    },
                },
                "spec": pod_spec,
            },
        },
    }


def render_version_service(w: Workload) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": w.name, "namespace": w.namespace, "labels": _object_labels(w)},
        "spec": {
            "selector": selector_labels(w.model, w.version),
            "ports": [
                {"name": PORT_NAME, "port": w.port, "targetPort": PORT_NAME, "protocol": "TCP"}
            ],
        },
    }


def render_model_service(
    *, model: str, namespace: str, port: int, only_version: str | None = None
) -> dict[str, Any]:
    """``replicas`` routing: one Service over every version's ready pods, or over one
    version's alone (a warm old stable out of rotation during a bake)."""
    selector = {LABEL_NAME: model}
    if only_version is not None:
        selector[LABEL_VERSION] = only_version
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": model,
            "namespace": namespace,
            "labels": {LABEL_NAME: model, LABEL_MANAGED_BY: MANAGER, LABEL_MODEL: model},
        },
        "spec": {
            "selector": selector,
            "ports": [
                {"name": PORT_NAME, "port": port, "targetPort": PORT_NAME, "protocol": "TCP"}
            ],
        },
    }


# --- inference-pool routing: an InferencePool and its endpoint picker per version ------

INFERENCEPOOL_API = "inference.networking.k8s.io/v1"
PICKER_HEALTH_PORT = 9003


def picker_name(model: str, version: str) -> str:
    """The endpoint picker's Deployment and Service: ``<model>-<version>-epp`` (shortened
    with a hash when that would pass 63 characters)."""
    name = workload_name(model, version)
    if len(name) > 59:
        name = f"{name[:50]}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"
    return f"{name}-epp"


def _picker_labels(w: Workload) -> dict[str, str]:
    """No app.kubernetes.io/name=<model> and no version label: the model's Service, the
    version's pool and the analysis' scrape must never select a picker as a server."""
    return {
        LABEL_INSTANCE: picker_name(w.model, w.version),
        LABEL_COMPONENT: "endpoint-picker",
        LABEL_MANAGED_BY: MANAGER,
        LABEL_MODEL: w.model,
    }


def render_inference_pool(w: Workload) -> dict[str, Any]:
    """The version's pods as an InferencePool, routed through its own endpoint picker."""
    picker = w.endpoint_picker
    if picker is None:
        raise ValueError(f"{w.name}: inference-pool routing needs an endpoint_picker")
    return {
        "apiVersion": INFERENCEPOOL_API,
        "kind": "InferencePool",
        "metadata": {"name": w.name, "namespace": w.namespace, "labels": _object_labels(w)},
        "spec": {
            "selector": {"matchLabels": selector_labels(w.model, w.version)},
            "targetPorts": [{"number": w.port}],
            "endpointPickerRef": {
                "name": picker_name(w.model, w.version),
                "port": {"number": picker.port},
                "failureMode": picker.failure_mode,
            },
        },
    }


def render_endpoint_picker(w: Workload) -> list[dict[str, Any]]:
    """The picker of the version's pool (a Deployment and its Service), as the inference
    extension's inferencepool chart runs one: ext-proc gRPC, gRPC health, metrics."""
    picker = w.endpoint_picker
    if picker is None:
        raise ValueError(f"{w.name}: inference-pool routing needs an endpoint_picker")
    name = picker_name(w.model, w.version)
    labels = _picker_labels(w)
    selector = {LABEL_INSTANCE: name, LABEL_COMPONENT: "endpoint-picker"}
    args = [
        "--pool-name",
        w.name,
        "--pool-namespace",
        w.namespace,
        "--grpc-port",
        str(picker.port),
        "--grpc-health-port",
        str(PICKER_HEALTH_PORT),
        "--metrics-port",
        str(picker.metrics_port),
    ]
    pod: dict[str, Any] = {
        "serviceAccountName": picker.service_account,
        "terminationGracePeriodSeconds": 130,
        "containers": [
            {
                "name": "epp",
                "image": picker.image,
                "args": args
                + (["--config-file", f"/config/{picker.config_file}"] if picker.config_map else [])
                + list(picker.args),
                "ports": [
                    {"name": "grpc", "containerPort": picker.port},
                    {"name": "grpc-health", "containerPort": PICKER_HEALTH_PORT},
                    {"name": "metrics", "containerPort": picker.metrics_port},
                ],
                "readinessProbe": {
                    "grpc": {"port": PICKER_HEALTH_PORT, "service": "inference-extension"},
                    "periodSeconds": 5,
                },
                "livenessProbe": {
                    "grpc": {"port": PICKER_HEALTH_PORT, "service": "inference-extension"},
                    "initialDelaySeconds": 5,
                    "periodSeconds": 10,
                },
                "env": [
                    {
                        "name": "NAMESPACE",
                        "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
                    }
                ],
            }
        ],
    }
    if picker.config_map:
        pod["containers"][0]["volumeMounts"] = [{"name": "plugins-config", "mountPath": "/config"}]
        pod["volumes"] = [{"name": "plugins-config", "configMap": {"name": picker.config_map}}]
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": w.namespace, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": selector},
            "template": {"metadata": {"labels": dict(labels)}, "spec": pod},
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": w.namespace, "labels": dict(labels)},
        "spec": {
            "selector": dict(selector),
            "ports": [
                {
                    "name": "grpc-ext-proc",
                    "port": picker.port,
                    "targetPort": picker.port,
                    "protocol": "TCP",
                    "appProtocol": "http2",
                },
                {
                    "name": "http-metrics",
                    "port": picker.metrics_port,
                    "targetPort": picker.metrics_port,
                    "protocol": "TCP",
                },
            ],
        },
    }
    return [deployment, service]


@dataclass(frozen=True)
class Backend:
    version: str
    weight: int


def parse_gateway(gateway: str, default_namespace: str) -> tuple[str, str]:
    namespace, _, name = gateway.rpartition("/")
    return (namespace or default_namespace, name)


def render_httproute(
    *,
    model: str,
    namespace: str,
    port: int,
    gateway: str,
    backends: list[Backend],
    hostnames: list[str] | None = None,
    pools: bool = False,
) -> dict[str, Any]:
    """``gateway-api`` routing: weighted backendRefs to the per-version Services; with
    ``pools``, to the per-version InferencePools (``inference-pool`` routing)."""
    gateway_namespace, gateway_name = parse_gateway(gateway, namespace)

    def ref(b: Backend) -> dict[str, Any]:
        name = workload_name(model, b.version)
        if pools:
            group = "inference.networking.k8s.io"
            return {"group": group, "kind": "InferencePool", "name": name, "weight": b.weight}
        return {"name": name, "port": port, "weight": b.weight}

    spec: dict[str, Any] = {
        "parentRefs": [{"name": gateway_name, "namespace": gateway_namespace}],
        "rules": [
            {
                "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                "backendRefs": [ref(b) for b in backends],
            }
        ],
    }
    if hostnames:
        spec["hostnames"] = hostnames
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {
            "name": model,
            "namespace": namespace,
            "labels": {LABEL_NAME: model, LABEL_MANAGED_BY: MANAGER, LABEL_MODEL: model},
        },
        "spec": spec,
    }


def routing_objects(
    *,
    routing_mode: RoutingMode,
    model: str,
    namespace: str,
    port: int,
    gateway: str | None,
    backends: list[Backend],
) -> list[dict[str, Any]]:
    if routing_mode in (RoutingMode.GATEWAY_API, RoutingMode.INFERENCE_POOL):
        if not gateway:
            raise ValueError(
                f"model {model!r} routes with {routing_mode.value} but names no gateway"
            )
        return [
            render_httproute(
                model=model,
                namespace=namespace,
                port=port,
                gateway=gateway,
                backends=backends,
                pools=routing_mode is RoutingMode.INFERENCE_POOL,
            )
        ]
    only = backends[0].version if len(backends) == 1 and backends[0].weight == 100 else None
    return [render_model_service(model=model, namespace=namespace, port=port, only_version=only)]


def render_model_rewrite(
    *,
    model: str,
    namespace: str,
    pool: str,
    api_version: str,
    targets: list[tuple[str, int]],
) -> dict[str, Any]:
    """``model-rewrite`` routing: requests naming ``model`` go to its adapters by weight.
    A target at weight 0 is left out (the CRD's weights start at 1)."""
    weighted = [(name, weight) for name, weight in targets if weight > 0]
    if not weighted:
        raise ValueError(f"model {model!r}: a rewrite needs a target with weight above 0")
    return {
        "apiVersion": api_version,
        "kind": "InferenceModelRewrite",
        "metadata": {
            "name": model,
            "namespace": namespace,
            "labels": {LABEL_NAME: model, LABEL_MANAGED_BY: MANAGER, LABEL_MODEL: model},
        },
        "spec": {
            "poolRef": {
                "group": "inference.networking.k8s.io",
                "kind": "InferencePool",
                "name": pool,
            },
            "rules": [
                {
                    "matches": [{"model": {"type": "Exact", "value": model}}],
                    "targets": [
                        {"modelRewrite": name, "weight": weight} for name, weight in weighted
                    ],
                }
            ],
        },
    }
