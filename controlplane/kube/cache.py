"""A watch-based cache of the objects the control plane owns, so that a reconcile pass reads
its Deployments, pods, Services and routes from memory instead of asking the API server a
dozen times, and skips the server-side applies that would change nothing.

**What it holds.** Per kind, every object labelled ``app.kubernetes.io/managed-by=
controlplane`` (what :mod:`controlplane.kube.render` makes, and the pods of our
Deployments), listed once and then followed with a watch, from the first time a pass reads
that kind. One watch per kind for the whole cluster; where the control plane may only
list in some namespaces (the chart's default Roles), one per kind and namespace read. Nodes,
a team's base-pool Deployment and pods, and pods cluster-wide (free GPUs) are not held:
they are read from the API server every time, as before.

**When it answers.** Only when its view is known to be current within ``stale_after``
seconds; otherwise the caller reads from the API server (:class:`CachedKubeApi` does):

- before the first list of that kind has come back (not synced);
- once its watch has been broken for longer than ``stale_after`` (the API server
  restarted, the network failed, a ``410 Gone`` whose relist has not finished);
- for an object this process wrote whose change the watch has not delivered within
  ``stale_after``.

**Read-your-writes.** A write's answer (the object and its resourceVersion) is kept and
handed out until the watch delivers an event carrying that same resourceVersion (or a
relist that began after the write completes), so a pass never reads a version older than
the one the previous pass wrote. resourceVersions are only compared for equality, as the
API's contract says: watch events arrive in order, so whatever arrives after the write's
own event is newer. A delete is kept the same way, as "absent", until the watch says so.

It never writes to the cluster itself. The objects it returns are shared: callers must not
change them.
"""

from __future__ import annotations

import copy
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from kubernetes import client as k8s_client

from controlplane import telemetry
from controlplane.kube.client import RESOURCES, KubeApi, Resource, resource_of
from controlplane.kube.errors import ForbiddenError, KubeError, TemporaryKubeError, translate
from controlplane.kube.render import LABEL_MANAGED_BY, LABEL_NAME, MANAGER

log = logging.getLogger(__name__)

OWNED = {LABEL_MANAGED_BY: MANAGER}
OWNED_SELECTOR = f"{LABEL_MANAGED_BY}={MANAGER}"
# the kinds a pass reads or writes, namespaced (events are neither read nor owned)
CACHED = frozenset(r for (_, kind), r in RESOURCES.items() if r.namespaced and kind != "Event")
KINDS = {r: (api_version, kind) for (api_version, kind), r in RESOURCES.items()}

Key = tuple[str, str]  # namespace, name


def owned(obj: dict[str, Any], selector: dict[str, str] = OWNED) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return all(labels.get(k) == v for k, v in selector.items())


def equality_selector(selector: str | None) -> dict[str, str] | None:
    """``a=b,c=d`` as a dict; None for anything else (set-based terms, ``!=``, existence):
    such a list is not answered from the cache."""
    if not selector:
        return {}
    terms: dict[str, str] = {}
    for term in selector.split(","):
        if "!" in term or "(" in term or ")" in term or "=" not in term:
            return None
        key, _, value = term.partition("==") if "==" in term else term.partition("=")
        key, value = key.strip(), value.strip()
        if not key:
            return None
        terms[key] = value
    return terms


def _key(obj: dict[str, Any]) -> Key:
    metadata = obj.get("metadata") or {}
    return str(metadata.get("namespace") or ""), str(metadata.get("name") or "")


def _version(obj: dict[str, Any] | None) -> str:
    return str(((obj or {}).get("metadata") or {}).get("resourceVersion") or "")


def unchanged_since(obj: dict[str, Any]) -> str:
    """What changes whenever anyone changes what we apply to ``obj``: its uid (deleted and
    made again), and its generation (every spec change), labels and annotations; for a
    kind without a generation (a Service), its resourceVersion. A status update (a
    Deployment's ready replicas) changes none of them, so it does not make the next
    identical apply go out again."""
    metadata = obj.get("metadata") or {}
    if metadata.get("generation") is None:
        return json.dumps([metadata.get("uid"), metadata.get("resourceVersion")])
    return json.dumps(
        [
            metadata.get("uid"),
            metadata.get("generation"),
            metadata.get("labels") or {},
            metadata.get("annotations") or {},
        ],
        sort_keys=True,
    )


