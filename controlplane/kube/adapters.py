"""LoRA adapters on a base pool's pods: find the pods, reach them, and list, load and unload
adapters through vLLM's runtime API (``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``).

What a pod holds is read from the pod itself (``/v1/models``), every time: an adapter loaded
at runtime lives in the server's memory, so a restarted container or a new pod holds none,
whatever was loaded before. Loading is idempotent (an adapter already there is left alone);
unloading one that is not there is not an error.

The HTTP client for the pods' servers is :mod:`controlplane.kube.vllm`, given to the
driver by whoever builds it (the services above never speak HTTP themselves).

**Pod addresses.** In a cluster the control plane reaches a pod at its IP and the pool's
port (:class:`ByPodIP`). The local test cluster's pods are simulated by kwok and run no
server, so the demo and the tests run one simulated vLLM server per pod on loopback and name
them in a JSON file, ``{"<namespace>/<pod>": "http://127.0.0.1:<port>"}``, given as
``CONTROLPLANE_POD_ADDRESS_MAP`` (:class:`AddressMap`). That file is the one seam between the
engine and the simulation: nothing else in the engine knows it is not a real cluster.

**Readiness gate.** A pool whose pod template declares the readiness gate
``controlplane.dev/adapters-ready`` takes no traffic on a new or restarted pod until the
control plane has loaded every adapter the routing needs there and set that pod condition
to True (the kubelet adds it to the pod's Ready). Without the gate, a new pod is served as
soon as its server answers, and requests for an adapter it does not hold yet fail for the
few seconds until the control plane's next look loads it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from controlplane.kube.client import (
    DEPLOYMENT,
    INFERENCEPOOL,
    POD,
    REWRITE_API_VERSIONS,
    KubeApi,
    rewrite_resource,
)
from controlplane.kube.errors import NotFoundError, PermanentKubeError
from controlplane.kube.fields import last_writer
from controlplane.kube.observe import VersionState, WeightReading
from controlplane.kube.render import MANAGER, render_model_rewrite
from controlplane.models import utcnow

log = logging.getLogger(__name__)

ADAPTERS_GATE = "controlplane.dev/adapters-ready"


# --- reaching pods -----------------------------------------------------------------------


class PodAddresses(Protocol):
    """Where a pod's server answers, or None when it cannot be reached (no IP yet)."""

    def url(self, pod: dict[str, Any], port: int) -> str | None: ...

    def service_url(self, namespace: str, name: str, port: int) -> str | None: ...


class ByPodIP:
    """The pod's IP and the pool's port: how the control plane reaches pods in a cluster
    (and a Service at its cluster DNS name)."""

    def service_url(self, namespace: str, name: str, port: int) -> str | None:
        return f"http://{name}.{namespace}.svc:{port}"

    def url(self, pod: dict[str, Any], port: int) -> str | None:
        ip = (pod.get("status") or {}).get("podIP")
        if not ip:
            return None
        return f"http://[{ip}]:{port}" if ":" in ip else f"http://{ip}:{port}"


class AddressMap:
    """Pod addresses from a JSON file (``{"<namespace>/<pod>": "<url>"}``), re-read when it
    changes: the local cluster's simulated pods (see the module docstring)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._stamp: tuple[int, int] | None = None
        self._urls: dict[str, str] = {}

    def _load(self) -> dict[str, str]:
        try:
            stat = self.path.stat()
        except OSError:
            return {}
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            try:
                raw = json.loads(self.path.read_text())
            except (OSError, ValueError) as error:
                log.warning("pod address map %s unreadable: %s", self.path, error)
                return self._urls
            self._urls = {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}
            self._stamp = stamp
        return self._urls

    def url(self, pod: dict[str, Any], port: int) -> str | None:
        metadata = pod.get("metadata") or {}
        return self._load().get(f"{metadata.get('namespace')}/{metadata.get('name')}")

    def service_url(self, namespace: str, name: str, port: int) -> str | None:
        """A Service's address, from a ``service/<namespace>/<name>`` key (the simulated
        servers of the local cluster), else its cluster DNS name."""
        return self._load().get(f"service/{namespace}/{name}") or ByPodIP().service_url(
            namespace, name, port
        )


def pod_addresses(map_path: str | None) -> PodAddresses:
    return AddressMap(map_path) if map_path else ByPodIP()


# --- vLLM's runtime LoRA API ---------------------------------------------------------------


class AdapterError(Exception):
    """A load or unload that failed. ``permanent``: trying again will not help (the
    adapter's path is wrong, the server's LoRA runtime updating is off, the pod is full)."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent


