"""The interface the rollout engine calls: apply versions, observe them, move traffic.

Every method is idempotent and level-triggered: calling it again with the same arguments
changes nothing, so a reconciler that crashed half-way can simply call it again.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from controlplane.kube import observe
from controlplane.kube.adapters import AdapterDriver, LoraServer, PodAddresses
from controlplane.kube.cache import CachedKubeApi, ObjectCache
from controlplane.kube.client import (
    DEPLOYMENT,
    HTTPROUTE,
    INFERENCEPOOL,
    NODE,
    POD,
    SERVICE,
    KubeApi,
)
from controlplane.kube.errors import KubeError, PermanentKubeError, TemporaryKubeError
from controlplane.kube.fields import last_writer, owned_by_other_manager
from controlplane.kube.observe import VersionState, WeightReading
from controlplane.kube.render import (
    LABEL_MANAGED_BY,
    MANAGER,
    Backend,
    Workload,
    picker_name,
    render_deployment,
    render_endpoint_picker,
    render_inference_pool,
    render_version_service,
    routing_objects,
    selector_labels,
)
from controlplane.models import RoutingMode
from controlplane.naming import workload_name

log = logging.getLogger(__name__)
T = TypeVar("T")


def side_by_side(*calls: Callable[[], T]) -> list[T]:
    """Independent requests at once (a version's Deployment and its Service): a pass waits
    for the slower one, not for both in turn. The first runs in the caller's thread; the
    others see its context (the rollout bound to its log lines)."""
    if len(calls) < 2:
        return [call() for call in calls]
    with ThreadPoolExecutor(max_workers=len(calls) - 1) as pool:
        others = [pool.submit(contextvars.copy_context().run, call) for call in calls[1:]]
        first = calls[0]()
        return [first, *(other.result() for other in others)]


@dataclass(frozen=True)
class AppliedVersion:
    deployment: dict[str, Any]
    service: dict[str, Any]
    replicas_owned_elsewhere: bool


class KubeDriver:
    """With ``cache`` (:class:`controlplane.kube.cache.ObjectCache`), what we own is read
    from a watch-fed copy and unchanged applies are skipped; without it every read and
    apply goes to the API server. The two answer alike: the cache falls back to the API
    server whenever its view is not known to be current."""

    def __init__(
        self,
        api: KubeApi,
        *,
        field_manager: str = MANAGER,
        addresses: PodAddresses | None = None,
        vllm: LoraServer | None = None,
        cache: ObjectCache | None = None,
    ) -> None:
        self.cache = cache
        self.api = CachedKubeApi(api, cache) if cache is not None else api
        self.field_manager = field_manager
        # LoRA adapters on base pools: the pods' servers are reached at ``addresses``
        self.adapters = AdapterDriver(
            self.api, addresses=addresses, vllm=vllm, field_manager=field_manager
        )

    def close(self) -> None:
        """Stop the cache's watches (the API client stays open: it is the caller's)."""
        if self.cache is not None:
            self.cache.close()

    # --- reaching a version's server -------------------------------------------------

    def version_url(self, namespace: str, model: str, version: str, port: int) -> str | None:
        """Where the version's own Service answers (the evaluation step asks it directly,
        whatever weight the route gives it)."""
        return self.adapters.addresses.service_url(namespace, workload_name(model, version), port)

    # --- apply ------------------------------------------------------------------------

    def apply_version(self, workload: Workload, *, dry_run: bool = False) -> AppliedVersion:
        """Create or update a version's Deployment and Service (server-side apply).

        The control plane owns what it renders, replicas included (a GPU version's size is
        the rollout's decision): it applies with ``force``, as controllers should, taking
        back fields someone else changed. The rollout engine reads back first and says
        who changed them (a ``drift`` event), and stops fighting when it happens again.
        """
        deployment = render_deployment(workload)
        existing = self.api.get(DEPLOYMENT, workload.namespace, workload.name, owned=True)
        owner = owned_by_other_manager(existing, ("spec", "replicas"), self.field_manager)
        applied, service = side_by_side(
            lambda: self.api.apply(
                deployment, field_manager=self.field_manager, force=True, dry_run=dry_run
            ),
            lambda: self.api.apply(
                render_version_service(workload),
                field_manager=self.field_manager,
                force=True,
                dry_run=dry_run,
            ),
        )
        if workload.endpoint_picker is not None:  # inference-pool routing
            for obj in [*render_endpoint_picker(workload), render_inference_pool(workload)]:
                self.api.apply(obj, field_manager=self.field_manager, force=True, dry_run=dry_run)
        return AppliedVersion(applied, service, owner is not None)

    def apply_routing(
        self,
        *,
        routing_mode: RoutingMode,
        model: str,
        namespace: str,
        port: int,
        gateway: str | None,
        backends: list[Backend],
    ) -> None:
        """The model-wide Service (replicas mode) or the weighted HTTPRoute (gateway-api)."""
        for obj in routing_objects(
            routing_mode=routing_mode,
            model=model,
            namespace=namespace,
            port=port,
            gateway=gateway,
            backends=backends,
        ):
            self.api.apply(obj, field_manager=self.field_manager, force=True)

    def set_weight(
        self,
        *,
        model: str,
        namespace: str,
        port: int,
        gateway: str,
        stable_version: str,
        canary_version: str,
        weight: int,
        routing_mode: RoutingMode = RoutingMode.GATEWAY_API,
    ) -> None:
        """gateway-api mode: route ``weight`` percent to the canary's Service (inference-pool
        mode: to its InferencePool).

        Refuses to send traffic to a canary without a ready replica: that is a bug in the
        caller, and users must never pay for it with failed requests.
        """
        if not 0 <= weight <= 100:
            raise ValueError(f"weight must be between 0 and 100, not {weight}")
        if weight > 0:
            canary = self.observe_version(
                namespace,
                model,
                canary_version,
                with_free_gpus=False,
                endpoint_picker=routing_mode is RoutingMode.INFERENCE_POOL,
            )
            if canary.ready == 0:
                raise TemporaryKubeError(
                    f"refusing to route {weight}% to {canary.name}: it has no ready replica",
                    reason="CanaryNotReady",
                    delay=5.0,
                )
        backends = [Backend(stable_version, 100 - weight), Backend(canary_version, weight)]
        self.apply_routing(
            routing_mode=routing_mode,
            model=model,
            namespace=namespace,
            port=port,
            gateway=gateway,
            backends=backends,
        )

    # --- observe ----------------------------------------------------------------------

    def observe_version(
        self,
        namespace: str,
        model: str,
        version: str,
        *,
        gpu_resource: str = "nvidia.com/gpu",
        with_free_gpus: bool = True,
        endpoint_picker: bool = False,
    ) -> VersionState:
        """A version's Deployment and pods; with ``endpoint_picker`` (inference-pool
        routing) it is ready only once its pool's picker is too: a pool whose picker is down
        fails its requests (FailClose) or spreads them blindly (FailOpen)."""
        name = workload_name(model, version)
        deployment = self.api.get(DEPLOYMENT, namespace, name, owned=True)
        if deployment is None:
            return VersionState(name=name, exists=False)
        owner = last_writer(deployment, ("spec", "replicas"), self.field_manager)
        # the Deployment's selector, and our label (which every pod of ours carries): the
        # query the cache can answer, and the same answer from the API server
        labels = {**selector_labels(model, version), LABEL_MANAGED_BY: MANAGER}
        selector = ",".join(f"{k}={v}" for k, v in labels.items())
        pods = self.api.list(POD, namespace, label_selector=selector)
        free = None
        unschedulable = [
            pod
            for pod in pods
            if any(
                problem.kind is observe.ProblemKind.UNSCHEDULABLE
                for problem in observe.pod_problems(pod, gpu_resource=gpu_resource)
            )
        ]
        if with_free_gpus and unschedulable:
            free = self.free_gpus(gpu_resource, for_pod=unschedulable[0])
        state = observe.classify(name, deployment, pods, gpu_resource=gpu_resource, free=free)
        state = replace(state, replicas_owner=owner)
        if endpoint_picker:
            picker = self.api.get(DEPLOYMENT, namespace, picker_name(model, version), owned=True)
            available = int(((picker or {}).get("status") or {}).get("availableReplicas") or 0)
            if available == 0:
                state = replace(
                    state,
                    ready=0,
                    available=0,
                    note=f"endpoint picker {picker_name(model, version)} "
                    + ("not available yet" if picker else "missing"),
                )
        return state

    def free_gpus(
        self, gpu_resource: str, *, for_pod: dict[str, Any] | None = None
    ) -> dict[str, int] | None:
        """Free GPUs per node (that ``for_pod`` could use), or None when we may not list
        nodes and pods cluster-wide."""
        try:
            nodes = self.api.list(NODE)
            pods = self.api.list(POD, field_selector="status.phase!=Succeeded,status.phase!=Failed")
        except PermanentKubeError as error:
            log.info("free GPUs unknown: %s", error.message)
            return None
        return observe.free_gpus(nodes, pods, gpu_resource, for_pod=for_pod)

    def read_weight(
        self,
        *,
        routing_mode: RoutingMode,
        model: str,
        namespace: str,
        stable_version: str,
        canary_version: str,
    ) -> WeightReading:
        """The canary's share of traffic in force: HTTPRoute weights in gateway-api mode,
        the share of ready endpoints in replicas mode."""
        if routing_mode in (RoutingMode.GATEWAY_API, RoutingMode.INFERENCE_POOL):
            route = self.api.get(HTTPROUTE, namespace, model, owned=True)
            if route is None:
                return WeightReading(0, 100, "no HTTPRoute")
            weights = {
                workload_name(model, stable_version): 0,
                workload_name(model, canary_version): 0,
            }
            for rule in (route.get("spec") or {}).get("rules") or []:
                for ref in rule.get("backendRefs") or []:
                    if ref.get("name") in weights:
                        weights[ref["name"]] += int(ref.get("weight", 1))
            total = sum(weights.values())
            canary = weights[workload_name(model, canary_version)]
            percent = round(100 * canary / total) if total else 0
            owner = last_writer(route, ("spec", "rules"), self.field_manager)
            return WeightReading(
                percent, 100 - percent if total else 0, f"HTTPRoute {namespace}/{model}", owner
            )
        stable_state = self.observe_version(namespace, model, stable_version, with_free_gpus=False)
        canary_state = self.observe_version(namespace, model, canary_version, with_free_gpus=False)
        total = stable_state.ready + canary_state.ready
        percent = round(100 * canary_state.ready / total) if total else 0
        return WeightReading(percent, 100 - percent if total else 0, "ready replicas")

    # --- clean up ---------------------------------------------------------------------

    def delete_version(self, namespace: str, model: str, version: str) -> bool:
        """Delete a version's Deployment (and its pods) and Service, and its InferencePool
        and endpoint picker when it has them. True if any existed."""
        name = workload_name(model, version)
        deleted = any(
            side_by_side(
                lambda: self.api.delete(DEPLOYMENT, namespace, name),
                lambda: self.api.delete(SERVICE, namespace, name),
            )
        )
        picker = picker_name(model, version)
        if self.api.get(DEPLOYMENT, namespace, picker, owned=True) is not None:
            deleted = self.api.delete(INFERENCEPOOL, namespace, name) or deleted
            deleted = self.api.delete(DEPLOYMENT, namespace, picker) or deleted
            deleted = self.api.delete(SERVICE, namespace, picker) or deleted
        return deleted


__all__ = ["AppliedVersion", "KubeDriver", "KubeError", "VersionState", "WeightReading"]
