"""Reconcile passes side by side in one replica: a bounded thread pool, and the two rules
that keep it safe.

1. **One pass per rollout at a time.** The database claim keeps two replicas off one
   rollout, but a replica re-takes its own lease, so within a replica the rollouts in
   flight are remembered here, and a tick skips them.
2. **One pass per base pool at a time.** Adapter rollouts act on their base pool's pods
   under the pool's lease, which a replica also re-takes as its own (the pool keeper
   shares it): the due rollouts of one pool run one after another, in one lane, and the
   tick waits for the lanes so that the keeper, which runs after it, never overlaps them.

Each pass opens its own database sessions (the reconciler does); nothing here touches the
database or the cluster.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for

from sqlmodel import col, select

from controlplane.db import Database
from controlplane.models import Model, Rollout

log = logging.getLogger(__name__)


class RolloutPasses:
    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, not {workers}")
        self.workers = workers
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="reconcile")
        self._lock = threading.Lock()
        self._in_flight: set[int] = set()

    @property
    def in_flight(self) -> int:
        with self._lock:
            return len(self._in_flight)

    def run(
        self,
        database: Database,
        due: Iterable[int],
        reconcile: Callable[[int], bool],
        *,
        wait: bool = True,
    ) -> int:
        """Start a pass for each due rollout not already in flight. With ``wait``, return
        once all are done, with how many did something; without, return once the base
        pools' lanes are done, with how many passes were started."""
        with self._lock:
            fresh = [i for i in due if i not in self._in_flight]
            self._in_flight.update(fresh)
        if not fresh:
            return 0
        lanes: dict[str, list[int]] = {}
        alone: list[int] = []
        pools = _base_pools(database, fresh)
        for rollout_id in fresh:
            pool = pools.get(rollout_id)
            if pool is None:
                alone.append(rollout_id)
            else:
                lanes.setdefault(pool, []).append(rollout_id)
        # the lanes first: the tick waits for them
        waited: list[Future[int]] = [
            self._executor.submit(self._lane, ids, reconcile) for ids in lanes.values()
        ]
        rest = [self._executor.submit(self._lane, [i], reconcile) for i in alone]
        if wait:
            waited += rest
        wait_for(waited)
        if wait:
            return sum(f.result() for f in waited)
        return len(fresh)

    def _lane(self, ids: list[int], reconcile: Callable[[int], bool]) -> int:
        done = 0
        for rollout_id in ids:
            try:
                if reconcile(rollout_id):
                    done += 1
            except Exception:  # the next rollout of the lane still gets its pass
                log.exception("reconcile of rollout %s failed", rollout_id)
            finally:
                with self._lock:
                    self._in_flight.discard(rollout_id)
        return done

    def close(self) -> None:
        """Let the passes under way finish; drop those not started (still due: the next
        start takes them)."""
        self._executor.shutdown(wait=True, cancel_futures=True)


def _base_pools(database: Database, ids: list[int]) -> dict[int, str]:
    """The base pool of each rollout's model, for those of adapter models."""
    with database.session() as session:
        rows = session.exec(
            select(Rollout.id, Model.base_pool)
            .join(Model, col(Model.id) == col(Rollout.model_id))
            .where(col(Rollout.id).in_(ids), col(Model.base_pool).is_not(None))
        ).all()
    return {rollout_id: pool for rollout_id, pool in rows if rollout_id is not None and pool}


__all__ = ["RolloutPasses"]
