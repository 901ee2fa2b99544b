"""The base pools' keeper: every pod of a pool holds the adapters the routing needs, whether
a rollout is under way or not.

An adapter loaded at runtime lives in a server's memory: a restarted container, a pod
rescheduled on another node or one more replica of the pool starts with none. Each tick the
keeper reads every pool's pods, loads what is missing where the server answers, opens the
adapters readiness gate on the pods that hold all the routing needs (closes it on those that
do not), and unloads the adapters of this control plane's models that nothing needs any more
(a version retired or rolled back, left behind by an unload that did not get through). It
never touches an adapter of a name it does not own, and never changes the pool's Deployment.
"""

from __future__ import annotations

import logging
import socket
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlmodel import col, select

from controlplane.db import Database
from controlplane.kube import KubeDriver, KubeError
from controlplane.kube.adapters import PoolState
from controlplane.models import BasePool, utcnow
from controlplane.registry import pools
from controlplane.rollout.base_pools import pool_ref
from controlplane.rollout.leases import RolloutLeases

log = logging.getLogger(__name__)


class PoolKeeper:
    """Runs a pass over every pool; on each, acts only under the pool's lease (shared with
    the rollouts of the pool's models, see Reconciler._apply_adapters), and on what it read
    from the database after taking it: two replicas never load, unload or gate one pool's
    pods on different readings of what the routing needs."""

    def __init__(
        self,
        database: Database,
        driver: KubeDriver,
        *,
        clock: Callable[[], datetime] = utcnow,
        owner: str | None = None,
        leases: RolloutLeases | None = None,
    ) -> None:
        self.database = database
        self.driver = driver
        self.clock = clock
        self.owner = owner or f"{socket.gethostname()}-keeper-{uuid.uuid4().hex[:8]}"
        # the replica's leases: a pool held under the short lease its heartbeat renews (a
        # keeper killed mid-pass holds the pool seconds, not POOL_LEASE)
        self.leases = leases

    def run(self) -> int:
        """One pass over every pool; returns how many adapter loads it made."""
        with self.database.session() as session:
            names = list(session.exec(select(BasePool.name)).all())
        loaded = 0
        seen: dict[str, PoolState] = {}
        for name in names:
            if not self._claim(name):
                continue  # another replica acts on it now
            try:
                loaded += self._keep(name, seen)
            except KubeError as error:
                log.warning("base pool %s: %s", name, error.message)
            except Exception:  # one pool's trouble must not stop the others'
                log.exception("base pool %s: the keeper's pass failed", name)
            finally:
                self._release(name)
        if seen:
            self._keep_readings(seen)
        return loaded

    def _claim(self, name: str) -> bool:
        if self.leases is not None:
            return self.leases.claim_pool(name)
        with self.database.session() as session:
            return pools.claim_pool(session, name, owner=self.owner, now=self.clock())

    def _release(self, name: str) -> None:
        if self.leases is not None:
            self.leases.release_pool(name)
            return
        with self.database.session() as session:
            pools.release_pool(session, name, owner=self.owner)

    def _keep(self, name: str, seen: dict[str, PoolState]) -> int:
        with self.database.session() as session:
            pool = session.exec(select(BasePool).where(BasePool.name == name)).first()
            if pool is None:
                return 0
            ref = pool_ref(pool)
            load, gate = pools.pool_needs(session, pool)
            retired = pools.retired_adapters(session, pool, now=self.clock())
        if not load and not retired:
            return 0
        state = self.driver.adapters.observe_pool(ref)
        before = sum(len(pod.adapters or ()) for pod in state.pods)
        state = self.driver.adapters.ensure_loaded(state, load)
        after = sum(len(pod.adapters or ()) for pod in state.pods)
        for adapter, why in sorted(state.failures.items()):
            log.warning("base pool %s: adapter %s not loaded: %s", name, adapter, why)
        # never unload what the routing needs, whatever else thinks it retired
        held = {n for pod in state.pods for n in (pod.adapters or ())}
        leftover = (held & retired) - set(load)
        if leftover:
            state = self.driver.adapters.unload(state, leftover)
        self.driver.adapters.set_gates(state, gate)
        seen[name] = state
        return max(0, after - before)

    def _keep_readings(self, seen: dict[str, PoolState]) -> None:
        """Which pod holds which adapters, on each pool read (GET /v1/pools/{name}): written
        when it changed, or to say it is still so once the last reading is a minute old."""
        now = self.clock()
        with self.database.session() as session:
            for pool in session.exec(select(BasePool).where(col(BasePool.name).in_(seen))):
                pods = seen[pool.name].as_json()
                fresh = pool.observed_at is not None and now - pool.observed_at < FRESH
                if pool.pods == pods and fresh:
                    continue
                pool.pods, pool.observed_at = pods, now
                session.add(pool)
            session.commit()


FRESH = timedelta(minutes=1)
