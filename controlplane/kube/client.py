"""A thin REST layer over the official client's transport, for the few kinds we manage.

Why not the typed APIs: server-side apply, HTTPRoutes and Deployments all go through one
code path here, with one error translation and one timeout policy, and objects stay plain
dicts (what we render is what we send). Why not the dynamic client: it needs API discovery
and a writable cache file, neither of which a locked-down controller pod should need.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import urllib3
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

from controlplane import telemetry
from controlplane.kube.errors import KubeError, NotFoundError, TemporaryKubeError, translate


@dataclass(frozen=True)
class Resource:
    prefix: str  # "/api/v1" or "/apis/<group>/<version>"
    plural: str
    namespaced: bool = True

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        parts = [self.prefix]
        if self.namespaced:
            if namespace is None:
                raise ValueError(f"{self.plural} are namespaced: give a namespace")
            parts += ["namespaces", quote(namespace, safe="")]
        parts.append(self.plural)
        if name is not None:
            parts.append(quote(name, safe=""))
        return "/".join(parts)


RESOURCES: dict[tuple[str, str], Resource] = {
    ("apps/v1", "Deployment"): Resource("/apis/apps/v1", "deployments"),
    ("v1", "Service"): Resource("/api/v1", "services"),
    ("v1", "Pod"): Resource("/api/v1", "pods"),
    ("v1", "Event"): Resource("/api/v1", "events"),
    ("v1", "Node"): Resource("/api/v1", "nodes", namespaced=False),
    ("v1", "Namespace"): Resource("/api/v1", "namespaces", namespaced=False),
    ("gateway.networking.k8s.io/v1", "HTTPRoute"): Resource(
        "/apis/gateway.networking.k8s.io/v1", "httproutes"
    ),
    ("inference.networking.k8s.io/v1", "InferencePool"): Resource(
        "/apis/inference.networking.k8s.io/v1", "inferencepools"
    ),
    # the weighted model-name rewrite moved from the inference extension's experimental
    # group to llm-d's: a cluster has one or the other (the driver asks which)
    ("llm-d.ai/v1alpha2", "InferenceModelRewrite"): Resource(
        "/apis/llm-d.ai/v1alpha2", "inferencemodelrewrites"
    ),
    ("inference.networking.x-k8s.io/v1alpha2", "InferenceModelRewrite"): Resource(
        "/apis/inference.networking.x-k8s.io/v1alpha2", "inferencemodelrewrites"
    ),
}
REWRITE_API_VERSIONS = ("llm-d.ai/v1alpha2", "inference.networking.x-k8s.io/v1alpha2")

DEPLOYMENT = RESOURCES[("apps/v1", "Deployment")]
SERVICE = RESOURCES[("v1", "Service")]
POD = RESOURCES[("v1", "Pod")]
NODE = RESOURCES[("v1", "Node")]
EVENT = RESOURCES[("v1", "Event")]
HTTPROUTE = RESOURCES[("gateway.networking.k8s.io/v1", "HTTPRoute")]
INFERENCEPOOL = RESOURCES[("inference.networking.k8s.io/v1", "InferencePool")]


def rewrite_resource(api_version: str) -> Resource:
    return RESOURCES[(api_version, "InferenceModelRewrite")]


def resource_of(obj: dict[str, Any]) -> Resource:
    key = (str(obj.get("apiVersion")), str(obj.get("kind")))
    try:
        return RESOURCES[key]
    except KeyError:
        raise ValueError(f"the driver does not manage {key[1]} ({key[0]})") from None


def _verb(method: str, content_type: str) -> str:
    if content_type == "application/apply-patch+yaml":
        return "apply"
    return {
        "GET": "get",
        "POST": "create",
        "PATCH": "patch",
        "DELETE": "delete",
        "PUT": "update",
    }.get(method.upper(), method.lower())


class KubeApi:
    """Requests to one API server, with timeouts, returning dicts, raising our errors."""

    def __init__(
        self, api_client: k8s_client.ApiClient, *, timeout: tuple[float, float] = (5.0, 30.0)
    ) -> None:
        self.api_client = api_client
        self.timeout = timeout

    @classmethod
    def from_kubeconfig(cls, path: str | None = None, context: str | None = None) -> KubeApi:
        """From a kubeconfig file (``$KUBECONFIG`` when not given), or the in-cluster
        service account when there is no kubeconfig and we run in a pod."""
        configuration = k8s_client.Configuration()
        try:
            k8s_config.load_kube_config(
                config_file=path, context=context, client_configuration=configuration
            )
        except k8s_config.ConfigException:
            if path is not None:
                raise
            k8s_config.load_incluster_config(client_configuration=configuration)
        # reconcile passes run side by side (Reconciler workers): a connection each, kept
        configuration.connection_pool_maxsize = max(configuration.connection_pool_maxsize, 32)
        return cls(k8s_client.ApiClient(configuration))

    def close(self) -> None:
        self.api_client.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        action: str,
        query: list[tuple[str, str]] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        verb = _verb(method, content_type)
        started = time.perf_counter()
        try:
            method_, url, headers_, body_, post = self.api_client.param_serialize(
                method,
                path,
                query_params=query or [],
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
            )
            response = self.api_client.call_api(
                method_, url, headers_, body_, post, _request_timeout=self.timeout
            )
            data = response.read()
        except urllib3.exceptions.HTTPError as error:
            telemetry.KUBE_REQUESTS.labels(verb, telemetry.status_class(None)).inc()
            raise TemporaryKubeError(
                f"{action}: the API server did not answer ({type(error).__name__}: {error})",
                reason="Unreachable",
            ) from error
        telemetry.KUBE_SECONDS.labels(verb).observe(time.perf_counter() - started)
        telemetry.KUBE_REQUESTS.labels(verb, telemetry.status_class(response.status)).inc()
        if not 200 <= response.status < 300:
            raise translate(
                response.status, data, action=action, retry_after=response.getheader("Retry-After")
            )
        if not data:
            return {}
        parsed: dict[str, Any] = json.loads(data)
        return parsed

    # --- verbs ----------------------------------------------------------------------

    def get(
        self, resource: Resource, namespace: str | None, name: str, *, owned: bool = False
    ) -> dict[str, Any] | None:
        """The object, or None. ``owned``: it is one the control plane makes (labelled
        app.kubernetes.io/managed-by=controlplane), so a watch cache of what we own may
        answer that it is not there (:class:`controlplane.kube.cache.CachedKubeApi`)."""
        try:
            return self.request(
                "GET", resource.path(namespace, name), action=f"get {resource.plural}/{name}"
            )
        except NotFoundError:
            return None

    def list_at(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> tuple[list[dict[str, Any]], str]:
        """Every matching object, page by page, and the list's resourceVersion (a watch
        started from it misses nothing). Without a namespace: every namespace."""
        query: list[tuple[str, str]] = []
        if label_selector:
            query.append(("labelSelector", label_selector))
        if field_selector:
            query.append(("fieldSelector", field_selector))
        path = (
            resource.path(namespace)
            if resource.namespaced and namespace
            else (f"{resource.prefix}/{resource.plural}")
        )
        items: list[dict[str, Any]] = []
        continue_token = ""
        while True:
            page_query = [*query, ("limit", "500")]
            if continue_token:
                page_query.append(("continue", continue_token))
            answer = self.request("GET", path, action=f"list {resource.plural}", query=page_query)
            items.extend(answer.get("items") or [])
            metadata = answer.get("metadata") or {}
            continue_token = metadata.get("continue") or ""
            if not continue_token:
                return items, str(metadata.get("resourceVersion") or "")

    def list(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[dict[str, Any]]:
        items, _ = self.list_at(
            resource, namespace, label_selector=label_selector, field_selector=field_selector
        )
        return items

    def apply(
        self, obj: dict[str, Any], *, field_manager: str, force: bool = False, dry_run: bool = False
    ) -> dict[str, Any]:
        """Server-side apply: we own exactly the fields we send, under ``field_manager``."""
        resource = resource_of(obj)
        metadata = obj["metadata"]
        query = [("fieldManager", field_manager), ("force", "true" if force else "false")]
        if dry_run:
            query.append(("dryRun", "All"))
        return self.request(
            "PATCH",
            resource.path(metadata.get("namespace"), metadata["name"]),
            action=f"apply {obj['kind']} {metadata.get('namespace', '')}/{metadata['name']}",
            query=query,
            body=obj,
            content_type="application/apply-patch+yaml",
        )

    def patch_status(
        self, resource: Resource, namespace: str, name: str, patch: dict[str, Any]
    ) -> dict[str, Any]:
        """A strategic-merge patch of an object's status (a pod condition we own)."""
        return self.request(
            "PATCH",
            resource.path(namespace, name) + "/status",
            action=f"patch {resource.plural}/{name}/status",
            body=patch,
            content_type="application/strategic-merge-patch+json",
        )

    def served(self, api_version: str, plural: str) -> bool:
        """Whether the API server serves ``plural`` in ``api_version`` (a CRD installed)."""
        try:
            answer = self.request("GET", f"/apis/{api_version}", action=f"discover {api_version}")
        except NotFoundError:
            return False
        return any(r.get("name") == plural for r in answer.get("resources") or [])

    def delete(
        self,
        resource: Resource,
        namespace: str | None,
        name: str,
        *,
        propagation: str = "Background",
    ) -> bool:
        """Delete; True if it existed. Idempotent."""
        try:
            self.request(
                "DELETE",
                resource.path(namespace, name),
                action=f"delete {resource.plural}/{name}",
                body={
                    "kind": "DeleteOptions",
                    "apiVersion": "v1",
                    "propagationPolicy": propagation,
                },
            )
        except NotFoundError:
            return False
        return True


__all__ = ["KubeApi", "KubeError", "Resource", "resource_of"]
