"""Rollout leases and their fencing tokens, on SQLite and PostgreSQL: claims, the
heartbeat, takeover after a replica dies, and the fenced commit of a replica that lost its
claim. The reconciler's use of them (no cluster change, no decision written after a lost
lease) is tested against a real API server in test_fencing.py."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from controlplane.db import Database
from controlplane.models import ModelCreate, Rollout, VersionCreate
from controlplane.registry import models as model_service
from controlplane.registry import versions as version_service
from controlplane.rollout import service
from controlplane.rollout.leases import LeaseLost, RolloutLeases
from controlplane.telemetry import REGISTRY
from tests.rollout.test_engine import Clock


@pytest.fixture
def rollout_id(database: Database) -> int:
    with database.session() as session:
        model_service.create_model(
            session,
            data=ModelCreate(name="chat", namespace="default", image="vllm/vllm-openai:v0.11.0"),
            actor="test",
        )
        version_service.register_version(
            session,
            model_name="chat",
            data=VersionCreate(version="v1", artifact_uri="s3://models/chat/v1"),
            actor="test",
        )
        rollout = service.start_rollout(
            session, model_name="chat", version="v1", strategy=None, actor="ci"
        )
    assert rollout.id is not None
    return rollout.id


def leases(database: Database, owner: str, clock: Clock, seconds: float = 6) -> RolloutLeases:
    return RolloutLeases(database, owner=owner, clock=clock, lease=timedelta(seconds=seconds))


def lost_count() -> float:
    return REGISTRY.get_sample_value("controlplane_rollout_leases_lost_total") or 0.0


def row(database: Database, rollout_id: int) -> Rollout:
    with database.session() as session:
        rollout = session.get(Rollout, rollout_id)
        assert rollout is not None
        return rollout


def test_each_claim_raises_the_token_and_a_held_lease_is_refused(
    database: Database, rollout_id: int
) -> None:
    clock = Clock()
    a, b = leases(database, "a", clock), leases(database, "b", clock)
    try:
        first = a.claim(rollout_id)
        assert first is not None
        assert b.claim(rollout_id) is None, "b took a lease a holds"
        assert a.claim(rollout_id) is None, "a second pass of the same replica took it too"
        with database.session() as session:
            a.fence(session, first)
            session.commit()
        assert row(database, rollout_id).lease_owner is None
        second = b.claim(rollout_id)
        assert second is not None
        assert second.token == first.token + 1
        assert row(database, rollout_id).lease_owner == "b"
    finally:
        a.close()
        b.close()


def test_a_replica_whose_lease_was_taken_commits_nothing(
    database: Database, rollout_id: int
) -> None:
    clock = Clock()
    a, b = leases(database, "a", clock), leases(database, "b", clock)
    try:
        mine = a.claim(rollout_id)
        assert mine is not None
        a.close()  # a stalls (paused, cut off): nothing renews its lease
        clock.now += timedelta(seconds=7)  # it lapsed
        theirs = b.claim(rollout_id)
        assert theirs is not None
        assert theirs.token > mine.token
        before = lost_count()
        with database.session() as session:  # a wakes up and commits its stale decision
            stale = session.get(Rollout, rollout_id)
            assert stale is not None
            stale.reason = "a decision taken on a lease that was lost"
            session.add(stale)
            session.flush()  # even written already in the transaction, it is rolled back
            with pytest.raises(LeaseLost):
                a.fence(session, mine)
        assert lost_count() == before + 1
        now = row(database, rollout_id)
        assert now.reason != "a decision taken on a lease that was lost"
        assert (now.lease_owner, now.lease_token) == ("b", theirs.token), "b keeps its claim"
        with database.session() as session:  # b's own commit goes through
            b.fence(session, theirs)
            session.commit()
        assert row(database, rollout_id).lease_owner is None
    finally:
        b.close()


def test_a_renewal_that_finds_another_holder_stops_the_old_one_before_it_acts(
    database: Database, rollout_id: int
) -> None:
    clock = Clock()
    a, b = leases(database, "a", clock), leases(database, "b", clock)
    try:
        mine = a.claim(rollout_id)
        assert mine is not None
        a.check(mine)  # held: the pass may change the cluster
        clock.now += timedelta(minutes=1)  # a's heartbeat did not run for a minute
        assert b.claim(rollout_id) is not None
        a.renew()  # a's next beat finds the token changed
        with pytest.raises(LeaseLost, match="another replica"):
            a.check(mine)
    finally:
        a.close()
        b.close()


def test_a_lease_not_confirmed_within_its_length_less_the_margin_stops_the_pass(
    database: Database, rollout_id: int
) -> None:
    clock = Clock()
    a = leases(database, "a", clock, seconds=3)
    try:
        mine = a.claim(rollout_id)
        assert mine is not None
        a.close()  # no heartbeat: nothing confirms the lease any more
        time.sleep(a.lease.total_seconds() - a.margin + 0.2)
        with pytest.raises(LeaseLost, match="not renewed in time"):
            a.check(mine)
    finally:
        a.close()


def test_the_heartbeat_holds_a_lease_past_its_length_and_a_dead_holder_is_taken_over(
    database: Database, rollout_id: int
) -> None:
    from controlplane.models import utcnow

    a = RolloutLeases(database, owner="a", clock=utcnow, lease=timedelta(seconds=1.5))
    b = RolloutLeases(database, owner="b", clock=utcnow, lease=timedelta(seconds=1.5))
    try:
        mine = a.claim(rollout_id)
        assert mine is not None
        deadline = time.monotonic() + 4  # over twice the lease: only renewals keep it
        while time.monotonic() < deadline:
            assert b.claim(rollout_id) is None, "b took a lease the heartbeat keeps"
            a.check(mine)
            time.sleep(0.2)
        a.close()  # a is killed: its heartbeat stops with it
        deadline = time.monotonic() + 15
        taken = None
        while taken is None and time.monotonic() < deadline:
            taken = b.claim(rollout_id)
            time.sleep(0.1)
        assert taken is not None, "a dead replica's lease was never taken over"
        assert taken.token == mine.token + 1
    finally:
        a.close()
        b.close()


def test_a_pool_held_by_a_pass_or_the_keeper_is_renewed_and_exclusive(
    database: Database,
) -> None:
    from controlplane.models import BasePool, PoolCreate, utcnow
    from controlplane.registry import pools
    from tests.factories import pool_body

    with database.session() as session:
        pools.create_pool(session, data=PoolCreate(**pool_body(name="llama")), actor="test")

    def held() -> BasePool:
        with database.session() as session:
            return pools.get_pool(session, "llama")

    a = RolloutLeases(database, owner="a", clock=utcnow, lease=timedelta(seconds=1.5))
    b = RolloutLeases(database, owner="b", clock=utcnow, lease=timedelta(seconds=1.5))
    try:
        assert a.claim_pool("llama")
        assert not a.claim_pool("llama"), "two passes of one replica on one pool's pods"
        assert not b.claim_pool("llama")
        first = held().lease_until
        time.sleep(3)  # twice the lease: only the heartbeat keeps it
        assert not b.claim_pool("llama"), "the heartbeat did not keep the pool"
        assert held().lease_until > first
        a.release_pool("llama")
        assert held().lease_owner is None
        assert b.claim_pool("llama")
    finally:
        a.close()
        b.close()


def test_a_pass_that_ends_without_fencing_gives_its_lease_back(
    database: Database, rollout_id: int
) -> None:
    clock = Clock()
    a, b = leases(database, "a", clock), leases(database, "b", clock)
    try:
        mine = a.claim(rollout_id)
        assert mine is not None
        mine.valid_until = 0  # not confirmed in time: the pass stopped before acting
        with pytest.raises(LeaseLost):
            a.check(mine)
        a.settle(mine)  # whatever way the pass ended
        a.renew()  # a heartbeat after it must not take the lease back
        assert row(database, rollout_id).lease_owner is None
        assert b.claim(rollout_id) is not None, "the lease stayed held with no pass using it"
    finally:
        a.close()
        b.close()