def lora_path(artifact_uri: str) -> str:
    """What vLLM's ``lora_path`` takes for an artifact: a local path for ``file://``, a
    Hugging Face repo id for ``hf://``, the URI itself otherwise (for a resolver plugin or
    a server that fetches it)."""
    for scheme in ("file://", "hf://"):
        if artifact_uri.startswith(scheme):
            return artifact_uri[len(scheme) :]
    return artifact_uri


class LoraServer(Protocol):
    """vLLM's runtime LoRA API on one server (:class:`controlplane.kube.vllm.VllmAdmin`)."""

    def adapters(self, url: str) -> frozenset[str]: ...

    def load(self, url: str, name: str, path: str) -> None: ...

    def unload(self, url: str, name: str) -> None: ...


class NoLoraServer:
    """What runs when the control plane was given no way to reach pods' servers."""

    def _refuse(self) -> AdapterError:
        return AdapterError("the control plane has no client for the pods' servers", permanent=True)

    def adapters(self, url: str) -> frozenset[str]:
        raise self._refuse()

    def load(self, url: str, name: str, path: str) -> None:
        raise self._refuse()

    def unload(self, url: str, name: str) -> None:
        raise self._refuse()


# --- what a pool's pods hold ---------------------------------------------------------------


@dataclass(frozen=True)
class PoolPod:
    name: str
    serving: bool  # its server is up (containers ready): it can take loads, and requests
    ready: bool  # the pod's Ready (with the adapters gate, when declared)
    gated: bool  # the pod template declares the adapters readiness gate
    gate_open: bool  # that condition is True on the pod
    url: str | None
    adapters: frozenset[str] | None = None  # None: could not be read
    error: str | None = None
    terminating: bool = False  # deleted, on its way out

    def holds(self, adapter: str) -> bool:
        return self.adapters is not None and adapter in self.adapters


@dataclass(frozen=True)
class PoolState:
    """A base pool's pods and the adapters each holds, as just read."""

    name: str
    namespace: str
    pods: tuple[PoolPod, ...] = ()
    problem: str | None = None  # the pool's pods could not be found, and why
    failures: dict[str, str] = field(default_factory=dict)  # adapter -> a permanent failure

    @property
    def serving(self) -> list[PoolPod]:
        """The pods an adapter must be on before it takes traffic: those whose server is
        up, except a gated pod whose list cannot be read and whose gate is closed (it takes
        no request, and one such pod must not hold every rollout on the pool forever)."""
        return [
            pod
            for pod in self.pods
            if pod.serving and not (pod.gated and not pod.gate_open and pod.adapters is None)
        ]

    def holding(self, adapter: str) -> list[PoolPod]:
        return [pod for pod in self.serving if pod.holds(adapter)]

    def missing(self, adapter: str) -> list[PoolPod]:
        return [pod for pod in self.serving if not pod.holds(adapter)]

    def version_state(self, adapter: str) -> VersionState:
        """An adapter seen as the rollout engine sees a version: one "replica", there when
        any pod holds the adapter, ready when every serving pod of the pool does (and there
        is one)."""
        serving = self.serving
        held = self.holding(adapter)
        everywhere = bool(serving) and len(held) == len(serving)
        note = f"adapter on {len(held)} of {len(serving)} serving pods of pool {self.name}"
        missing = [pod.name for pod in self.missing(adapter)]
        if missing and held:
            note += f" (missing on {', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''})"
        if self.problem:
            note += f"; {self.problem}"
        return VersionState(
            name=adapter,
            exists=any(pod.holds(adapter) for pod in self.pods),
            desired=1 if any(pod.holds(adapter) for pod in self.pods) else 0,
            ready=1 if everywhere else 0,
            available=1 if everywhere else 0,
            updated=1 if everywhere else 0,
            observed=True,
            note=note,
        )

    def as_json(self) -> list[dict[str, Any]]:
        """Which pod holds which adapters: for the API, the CLI and the history page."""
        return [
            {
                "pod": pod.name,
                "serving": pod.serving,
                "ready": pod.ready,
                "gated": pod.gated,
                "adapters": sorted(pod.adapters) if pod.adapters is not None else None,
                "error": pod.error,
            }
            for pod in self.pods
        ]


