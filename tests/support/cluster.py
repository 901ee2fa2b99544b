"""A real Kubernetes API server for the tests (a pytest plugin, loaded by tests/conftest.py).

``$KUBECONFIG`` wins when set (kind, a dev cluster, ...). Otherwise the local cluster of
``hack/cluster/cluster.sh`` (etcd, kube-apiserver, controller-manager, scheduler, kwok) is
started, and stopped again at the end if this session started it. Each test gets its own
namespace, deleted afterwards.

With ``CONTROLPLANE_TEST_KUBE_CACHE=1`` the session's ``kube_api`` reads through the
watch cache (:mod:`controlplane.kube.cache`), so every driver the tests build on it runs
the way ``serve`` does; the helpers that change objects behind the driver's back
(``scale_by_hand``, ``patch_route_by_hand``) then hand the cache the changed object, as
the next pass of a real control plane would see it once the watch delivered it.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from controlplane.kube.cache import CachedKubeApi, ObjectCache
from controlplane.kube.client import DEPLOYMENT, HTTPROUTE, KubeApi, Resource
from controlplane.kube.driver import KubeDriver

REPO = Path(__file__).resolve().parents[2]
CLUSTER_SH = REPO / "hack" / "cluster" / "cluster.sh"
NAMESPACE = Resource("/api/v1", "namespaces", namespaced=False)
SERVICE_ACCOUNT = Resource("/api/v1", "serviceaccounts")
NODE = Resource("/api/v1", "nodes", namespaced=False)
T = TypeVar("T")


@pytest.fixture(scope="session")
def kubeconfig() -> Iterator[str]:
    configured = os.environ.get("KUBECONFIG")
    if configured:
        yield configured
        return
    running = subprocess.run([str(CLUSTER_SH), "status"], capture_output=True, check=False)
    started = running.returncode != 0
    up = subprocess.run(
        [str(CLUSTER_SH), "up"], capture_output=True, text=True, check=False, timeout=3600
    )
    if up.returncode != 0:
        pytest.fail(f"could not start the local cluster:\n{up.stderr[-4000:]}")
    try:
        yield up.stdout.strip().splitlines()[-1]
    finally:
        if started and not os.environ.get("CONTROLPLANE_TEST_KEEP_CLUSTER"):
            subprocess.run([str(CLUSTER_SH), "down"], capture_output=True, check=False, timeout=300)


@pytest.fixture(scope="session")
def kube_api(kubeconfig: str) -> Iterator[KubeApi]:
    api = KubeApi.from_kubeconfig(kubeconfig)
    if os.environ.get("CONTROLPLANE_TEST_KUBE_CACHE") == "1":
        cache = ObjectCache(api)
        yield CachedKubeApi(api, cache)
        cache.close()
    else:
        yield api
    api.close()


@pytest.fixture
def driver(kube_api: KubeApi) -> KubeDriver:
    return KubeDriver(kube_api)


def seen_by_cache(api: KubeApi, resource: Resource, namespace: str, name: str) -> None:
    """After a change made behind the driver's back, when ``api`` reads through the watch
    cache: the object as it is now counts as this process's own write (read-your-writes),
    so a pass that follows at once sees the change, as a real control plane's next pass
    would once the watch delivered it. (tests/kube/test_cache.py proves the watch does.)"""
    if isinstance(api, CachedKubeApi):
        now = KubeApi(api.api_client).get(resource, namespace, name)
        if now is not None:
            api.cache.record(now)


def wait_for(
    what: str, probe: Callable[[], T | None], *, timeout: float = 60.0, interval: float = 0.25
) -> T:
    """Poll ``probe`` until it returns something truthy; fail with ``what`` after timeout."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {what}; last seen: {last!r}")


@pytest.fixture
def namespace(kube_api: KubeApi) -> Iterator[str]:
    name = f"cp-test-{uuid.uuid4().hex[:8]}"
    kube_api.request(
        "POST",
        NAMESPACE.path(),
        action="create namespace",
        body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
    )
    # a new namespace rejects pods until the controller-manager made its ServiceAccount
    wait_for("the default ServiceAccount", lambda: kube_api.get(SERVICE_ACCOUNT, name, "default"))
    yield name
    kube_api.delete(NAMESPACE, None, name)