class _Gone(Exception):
    """The watch's resourceVersion is too old (410): list again."""


@dataclass
class _Written:
    obj: dict[str, Any] | None  # None: deleted by us
    resource_version: str
    at: float
    seq: int


class Backoff:
    """Exponential, with jitter, so that a restarted API server is not met by every watch
    at the same instant."""

    def __init__(self, first: float = 0.5, most: float = 30.0) -> None:
        self.first, self.most = first, most
        self.current = first

    def next(self) -> float:
        delay = self.current * random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not secrets
        self.current = min(self.most, self.current * 2)
        return delay

    def reset(self) -> None:
        self.current = self.first


def _lines(response: Any) -> Iterator[bytes]:
    """A watch's newline-delimited JSON events, as the chunks arrive."""
    pending = b""
    for chunk in response.stream(amt=None, decode_content=True):
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            if line.strip():
                yield line
    if pending.strip():
        yield pending


class Informer:
    """List, then watch, one kind (in one namespace, or all): the objects we own, current
    to the last event, with the rules of the module docstring for when to trust them."""

    def __init__(
        self,
        api: KubeApi,
        resource: Resource,
        namespace: str | None,
        *,
        stale_after: float,
        watch_seconds: tuple[int, int] = (240, 360),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self.resource = resource
        self.namespace = namespace
        self.stale_after = stale_after
        self.watch_seconds = watch_seconds
        self.clock = clock
        self.api_version, self.kind = KINDS[resource]
        # pods are many and nothing reads their field managers: keep them smaller
        self._slim = resource.plural == "pods"
        self._lock = threading.Lock()
        self._objects: dict[Key, dict[str, Any]] = {}
        self._by_app: dict[tuple[str, str], set[Key]] = {}  # (namespace, app name) -> keys
        self._written: dict[Key, _Written] = {}
        self._seq = 0
        self._version = ""
        self.synced = False
        self._broken_since: float | None = clock()
        self._warned = False
        self.forbidden = False  # the API server refused to list or watch this kind here
        self.error = ""
        self.lists = 0
        self.watches = 0
        self.events = 0
        self.last_read = clock()
        self._stop = threading.Event()
        self._response: Any = None
        self._reconnect_from: str | None = None
        where = namespace or "all namespaces"
        self.name = f"{resource.plural} in {where}"
        self._thread = threading.Thread(target=self._run, name=f"watch {self.name}", daemon=True)

    # --- life -----------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def close(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._interrupt()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _interrupt(self) -> None:
        response = self._response
        if response is not None:
            try:
                response.shutdown()  # unblocks the read in the watch thread
            except Exception:  # it may be closing already
                log.debug("watch %s: shutdown failed", self.name, exc_info=True)

    def reconnect(self, resource_version: str | None = None) -> None:
        """Drop the current watch and start another (from ``resource_version`` when given,
        e.g. one the API server no longer has, which must end in a relist)."""
        with self._lock:
            self._reconnect_from = resource_version
        self._interrupt()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    # --- the loop ---------------------------------------------------------------------

    def _run(self) -> None:
        backoff = Backoff()
        relist = True
        while not self._stop.is_set():
            try:
                if relist:
                    self._list()
                    relist = False
                    backoff.reset()
                self._watch()
                backoff.reset()
            except _Gone:
                self._broken("410 Gone: the watch's resourceVersion is too old; listing again")
                relist = True
            except ForbiddenError as error:
                self.forbidden = True
                self._broken(error.message)
                self._stop.wait(60.0)
            except Exception as error:  # the thread must outlive any failure
                if self._stop.is_set():
                    break
                message = error.message if isinstance(error, KubeError) else repr(error)
                self._broken(message)
                self._stop.wait(backoff.next())

    def _path(self) -> str:
        if self.namespace is None:
            return f"{self.resource.prefix}/{self.resource.plural}"
        return self.resource.path(self.namespace)

    def _list(self) -> None:
        with self._lock:
            seq = self._seq
        items, version = self.api.list_at(
            self.resource, self.namespace, label_selector=OWNED_SELECTOR
        )
        self.lists += 1
        if self.lists > 1:
            telemetry.KUBE_CACHE_RELISTS.inc()
        objects = {_key(item): self._prepare(item) for item in items}
        with self._lock:
            self._objects = objects
            self._by_app = {}
            for key, obj in objects.items():
                self._index(key, obj)
            self._version = version
            # a write that completed before this list began is in it (the list is a
            # consistent read), or something newer is; one that completed while it ran
            # is confirmed if the list holds its version (or, a delete, holds nothing)
            self._written = {
                key: written
                for key, written in self._written.items()
                if written.seq > seq and not self._listed(written, objects.get(key))
            }
            self.synced = True
            self._healthy()

    def _watch(self) -> None:
        with self._lock:
            version = self._reconnect_from or self._version
            self._reconnect_from = None
        seconds = random.randint(*self.watch_seconds)  # noqa: S311 - spreading, not secrets
        query = [
            ("watch", "true"),
            ("labelSelector", OWNED_SELECTOR),
            ("resourceVersion", version),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", str(seconds)),
        ]
        client = self.api.api_client
        method, url, headers, body, post = client.param_serialize(
            "GET",
            self._path(),
            query_params=query,
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
        )
        answer = client.call_api(
            method, url, headers, body, post, _request_timeout=(5.0, seconds + 30.0)
        )
        telemetry.KUBE_REQUESTS.labels("watch", telemetry.status_class(answer.status)).inc()
        response = answer.response
        self.watches += 1
        try:
            if answer.status == 410:
                raise _Gone
            if not 200 <= answer.status < 300:
                raise translate(answer.status, response.data, action=f"watch {self.name}")
            self._response = response
            if self._stop.is_set():
                return
            self._healthy()
            for line in _lines(response):
                self._event(json.loads(line))
        finally:
            self._response = None
            response.release_conn()

    def _event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        obj = event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise _Gone
            raise TemporaryKubeError(f"watch {self.name}: {obj.get('message') or obj}")
        version = _version(obj)
        if kind == "BOOKMARK":
            with self._lock:
                self._version = version or self._version
            return
        key = _key(obj)
        self.events += 1
        with self._lock:
            if kind == "DELETED":
                self._drop(key)
            else:
                self._put(key, self._prepare(obj))
            self._version = version or self._version
            written = self._written.get(key)
            if written is not None and self._confirms(written, kind, version):
                del self._written[key]

    @staticmethod
    def _listed(written: _Written, listed: dict[str, Any] | None) -> bool:
        if written.obj is None:
            return listed is None
        return listed is not None and _version(listed) == written.resource_version

    @staticmethod
    def _confirms(written: _Written, kind: str | None, version: str) -> bool:
        """Whether an event is our write's own (its resourceVersion), or our delete's."""
        if written.obj is None:
            return kind == "DELETED"
        return kind != "DELETED" and written.resource_version == version

    # --- the store (under the lock) -----------------------------------------------------

    def _prepare(self, obj: dict[str, Any]) -> dict[str, Any]:
        obj.setdefault("apiVersion", self.api_version)
        obj.setdefault("kind", self.kind)
        if self._slim:
            (obj.get("metadata") or {}).pop("managedFields", None)
        return obj

    def _index(self, key: Key, obj: dict[str, Any]) -> None:
        app = ((obj.get("metadata") or {}).get("labels") or {}).get(LABEL_NAME)
        if app is not None:
            self._by_app.setdefault((key[0], app), set()).add(key)

    def _unindex(self, key: Key, obj: dict[str, Any]) -> None:
        app = ((obj.get("metadata") or {}).get("labels") or {}).get(LABEL_NAME)
        keys = self._by_app.get((key[0], app)) if app is not None else None
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._by_app[(key[0], str(app))]

    def _put(self, key: Key, obj: dict[str, Any]) -> None:
        old = self._objects.get(key)
        if old is not None:
            self._unindex(key, old)
        self._objects[key] = obj
        self._index(key, obj)

    def _drop(self, key: Key) -> None:
        old = self._objects.pop(key, None)
        if old is not None:
            self._unindex(key, old)

    def _healthy(self) -> None:
        if self._broken_since is not None and self._warned:
            log.info("watch %s: following again", self.name)
        self._broken_since = None
        self._warned = False
        self.error = ""

    def _broken(self, message: str) -> None:
        with self._lock:
            if self._broken_since is None:
                self._broken_since = self.clock()
            self.error = message
        log.info("watch %s broken: %s", self.name, message)

    def _usable(self, now: float) -> bool:
        if not self.synced:
            return False
        if self._broken_since is not None and now - self._broken_since > self.stale_after:
            if not self._warned:
                self._warned = True
                log.warning(
                    "watch %s broken for more than %.0fs (%s): reading from the API server",
                    self.name,
                    self.stale_after,
                    self.error or "not connected",
                )
            return False
        return True

    # --- reads --------------------------------------------------------------------------

    def get(self, namespace: str, name: str) -> tuple[bool, dict[str, Any] | None]:
        """(answered, object): answered False means "ask the API server"."""
        now = self.clock()
        key = (namespace, name)
        with self._lock:
            self.last_read = now
            if not self._usable(now):
                return False, None
            written = self._written.get(key)
            if written is not None:
                if now - written.at > self.stale_after:
                    return False, None
                return True, written.obj
            return True, self._objects.get(key)

    def select(self, namespace: str, selector: dict[str, str]) -> list[dict[str, Any]] | None:
        """The owned objects of ``namespace`` that match ``selector``; None: ask the server."""
        now = self.clock()
        with self._lock:
            self.last_read = now
            if not self._usable(now):
                return None
            app = selector.get(LABEL_NAME)
            keys: set[Key] | list[Key]
            if app is not None:
                keys = self._by_app.get((namespace, app), set())
            else:
                keys = [k for k in self._objects if k[0] == namespace]
            found = {key: self._objects[key] for key in keys if owned(self._objects[key], selector)}
            for key, written in self._written.items():
                if key[0] != namespace:
                    continue
                if now - written.at > self.stale_after:
                    return None
                if written.obj is not None and owned(written.obj, selector):
                    found[key] = written.obj
                else:
                    found.pop(key, None)
        return [found[key] for key in sorted(found)]

    def current(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The object as the watch last delivered it, only while the watch is connected and
        no write of ours is waiting for its event: what an apply may be skipped against."""
        key = (namespace, name)
        with self._lock:
            if not self.synced or self._broken_since is not None or key in self._written:
                return None
            return self._objects.get(key)

    # --- writes of this process ------------------------------------------------------------

    def record(self, obj: dict[str, Any]) -> None:
        """What a write of ours answered: handed out until the watch catches up."""
        if not owned(obj):
            return  # not ours to follow (the watch will not deliver it)
        key = _key(obj)
        version = _version(obj)
        obj = self._prepare(obj)
        with self._lock:
            self._seq += 1
            if _version(self._objects.get(key)) == version:
                self._written.pop(key, None)
                return
            self._written[key] = _Written(obj, version, self.clock(), self._seq)

    def mark(self) -> int:
        """Before reading from the API server: which of our writes had completed."""
        with self._lock:
            return self._seq

    def confirm(self, mark: int, found: dict[Key, dict[str, Any] | None]) -> None:
        """What the API server answered (``found``, key -> object or None), read after
        ``mark``: where the watch's copy is exactly that, it holds our earlier writes to
        it too, and they need not wait for their own events any more (a write that
        completed while the first list ran, and a change after it, is only ever confirmed
        so)."""
        with self._lock:
            for key, obj in found.items():
                written = self._written.get(key)
                if written is None or written.seq > mark:
                    continue
                stored = self._objects.get(key)
                if (obj is None and stored is None) or (
                    obj is not None and stored is not None and _version(obj) == _version(stored)
                ):
                    del self._written[key]

    def record_deleted(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        with self._lock:
            self._seq += 1
            if key not in self._objects:
                self._written.pop(key, None)
                return
            self._written[key] = _Written(None, "", self.clock(), self._seq)

    def state(self) -> dict[str, Any]:
        with self._lock:
            return {
                "watch": self.name,
                "synced": self.synced,
                "connected": self._broken_since is None,
                "objects": len(self._objects),
                "pending_writes": len(self._written),
                "lists": self.lists,
                "watches": self.watches,
                "events": self.events,
                "error": self.error,
            }


class ObjectCache:
    """The informers of one process, started on first use: one per kind for the whole
    cluster, or per kind and namespace where the cluster-wide watch is forbidden."""

    def __init__(
        self,
        api: KubeApi,
        *,
        stale_after: float = 5.0,
        idle_after: float = 600.0,
        watch_seconds: tuple[int, int] = (240, 360),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # the watches hold their connections for minutes: their own pool, so that they
        # never take the connections the reconcile passes write with
        configuration = copy.deepcopy(api.api_client.configuration)
        configuration.connection_pool_maxsize = 64
        self.api = KubeApi(k8s_client.ApiClient(configuration), timeout=api.timeout)
        self.stale_after = stale_after
        self.idle_after = idle_after
        self.watch_seconds = watch_seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._informers: dict[tuple[Resource, str | None], Informer] = {}
        self._namespaced: set[Resource] = set()  # kinds whose cluster-wide watch is forbidden
        self._closed = False
        self._swept = clock()

    def informer(self, resource: Resource, namespace: str | None) -> Informer | None:
        """The informer that holds ``resource`` in ``namespace``, started if need be; None
        when that kind is not cached."""
        if resource not in CACHED or not namespace:
            return None
        with self._lock:
            if self._closed:
                return None
            wide = self._informers.get((resource, None))
            if wide is not None and wide.forbidden:
                log.info("cannot watch %s in every namespace: one watch per namespace", wide.name)
                wide.close(timeout=0)
                del self._informers[(resource, None)]
                self._namespaced.add(resource)
                wide = None
            if resource not in self._namespaced:
                if wide is None:
                    wide = self._start(resource, None)
                return wide
            informer = self._informers.get((resource, namespace))
            if informer is None:
                informer = self._start(resource, namespace)
            self._sweep()
            return informer

    def _start(self, resource: Resource, namespace: str | None) -> Informer:
        informer = Informer(
            self.api,
            resource,
            namespace,
            stale_after=self.stale_after,
            watch_seconds=self.watch_seconds,
            clock=self.clock,
        )
        self._informers[(resource, namespace)] = informer
        informer.start()
        return informer

    def _sweep(self) -> None:
        """Stop the per-namespace watches nobody read for ``idle_after`` (a namespace whose
        models are gone); under the lock."""
        now = self.clock()
        if now - self._swept < 60:
            return
        self._swept = now
        for key, informer in list(self._informers.items()):
            if key[1] is not None and now - informer.last_read > self.idle_after:
                informer.close(timeout=0)
                del self._informers[key]

    # --- reads and writes, by kind ---------------------------------------------------------

    def get(
        self, resource: Resource, namespace: str | None, name: str
    ) -> tuple[bool, dict[str, Any] | None]:
        informer = self.informer(resource, namespace)
        if informer is None or namespace is None:
            return False, None
        return informer.get(namespace, name)

    def select(
        self, resource: Resource, namespace: str | None, selector: dict[str, str]
    ) -> list[dict[str, Any]] | None:
        informer = self.informer(resource, namespace)
        if informer is None or namespace is None:
            return None
        return informer.select(namespace, selector)

    def current(self, resource: Resource, namespace: str, name: str) -> dict[str, Any] | None:
        informer = self.informer(resource, namespace)
        return informer.current(namespace, name) if informer is not None else None

    def record(self, obj: dict[str, Any]) -> None:
        try:
            resource = resource_of(obj)
        except ValueError:
            return
        namespace = (obj.get("metadata") or {}).get("namespace")
        informer = self.informer(resource, namespace)
        if informer is not None:
            informer.record(obj)

    def record_deleted(self, resource: Resource, namespace: str | None, name: str) -> None:
        informer = self.informer(resource, namespace)
        if informer is not None and namespace is not None:
            informer.record_deleted(namespace, name)

    # --- for operators, tests and benchmarks ---------------------------------------------

    def wait_synced(
        self, resource: Resource, namespace: str, timeout: float = 30.0
    ) -> Informer | None:
        """Start the informer for ``resource`` in ``namespace`` and wait until it holds a
        view it would answer from; None if it did not within ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            informer = self.informer(resource, namespace)
            if informer is not None and informer.get(namespace, "")[0]:
                return informer
            time.sleep(0.05)
        return None

    def state(self) -> list[dict[str, Any]]:
        with self._lock:
            informers = list(self._informers.values())
        return [informer.state() for informer in informers]

    def close(self) -> None:
        with self._lock:
            self._closed = True
            informers = list(self._informers.values())
            self._informers.clear()
        for informer in informers:
            informer.close(timeout=0)
        for informer in informers:
            informer.close()
        self.api.close()


class CachedKubeApi(KubeApi):
    """:class:`KubeApi` whose reads of what we own come from an :class:`ObjectCache` when
    it can answer (the API server otherwise), and whose applies are skipped when nobody
    changed the object since our last identical apply (:func:`unchanged_since`)."""

    def __init__(self, api: KubeApi, cache: ObjectCache) -> None:
        super().__init__(api.api_client, timeout=api.timeout)
        self.cache = cache
        # (resource, namespace, name) -> (what we applied, what it made: unchanged_since)
        self._applied: dict[tuple[Resource, str, str], tuple[str, str]] = {}

    def get(
        self, resource: Resource, namespace: str | None, name: str, *, owned: bool = False
    ) -> dict[str, Any] | None:
        answered, obj = self.cache.get(resource, namespace, name)
        if answered and (obj is not None or owned):
            telemetry.KUBE_CACHE_READS.labels("hit").inc()
            return obj
        # absent from the cache, and not known to be ours (a team's Deployment): the API
        # server says whether it is there
        telemetry.KUBE_CACHE_READS.labels("miss" if answered else "fallback").inc()
        informer = self.cache.informer(resource, namespace)
        mark = informer.mark() if informer is not None else 0
        found = super().get(resource, namespace, name)
        if informer is not None and not answered and namespace:
            informer.confirm(mark, {(namespace, name): found})
        return found

    def list(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[dict[str, Any]]:
        selector = equality_selector(label_selector)
        if (
            namespace
            and not field_selector
            and selector is not None
            and owned({"metadata": {"labels": selector}})
        ):
            found = self.cache.select(resource, namespace, selector)
            if found is not None:
                telemetry.KUBE_CACHE_READS.labels("hit").inc()
                return found
            telemetry.KUBE_CACHE_READS.labels("fallback").inc()
            informer = self.cache.informer(resource, namespace)
            if informer is not None:
                mark = informer.mark()
                found = super().list(resource, namespace, label_selector=label_selector)
                informer.confirm(mark, {_key(obj): obj for obj in found})
                return found
        return super().list(
            resource, namespace, label_selector=label_selector, field_selector=field_selector
        )

    def apply(
        self, obj: dict[str, Any], *, field_manager: str, force: bool = False, dry_run: bool = False
    ) -> dict[str, Any]:
        if dry_run:
            return super().apply(obj, field_manager=field_manager, force=force, dry_run=True)
        resource = resource_of(obj)
        namespace, name = _key(obj)
        key = (resource, namespace, name)
        body = json.dumps([obj, field_manager, force], sort_keys=True, separators=(",", ":"))
        last = self._applied.get(key)
        if last is not None and last[0] == body:
            current = self.cache.current(resource, namespace, name)
            if current is not None and unchanged_since(current) == last[1]:
                telemetry.KUBE_APPLIES_SKIPPED.inc()
                return current
        applied = super().apply(obj, field_manager=field_manager, force=force)
        self._applied[key] = (body, unchanged_since(applied))
        self.cache.record(applied)
        return applied

    def patch_status(
        self, resource: Resource, namespace: str, name: str, patch: dict[str, Any]
    ) -> dict[str, Any]:
        patched = super().patch_status(resource, namespace, name, patch)
        self.cache.record(patched)
        return patched

    def delete(
        self,
        resource: Resource,
        namespace: str | None,
        name: str,
        *,
        propagation: str = "Background",
    ) -> bool:
        existed = super().delete(resource, namespace, name, propagation=propagation)
        self._applied.pop((resource, namespace or "", name), None)
        self.cache.record_deleted(resource, namespace, name)
        return existed


__all__ = ["CACHED", "CachedKubeApi", "Informer", "ObjectCache", "equality_selector"]