POD_CALLS = 16  # pods spoken to at once: a load takes as long on 30 pods as on one


def each_pod(pods: Sequence[PoolPod], call: Callable[[PoolPod], PoolPod]) -> tuple[PoolPod, ...]:
    """``call`` on every pod at once (each is its own server), results in the pods' order."""
    if len(pods) <= 1:
        return tuple(call(pod) for pod in pods)
    with ThreadPoolExecutor(max_workers=min(POD_CALLS, len(pods))) as pool:
        return tuple(pool.map(call, pods))


def _condition(pod: dict[str, Any], kind: str) -> bool:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind:
            return bool(condition.get("status") == "True")
    return False


def pod_view(pod: dict[str, Any], url: str | None) -> PoolPod:
    """A pool pod's serving state from its API object (adapters not read yet)."""
    metadata = pod.get("metadata") or {}
    status = pod.get("status") or {}
    gates = [g.get("conditionType") for g in (pod.get("spec") or {}).get("readinessGates") or []]
    terminating = metadata.get("deletionTimestamp") is not None
    serving = (
        not terminating
        and status.get("phase") == "Running"
        and _condition(pod, "ContainersReady")
        and url is not None
    )
    return PoolPod(
        name=str(metadata.get("name")),
        serving=serving,
        ready=_condition(pod, "Ready") and not terminating,
        gated=ADAPTERS_GATE in gates,
        gate_open=_condition(pod, ADAPTERS_GATE),
        url=url,
        terminating=terminating,
    )


def selector_string(selector: dict[str, Any]) -> str:
    """A LabelSelector (matchLabels, matchExpressions) in the API's query syntax."""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression.get("key"), expression.get("operator")
        values = ",".join(expression.get("values") or [])
        if operator == "In":
            parts.append(f"{key} in ({values})")
        elif operator == "NotIn":
            parts.append(f"{key} notin ({values})")
        elif operator == "Exists":
            parts.append(str(key))
        elif operator == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)


def describe(names: Iterable[str]) -> str:
    listed = sorted(names)
    return ", ".join(listed) if listed else "none"


# --- the pool, the pods' adapters and the rewrite, against the cluster -------------------


@dataclass(frozen=True)
class PoolRef:
    """A base pool as the registry records it."""

    name: str
    namespace: str
    port: int
    deployment: str | None = None
    inference_pool: str | None = None


