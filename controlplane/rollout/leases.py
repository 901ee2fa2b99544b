"""Rollout leases with fencing tokens, kept alive by a heartbeat.

A replica acts on a rollout only while it holds the rollout's lease, and every claim
carries a fencing token (``rollout.lease_token``, raised by one on each claim). The
three rules that let any number of replicas share the rollouts:

1. **Claim**: a conditional UPDATE (free or lapsed lease) that raises the token and
   returns it. The same statement on SQLite and PostgreSQL; no lock is held across the
   Kubernetes calls of a pass.
2. **Short lease, renewed while the pass runs**: the lease is a few seconds long
   (``DEFAULT_LEASE``) and a heartbeat thread renews every lease this replica holds, every
   third of it, conditionally on the token. A replica killed mid-pass stops renewing and its
   rollouts are taken over after at most one lease, not after a long fixed one; a slow
   Prometheus query or a slow API server does not lose the lease, because the heartbeat
   goes on.
3. **Fenced writes**: the pass's decision is committed only if the token is still the
   rollout's (the release is the fence: ``UPDATE ... WHERE lease_owner = me AND
   lease_token = mine`` in the same transaction as the decision; it takes the row's
   write lock, so no claim slips in between it and the commit). A replica that lost its
   claim (paused by the OS, cut off from the database, its lease lapsed and taken) writes
   nothing: its decision is dropped and the new holder decides again. Before every
   Kubernetes write the pass also checks that its lease was confirmed recently enough
   (``check``: within the lease less a safety margin, on this process's monotonic clock);
   otherwise it stops before touching the cluster.

What this does not fence: a Kubernetes write already sent when the lease is lost still
lands (the API server does not know our tokens). Such a write is bounded to the check
before it plus the request's timeout, it writes the state a decision taken under the lease
wanted, and the next holder reads the cluster back and converges it (every driver call is
idempotent and level-triggered). The lease is judged by wall clocks across replicas: their
clocks must agree to within the safety margin (NTP does far better).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col

from controlplane import telemetry
from controlplane.db import Database
from controlplane.models import Rollout
from controlplane.registry import pools

log = logging.getLogger(__name__)

DEFAULT_LEASE = timedelta(seconds=6)


class LeaseLost(Exception):
    """This replica no longer holds the rollout's lease: whatever it was about to write
    is dropped (another replica holds the rollout, or will once the lease lapses)."""

    def __init__(self, rollout_id: int, why: str) -> None:
        super().__init__(f"rollout {rollout_id}: lease lost ({why})")
        self.rollout_id = rollout_id
        self.why = why


@dataclass
class Claim:
    """One claim of one rollout: the token it was given and until when (on this process's
    monotonic clock) the lease is known to be held."""

    rollout_id: int
    token: int
    valid_until: float
    lost: str | None = None


class RolloutLeases:
    """Claims, renews, checks and releases rollout leases for one replica (``owner``)."""

    def __init__(
        self,
        database: Database,
        *,
        owner: str,
        clock: Callable[[], datetime],
        lease: timedelta = DEFAULT_LEASE,
    ) -> None:
        if lease <= timedelta(0):
            raise ValueError("a lease must be longer than zero")
        self.database = database
        self.owner = owner
        self.clock = clock
        self.lease = lease
        seconds = lease.total_seconds()
        self.heartbeat_every = seconds / 3
        # held for sure until the last confirmed renewal + lease - margin: the margin
        # covers clock skew between replicas and the time a write takes to land
        self.margin = seconds / 3
        self._held: dict[int, Claim] = {}
        self._pools: set[str] = set()  # base pools held by passes of this replica
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    # --- claim and release --------------------------------------------------------------

    def claim(self, rollout_id: int) -> Claim | None:
        """Take the rollout's lease if it is free or has lapsed; None when another replica
        (or another pass of this one) holds it."""
        started = time.monotonic()
        now = self.clock()
        with self.database.session() as session:
            token = session.execute(
                sa.update(Rollout)
                .where(
                    col(Rollout.id) == rollout_id,
                    sa.or_(col(Rollout.lease_until).is_(None), col(Rollout.lease_until) < now),
                )
                .values(
                    lease_owner=self.owner,
                    lease_until=now + self.lease,
                    lease_token=col(Rollout.lease_token) + 1,
                )
                .returning(col(Rollout.lease_token))
            ).scalar_one_or_none()
            session.commit()
        if token is None:
            return None
        claim = Claim(rollout_id, int(token), started + self._confirmed_for())
        with self._lock:
            self._held[rollout_id] = claim
        self._ensure_heartbeat()
        return claim

    def fence(self, session: Session, claim: Claim) -> None:
        """In the pass's transaction, just before its commit: release the lease if the
        token is still ours, else roll the transaction back and raise ``LeaseLost``."""
        self._forget(claim)
        with session.no_autoflush:  # the fence first: it takes the row's write lock
            released = session.execute(self._release_if_mine(claim))
        if not released.rowcount:  # type: ignore[attr-defined]
            session.rollback()
            raise self._lost(claim, "another replica claimed the rollout")

    def release(self, claim: Claim) -> None:
        """Give the lease back without writing anything else (a pass that broke off)."""
        self._forget(claim)
        try:
            with self.database.session() as session:
                session.execute(self._release_if_mine(claim))
                session.commit()
        except sa.exc.SQLAlchemyError:  # it lapses on its own within one lease
            log.warning("could not release the lease of rollout %s", claim.rollout_id)

    def settle(self, claim: Claim) -> None:
        """After a pass, whatever way it ended: a claim it neither fenced nor released (it
        broke, or lost the lease) is given back, so the heartbeat never keeps a lease no
        pass is using."""
        with self._lock:
            held = self._held.get(claim.rollout_id) is claim
        if held:
            self.release(claim)

    def check(self, claim: Claim) -> None:
        """Raise ``LeaseLost`` unless the lease is known to be held for a while yet: called
        before every change to the cluster."""
        if claim.lost is not None:
            raise self._lost(claim, claim.lost)
        if time.monotonic() > claim.valid_until:
            raise self._lost(claim, "not renewed in time (database unreachable or slow?)")

    def claim_pool(self, name: str) -> bool:
        """Take a base pool's lease (shared with the pool keepers) for a pass, with the
        rollouts' short lease, renewed by the same heartbeat until ``release_pool``. One
        pass at a time acts on a pool: False while another pass of this replica holds it."""
        with self._lock:
            if name in self._pools:
                return False
            self._pools.add(name)
        taken = False
        try:
            with self.database.session() as session:
                taken = pools.claim_pool(
                    session, name, owner=self.owner, now=self.clock(), lease=self.lease
                )
        finally:
            if not taken:
                with self._lock:
                    self._pools.discard(name)
        if taken:
            self._ensure_heartbeat()
        return taken

    def release_pool(self, name: str) -> None:
        with self._lock:
            self._pools.discard(name)
        with self.database.session() as session:
            pools.release_pool(session, name, owner=self.owner)

    # --- the heartbeat ------------------------------------------------------------------

    def renew(self) -> None:
        """Renew every lease held now (the heartbeat's work; callable directly in tests)."""
        with self._lock:
            claims = list(self._held.values())
            held_pools = list(self._pools)
        started = time.monotonic()
        now = self.clock()
        for name in held_pools:
            try:
                with self.database.session() as session:
                    pools.claim_pool(session, name, owner=self.owner, now=now, lease=self.lease)
            except sa.exc.SQLAlchemyError as error:
                log.warning("could not renew the lease of pool %s: %s", name, type(error).__name__)
        if not claims:
            return
        try:
            with self.database.session() as session:
                renewed = set(
                    session.execute(
                        sa.update(Rollout)
                        .where(
                            col(Rollout.lease_owner) == self.owner,
                            sa.or_(
                                *(
                                    sa.and_(
                                        col(Rollout.id) == c.rollout_id,
                                        col(Rollout.lease_token) == c.token,
                                    )
                                    for c in claims
                                )
                            ),
                        )
                        .values(lease_until=now + self.lease)
                        .returning(col(Rollout.id))
                    ).scalars()
                )
                session.commit()
        except sa.exc.SQLAlchemyError as error:  # the next beat tries again
            log.warning("could not renew rollout leases: %s", type(error).__name__)
            return
        with self._lock:
            for claim in claims:
                if self._held.get(claim.rollout_id) is not claim:
                    continue  # released meanwhile
                if claim.rollout_id in renewed:
                    claim.valid_until = started + self._confirmed_for()
                else:
                    claim.lost = "another replica claimed the rollout"

    def close(self) -> None:
        """Stop the heartbeat for good (the replica is shutting down): leases held now
        lapse on their own."""
        self._stopped.set()
        self._wake.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=5)
        self._thread = None

    def _beat(self) -> None:
        while not self._stopped.is_set():
            self._wake.wait(self.heartbeat_every)
            self._wake.clear()
            if self._stopped.is_set():
                return
            try:
                self.renew()
            except Exception:  # never let the heartbeat die
                log.exception("rollout lease heartbeat failed")
            with self._lock:  # nothing held: the next claim starts the heartbeat again
                if not self._held and not self._pools:
                    self._thread = None
                    return

    def _ensure_heartbeat(self) -> None:
        with self._lock:
            if self._thread is not None or self._stopped.is_set():
                return
            self._thread = threading.Thread(
                target=self._beat, name=f"lease-heartbeat-{self.owner}", daemon=True
            )
            self._thread.start()

    def _release_if_mine(self, claim: Claim) -> sa.Update:
        """The conditional release: only while the rollout carries this claim's token."""
        return (
            sa.update(Rollout)
            .where(
                col(Rollout.id) == claim.rollout_id,
                col(Rollout.lease_owner) == self.owner,
                col(Rollout.lease_token) == claim.token,
            )
            .values(lease_owner=None, lease_until=None)
            .execution_options(synchronize_session=False)
        )

    def _confirmed_for(self) -> float:
        return self.lease.total_seconds() - self.margin

    def _forget(self, claim: Claim) -> None:
        with self._lock:
            if self._held.get(claim.rollout_id) is claim:
                del self._held[claim.rollout_id]

    def _lost(self, claim: Claim, why: str) -> LeaseLost:
        telemetry.LEASES_LOST.inc()
        return LeaseLost(claim.rollout_id, why)
