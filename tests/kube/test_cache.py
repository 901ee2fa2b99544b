"""The watch cache against a real API server: it answers for what the control plane owns,
sees what others change, lists again after a 410, hands back our own writes before the
watch does, and falls back to the API server whenever its view is not known to be current.

The cache reaches the API server through a TCP proxy (tests/support/tcpproxy.py) that a
test can hold (a watch whose events are late) or cut (the API server gone); the driver's
own requests go straight to the server.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import pytest

from controlplane import telemetry
from controlplane.kube import KubeDriver, Track, Workload
from controlplane.kube.cache import ObjectCache
from controlplane.kube.client import DEPLOYMENT, POD, KubeApi, Resource
from tests.support.cluster import wait_for
from tests.support.tcpproxy import TcpProxy, tcp_proxy

pytestmark = pytest.mark.cluster

STALE_AFTER = 1.0


def counter(name: str, **labels: str) -> float:
    return telemetry.REGISTRY.get_sample_value(name, labels) or 0.0


def reads(outcome: str) -> float:
    return counter("controlplane_kube_cache_reads_total", outcome=outcome)


def requests(verb: str) -> float:
    return counter("controlplane_kube_requests_total", verb=verb, status="2xx")


def workload(namespace: str, replicas: int = 1) -> Workload:
    return Workload(
        model="chat",
        namespace=namespace,
        version="v1",
        image="vllm/vllm-openai:v0.11.0",
        port=8000,
        gpus=0,
        gpu_resource="nvidia.com/gpu",
        artifact_uri="s3://models/chat/v1",
        replicas=replicas,
        track=Track.CANARY,
        args=(),
    )


@pytest.fixture
def direct(kube_api: KubeApi) -> KubeApi:
    """Straight to the API server, whatever the session's ``kube_api`` reads through: what
    another person or controller does."""
    return KubeApi(kube_api.api_client)


@pytest.fixture
def proxy(direct: KubeApi) -> Iterator[TcpProxy]:
    url = urlparse(direct.api_client.configuration.host)
    with tcp_proxy((url.hostname or "127.0.0.1", url.port or 443)) as proxy:
        yield proxy


def cache_through(direct: KubeApi, proxy: TcpProxy) -> ObjectCache:
    configuration = copy.deepcopy(direct.api_client.configuration)
    configuration.host = f"https://127.0.0.1:{proxy.port}"
    from kubernetes import client as k8s_client

    return ObjectCache(KubeApi(k8s_client.ApiClient(configuration)), stale_after=STALE_AFTER)


@pytest.fixture
def cache(direct: KubeApi, proxy: TcpProxy) -> Iterator[ObjectCache]:
    cache = cache_through(direct, proxy)
    yield cache
    cache.close()


@pytest.fixture
def driver(direct: KubeApi, cache: ObjectCache) -> KubeDriver:
    return KubeDriver(direct, cache=cache)


def scale(api: KubeApi, namespace: str, replicas: int) -> None:
    api.request(
        "PATCH",
        DEPLOYMENT.path(namespace, "chat-v1") + "/scale",
        action="scale by hand",
        query=[("fieldManager", "kubectl-scale")],
        body={"spec": {"replicas": replicas}},
        content_type="application/merge-patch+json",
    )


def deployed(driver: KubeDriver, cache: ObjectCache, namespace: str, replicas: int = 1) -> None:
    """chat-v1 applied, ready, and held by the cache (Deployments and pods synced)."""
    driver.apply_version(workload(namespace, replicas))
    for resource in (DEPLOYMENT, POD):
        assert cache.wait_synced(resource, namespace, timeout=30) is not None
    wait_for(
        "chat-v1 ready, as the cache sees it",
        lambda: driver.observe_version(namespace, "chat", "v1").is_ready,
    )


def cached(cache: ObjectCache, resource: Resource, namespace: str, name: str) -> Any:
    answered, obj = cache.get(resource, namespace, name)
    assert answered, "the cache did not answer"
    return obj


def test_reads_of_what_we_own_come_from_the_cache_and_changes_by_others_are_seen(
    driver: KubeDriver, cache: ObjectCache, direct: KubeApi, namespace: str
) -> None:
    deployed(driver, cache, namespace)
    hits, gets, lists = reads("hit"), requests("get"), requests("list")
    state = driver.observe_version(namespace, "chat", "v1")
    assert (state.desired, state.ready) == (1, 1)
    assert reads("hit") == hits + 2  # the Deployment and its pods
    assert (requests("get"), requests("list")) == (gets, lists)  # nothing asked of the server

    scale(direct, namespace, 3)
    state = wait_for(
        "the cache to see the Deployment scaled by hand",
        lambda: (s := driver.observe_version(namespace, "chat", "v1")).desired == 3 and s,
    )
    wait_for(
        "three pods, as the cache sees them",
        lambda: driver.observe_version(namespace, "chat", "v1").ready == 3,
    )
    assert state.exists


def test_a_deletion_by_someone_else_is_seen(
    driver: KubeDriver, cache: ObjectCache, direct: KubeApi, namespace: str
) -> None:
    deployed(driver, cache, namespace)
    assert direct.delete(DEPLOYMENT, namespace, "chat-v1")
    wait_for(
        "the cache to drop the deleted Deployment",
        lambda: cached(cache, DEPLOYMENT, namespace, "chat-v1") is None,
    )
    assert not driver.observe_version(namespace, "chat", "v1").exists


def test_a_watch_too_old_to_resume_ends_in_a_fresh_list(
    driver: KubeDriver, cache: ObjectCache, direct: KubeApi, namespace: str
) -> None:
    deployed(driver, cache, namespace)
    informer = cache.informer(DEPLOYMENT, namespace)
    assert informer is not None
    lists, relists = informer.lists, counter("controlplane_kube_cache_relists_total")
    # a resourceVersion the API server no longer keeps: it answers 410 Gone
    informer.reconnect(resource_version="1")
    wait_for("a relist after 410 Gone", lambda: informer.lists > lists, timeout=30)
    assert counter("controlplane_kube_cache_relists_total") > relists

    scale(direct, namespace, 2)  # and the watch goes on from the new list
    wait_for(
        "the cache to follow after the relist",
        lambda: driver.observe_version(namespace, "chat", "v1").desired == 2,
    )
    assert informer.state()["connected"]


def test_our_own_write_is_read_back_before_the_watch_delivers_it(
    driver: KubeDriver, cache: ObjectCache, proxy: TcpProxy, namespace: str
) -> None:
    deployed(driver, cache, namespace)
    informer = cache.informer(DEPLOYMENT, namespace)
    assert informer is not None
    proxy.hold()  # the watch stays connected, its events wait
    try:
        driver.apply_version(workload(namespace, replicas=2))
        hits = reads("hit")
        assert driver.observe_version(namespace, "chat", "v1").desired == 2
        assert reads("hit") > hits  # answered by the cache, with our write
        assert informer.state()["pending_writes"] == 1
        assert cache.current(DEPLOYMENT, namespace, "chat-v1") is None  # no apply skipped on it

        # unconfirmed for longer than the staleness bound: that object is read from the
        # API server
        time.sleep(STALE_AFTER + 0.5)
        fallbacks = reads("fallback")
        assert driver.observe_version(namespace, "chat", "v1").desired == 2
        assert reads("fallback") > fallbacks
    finally:
        proxy.release()
    wait_for("the watch to deliver our write", lambda: informer.state()["pending_writes"] == 0)
    assert cached(cache, DEPLOYMENT, namespace, "chat-v1")["spec"]["replicas"] == 2


def test_reads_go_to_the_api_server_until_synced_and_while_the_watch_is_broken(
    direct: KubeApi, proxy: TcpProxy, namespace: str
) -> None:
    proxy.cut()  # the cache cannot reach the API server; the driver's own requests can
    cache = cache_through(direct, proxy)
    driver = KubeDriver(direct, cache=cache)
    try:
        driver.apply_version(workload(namespace))
        fallbacks = reads("fallback")
        time.sleep(STALE_AFTER + 0.5)
        assert driver.observe_version(namespace, "chat", "v1").desired == 1
        assert reads("fallback") > fallbacks  # never synced: the API server answered

        proxy.restore()
        assert cache.wait_synced(DEPLOYMENT, namespace, timeout=60) is not None
        hits = reads("hit")
        assert driver.observe_version(namespace, "chat", "v1").exists
        assert reads("hit") > hits

        proxy.cut()  # the API server "restarts"; meanwhile someone scales by hand
        scale(direct, namespace, 3)
        time.sleep(STALE_AFTER + 0.5)
        fallbacks = reads("fallback")
        assert driver.observe_version(namespace, "chat", "v1").desired == 3  # not stale
        assert reads("fallback") > fallbacks

        proxy.restore()  # back: the watch resumes and catches up
        informer = cache.informer(DEPLOYMENT, namespace)
        assert informer is not None
        wait_for("the watch to follow again", lambda: informer.state()["connected"], timeout=60)
        hits = reads("hit")
        assert driver.observe_version(namespace, "chat", "v1").desired == 3
        assert reads("hit") > hits
    finally:
        cache.close()


def test_an_apply_that_changes_nothing_is_not_sent_and_drift_is_applied_again(
    driver: KubeDriver, cache: ObjectCache, direct: KubeApi, namespace: str
) -> None:
    deployed(driver, cache, namespace)

    def sends_nothing() -> bool:
        applies = requests("apply")
        driver.apply_version(workload(namespace))
        return requests("apply") == applies

    # the Deployment's status moved since our first apply: one more, then none
    wait_for("an apply_version that sends no apply", sends_nothing, timeout=20)
    skipped = counter("controlplane_kube_applies_skipped_total")
    assert sends_nothing()
    assert counter("controlplane_kube_applies_skipped_total") == skipped + 2  # Deployment, Service

    scale(direct, namespace, 3)  # drift: the next apply must go out and restore 1
    wait_for(
        "the cache to see the drift",
        lambda: cached(cache, DEPLOYMENT, namespace, "chat-v1")["spec"]["replicas"] == 3,
    )
    applies = requests("apply")
    driver.apply_version(workload(namespace))
    assert requests("apply") == applies + 1  # the Deployment; the Service is unchanged
    assert (direct.get(DEPLOYMENT, namespace, "chat-v1") or {})["spec"]["replicas"] == 1


def test_where_only_namespaced_roles_are_granted_it_watches_per_namespace(
    kube_api: KubeApi, direct: KubeApi, namespace: str
) -> None:
    """The chart's default: Roles in the model namespaces, no cluster-wide list."""
    account = Resource("/api/v1", "serviceaccounts")
    rules = [
        {
            "apiGroups": ["apps"],
            "resources": ["deployments"],
            "verbs": ["get", "list", "watch", "patch", "create"],
        },
        {"apiGroups": [""], "resources": ["pods", "services"], "verbs": ["get", "list", "watch"]},
    ]
    direct.request(
        "POST",
        account.path(namespace),
        action="create serviceaccount",
        body={"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "cp"}},
    )
    direct.request(
        "POST",
        f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/roles",
        action="create role",
        body={
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "cp"},
            "rules": rules,
        },
    )
    direct.request(
        "POST",
        f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/rolebindings",
        action="create rolebinding",
        body={
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "cp"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "cp"},
            "subjects": [{"kind": "ServiceAccount", "name": "cp", "namespace": namespace}],
        },
    )
    token = direct.request(
        "POST",
        account.path(namespace, "cp") + "/token",
        action="create token",
        body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}},
    )["status"]["token"]
    from kubernetes import client as k8s_client

    configuration = copy.deepcopy(direct.api_client.configuration)
    configuration.cert_file = configuration.key_file = None
    configuration.api_key = {"BearerToken": f"Bearer {token}"}
    restricted = KubeApi(k8s_client.ApiClient(configuration))
    cache = ObjectCache(restricted, stale_after=STALE_AFTER)
    try:
        driver = KubeDriver(restricted, cache=cache)
        driver.api.apply(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {
                    "name": "chat-v1",
                    "namespace": namespace,
                    "labels": {"app.kubernetes.io/managed-by": "controlplane"},
                },
                "spec": {
                    "replicas": 0,
                    "selector": {"matchLabels": {"app": "chat"}},
                    "template": {
                        "metadata": {"labels": {"app": "chat"}},
                        "spec": {"containers": [{"name": "s", "image": "x"}]},
                    },
                },
            },
            field_manager="controlplane",
            force=True,
        )

        def per_namespace() -> bool:
            informer = cache.informer(DEPLOYMENT, namespace)
            return informer is not None and informer.namespace == namespace

        wait_for("the cluster-wide watch refused, a namespaced one started", per_namespace)
        assert cache.wait_synced(DEPLOYMENT, namespace, timeout=30) is not None
        assert cached(cache, DEPLOYMENT, namespace, "chat-v1") is not None
    finally:
        cache.close()
        restricted.close()