class AdapterDriver:
    """Reads a pool's pods and what they hold, loads and unloads adapters, opens the
    adapters readiness gate, and routes a model name between adapters."""

    def __init__(
        self,
        api: KubeApi,
        *,
        addresses: PodAddresses | None = None,
        vllm: LoraServer | None = None,
        field_manager: str = MANAGER,
    ) -> None:
        self.api = api
        self.addresses = addresses or ByPodIP()
        self.vllm: LoraServer = vllm or NoLoraServer()
        self.field_manager = field_manager
        self._rewrite_api: str | None = None

    # --- the pool's pods ------------------------------------------------------------

    def _selector(self, ref: PoolRef) -> tuple[str | None, str | None]:
        """The pool's pod selector, or None and why it cannot be had."""
        if ref.inference_pool:
            pool = self.api.get(INFERENCEPOOL, ref.namespace, ref.inference_pool)
            if pool is not None:
                selector = (pool.get("spec") or {}).get("selector") or {}
                if "matchLabels" not in selector and selector:
                    selector = {"matchLabels": selector}  # pre-v1 pools: a plain label map
                return selector_string(selector), None
            if not ref.deployment:
                return None, f"InferencePool {ref.namespace}/{ref.inference_pool} not found"
        if ref.deployment:
            deployment = self.api.get(DEPLOYMENT, ref.namespace, ref.deployment)
            if deployment is None:
                return None, f"Deployment {ref.namespace}/{ref.deployment} not found"
            return selector_string((deployment.get("spec") or {}).get("selector") or {}), None
        return None, "the pool names neither a Deployment nor an InferencePool"

    def observe_pool(self, ref: PoolRef) -> PoolState:
        selector, problem = self._selector(ref)
        if selector is None:
            return PoolState(ref.name, ref.namespace, problem=problem)
        views = sorted(
            (
                pod_view(pod, self.addresses.url(pod, ref.port))
                for pod in self.api.list(POD, ref.namespace, label_selector=selector)
            ),
            key=lambda p: p.name,
        )

        def read(view: PoolPod) -> PoolPod:
            if not view.serving or view.url is None:
                return view
            try:
                return replace(view, adapters=self.vllm.adapters(view.url))
            except AdapterError as error:
                return replace(view, error=error.message)

        return PoolState(ref.name, ref.namespace, each_pod(views, read))

    def ensure_loaded(self, state: PoolState, wanted: dict[str, str]) -> PoolState:
        """Load each wanted adapter (name -> artifact URI) on every serving pod that lacks
        it; read back what each pod holds after. A permanent refusal is kept in
        ``failures`` (the rollout fails with it); a passing one is tried again next time."""
        failures = dict(state.failures)

        def load(pod: PoolPod) -> PoolPod:
            lacking = [n for n in sorted(wanted) if pod.serving and not pod.holds(n)]
            if not lacking or pod.url is None or pod.adapters is None:
                return pod
            error = None
            for name in lacking:
                try:
                    self.vllm.load(pod.url, name, lora_path(wanted[name]))
                    log.info("loaded adapter %s on pod %s", name, pod.name)
                except AdapterError as failed:
                    error = f"pod {pod.name}: {failed.message}"
                    if failed.permanent:
                        failures[name] = error
            return self._reread(pod, error)

        return replace(state, pods=each_pod(state.pods, load), failures=failures)

    def _reread(self, pod: PoolPod, error: str | None = None) -> PoolPod:
        """The pod with what it holds read again (after loads or unloads)."""
        assert pod.url is not None
        try:
            return replace(pod, adapters=self.vllm.adapters(pod.url), error=error)
        except AdapterError as unreadable:
            return replace(pod, adapters=None, error=unreadable.message)

    def unload(self, state: PoolState, names: Iterable[str]) -> PoolState:
        """Unload ``names`` from every pod that holds them (serving or not)."""
        names = set(names)

        def unload(pod: PoolPod) -> PoolPod:
            held = names & (pod.adapters or frozenset())
            if not held or pod.url is None:
                return pod
            for name in sorted(held):
                try:
                    self.vllm.unload(pod.url, name)
                    log.info("unloaded adapter %s from pod %s", name, pod.name)
                except AdapterError as error:
                    log.warning("pod %s: %s", pod.name, error.message)
            return self._reread(pod)

        return replace(state, pods=each_pod(state.pods, unload))

    def set_gates(self, state: PoolState, needed: Iterable[str]) -> list[str]:
        """Open the adapters readiness gate on each gated pod that holds every ``needed``
        adapter, close it on one that does not; returns the pods changed."""
        needed = set(needed)
        changed = []
        for pod in state.pods:
            # left alone: a pod on its way out (it may be gone before the patch), and a
            # serving pod whose list could not be read this once (a slow answer is no
            # evidence it lost its adapters); a pod whose server is down has its gate
            # closed, so that it comes back out of rotation until its adapters are back
            unread = pod.adapters is None and (pod.serving or not pod.gate_open)
            if not pod.gated or pod.terminating or unread:
                continue
            should = pod.serving and needed <= (pod.adapters or frozenset())
            if should == pod.gate_open:
                continue
            missing = sorted(needed - (pod.adapters or frozenset()))
            condition = {
                "type": ADAPTERS_GATE,
                "status": "True" if should else "False",
                "reason": "AdaptersLoaded" if should else "AdaptersMissing",
                "message": "every adapter the routing needs is loaded"
                if should
                else f"not loaded yet: {', '.join(missing) or 'the server is not serving'}",
                "lastTransitionTime": utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
            try:
                self.api.patch_status(
                    POD, state.namespace, pod.name, {"status": {"conditions": [condition]}}
                )
            except NotFoundError:  # deleted since it was read: nothing left to gate
                continue
            changed.append(pod.name)
        return changed

    # --- the rewrite ------------------------------------------------------------------

    def rewrite_api_version(self) -> str:
        """The InferenceModelRewrite this cluster serves (llm-d's group first, then the
        inference extension's experimental one), or a permanent error saying what to
        install."""
        if self._rewrite_api is None:
            for api_version in REWRITE_API_VERSIONS:
                if self.api.served(api_version, "inferencemodelrewrites"):
                    self._rewrite_api = api_version
                    break
            else:
                raise PermanentKubeError(
                    "the cluster serves no InferenceModelRewrite (llm-d.ai/v1alpha2 or "
                    "inference.networking.x-k8s.io/v1alpha2): adapter traffic is split by that "
                    "object, read by the inference gateway's endpoint picker; install the "
                    "Gateway API Inference Extension's CRDs (v1.5 or later) or llm-d's. "
                    "There is no fallback: without it a model name cannot be split between "
                    "two adapters",
                    reason="NoModelRewrite",
                )
        return self._rewrite_api

    def apply_rewrite(
        self, *, model: str, namespace: str, pool: str, targets: list[tuple[str, int]]
    ) -> None:
        obj = render_model_rewrite(
            model=model,
            namespace=namespace,
            pool=pool,
            api_version=self.rewrite_api_version(),
            targets=targets,
        )
        self.api.apply(obj, field_manager=self.field_manager, force=True)

    def delete_rewrite(self, *, model: str, namespace: str) -> bool:
        return self.api.delete(rewrite_resource(self.rewrite_api_version()), namespace, model)

    def read_rewrite(
        self, *, model: str, namespace: str, stable: str, canary: str
    ) -> WeightReading:
        """The canary adapter's share of the model name's requests in force."""
        api_version = self.rewrite_api_version()
        obj = self.api.get(rewrite_resource(api_version), namespace, model, owned=True)
        source = f"InferenceModelRewrite {namespace}/{model}"
        if obj is None:
            return WeightReading(0, 100, f"{source} (absent)")
        weights = {stable: 0, canary: 0}
        for rule in (obj.get("spec") or {}).get("rules") or []:
            for target in rule.get("targets") or []:
                if target.get("modelRewrite") in weights:
                    weights[target["modelRewrite"]] += int(target.get("weight", 1))
        total = sum(weights.values())
        percent = round(100 * weights[canary] / total) if total else 0
        owner = last_writer(obj, ("spec", "rules"), self.field_manager)
        return WeightReading(percent, 100 - percent if total else 0, source, owner)