@pytest.fixture
def gpu_node(kube_api: KubeApi, namespace: str) -> Iterator[dict[str, Any]]:
    """A fake 8-GPU node only this test's pods may use (labelled and tainted for it)."""
    name = f"gpu-{namespace}"
    pool = {"controlplane.dev/test-pool": namespace}
    capacity = {"cpu": "64", "memory": "512Gi", "pods": "110", "nvidia.com/gpu": "8"}
    kube_api.request(
        "POST",
        NODE.path(),
        action="create node",
        body={
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "labels": {**pool, "type": "kwok"},
                "annotations": {"kwok.x-k8s.io/node": "fake"},
            },
            "spec": {
                "taints": [
                    {
                        "key": "controlplane.dev/test-pool",
                        "value": namespace,
                        "effect": "NoSchedule",
                    }
                ]
            },
            "status": {"capacity": capacity, "allocatable": capacity},
        },
    )
    kube_api.request(
        "PATCH",
        NODE.path(name=name) + "/status",
        action="set node capacity",
        content_type="application/merge-patch+json",
        body={"status": {"capacity": capacity, "allocatable": capacity}},
    )

    def ready() -> bool:
        node = kube_api.get(NODE, None, name) or {}
        conditions = (node.get("status") or {}).get("conditions") or []
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    wait_for(f"node {name} to be Ready", ready)
    yield {
        "name": name,
        "node_selector": pool,
        "tolerations": [
            {
                "key": "controlplane.dev/test-pool",
                "operator": "Equal",
                "value": namespace,
                "effect": "NoSchedule",
            }
        ],
    }
    kube_api.delete(NODE, None, name)


def watch_events(
    api: KubeApi, path: str, *, resource_version: str, seconds: int
) -> list[dict[str, Any]]:
    """Every watch event of ``path`` (a namespaced collection) after ``resource_version``,
    for ``seconds``: the API server's own record of each change, in order. Blocks."""
    import json

    method, url, headers, body, post = api.api_client.param_serialize(
        "GET",
        path,
        query_params=[
            ("watch", "true"),
            ("resourceVersion", resource_version),
            ("timeoutSeconds", str(seconds)),
            ("allowWatchBookmarks", "false"),
        ],
        header_params={"Accept": "application/json"},
        auth_settings=["BearerToken"],
    )
    response = api.api_client.call_api(
        method, url, headers, body, post, _request_timeout=(5.0, seconds + 10.0)
    )
    raw = response.read().decode()
    return [json.loads(line) for line in raw.splitlines() if line.strip()]


def scale_by_hand(api: KubeApi, namespace: str, deployment: str, replicas: int) -> None:
    """What `kubectl scale deployment <name> --replicas=N` does: a patch of the scale
    subresource (which records no field manager on the Deployment)."""
    api.request(
        "PATCH",
        f"/apis/apps/v1/namespaces/{namespace}/deployments/{deployment}/scale",
        action="kubectl scale",
        query=[("fieldManager", "kubectl-scale")],
        body={"spec": {"replicas": replicas}},
        content_type="application/merge-patch+json",
    )
    seen_by_cache(api, DEPLOYMENT, namespace, deployment)


def patch_route_by_hand(api: KubeApi, namespace: str, route: str, weights: list[int]) -> None:
    """What `kubectl patch httproute <route> --type=json -p '[{"op": "replace", "path":
    "/spec/rules/0/backendRefs/<i>/weight", "value": <w>}, ...]'` does, field manager
    `kubectl-patch`."""
    api.request(
        "PATCH",
        HTTPROUTE.path(namespace, route),
        action="kubectl patch",
        query=[("fieldManager", "kubectl-patch")],
        body=[
            {"op": "replace", "path": f"/spec/rules/0/backendRefs/{i}/weight", "value": weight}
            for i, weight in enumerate(weights)
        ],
        content_type="application/json-patch+json",
    )
    seen_by_cache(api, HTTPROUTE, namespace, route)
