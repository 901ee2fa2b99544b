"""The periodic reconcile tick: APScheduler runs the reconciler in a background thread.

One job, never overlapping itself (``max_instances=1``, missed runs coalesced). With
several reconcile workers the tick starts the due passes and returns: they run in the
reconciler's pool, and the next tick starts those that fell due meanwhile (never one
still in flight). State lives in the database, so stopping the scheduler at any point
loses nothing.
"""

from __future__ import annotations

import logging
from datetime import datetime

from apscheduler.schedulers.background import BackgroundScheduler

from controlplane.models import utcnow
from controlplane.rollout.keeper import PoolKeeper
from controlplane.rollout.reconciler import Reconciler

log = logging.getLogger(__name__)
JOB_ID = "reconcile"


class ReconcileScheduler:
    def __init__(
        self,
        reconciler: Reconciler,
        *,
        interval_seconds: float,
        keeper: PoolKeeper | None = None,
    ) -> None:
        self.reconciler = reconciler
        self.keeper = keeper
        self.interval_seconds = interval_seconds
        self._scheduler = BackgroundScheduler(
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone="UTC",
        )

    def start(self) -> None:
        self._scheduler.add_job(
            self._tick, "interval", seconds=self.interval_seconds, id=JOB_ID, next_run_time=utcnow()
        )
        self._scheduler.start()
        log.info("reconcile loop started (every %.1fs)", self.interval_seconds)

    def kick(self) -> None:
        """Run the next tick now (after a person's command), not at the next interval."""
        job = self._scheduler.get_job(JOB_ID)
        if job is not None:
            job.modify(next_run_time=utcnow())

    def stop(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=True)
            log.info("reconcile loop stopped")
        if self.reconciler.passes is not None:  # the passes under way finish
            self.reconciler.passes.close()
        # evaluation runs stop sending; their answers so far are kept and they resume
        self.reconciler.close()
        self.reconciler.driver.close()  # the watches of its cache

    def _tick(self) -> None:
        started: datetime = utcnow()
        count = self.reconciler.run_due(wait=False)
        if self.keeper is not None:
            try:
                self.keeper.run()
            except Exception:  # the pools are looked at again next tick
                log.exception("keeping the base pools' adapters failed")
        if count:
            log.debug(
                "reconcile tick: %d rollouts in %.3fs", count, (utcnow() - started).total_seconds()
            )
