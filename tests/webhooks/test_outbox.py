"""The outbox: deliveries are written in the caller's transaction, for the subscribed
active webhooks only, and claimed by one dispatcher at a time (both databases)."""

from __future__ import annotations

from datetime import timedelta

from controlplane.db import Database
from controlplane.models import Rollout
from controlplane.webhooks.dispatcher import Dispatcher
from controlplane.webhooks.schemas import WebhookEvent
from tests.webhooks.conftest import FakeClock
from tests.webhooks.helpers import LOOPBACK, announce, deliveries, subscribe

URL = "http://127.0.0.1:9/hook"


def test_enqueue_writes_one_delivery_per_subscribed_active_webhook(
    database: Database, rollout: Rollout
) -> None:
    subscribe(database, "all", URL)
    subscribe(database, "promotions", URL, events=["promoted"])
    subscribe(database, "off", URL, active=False)
    subscribe(database, "slack", URL, format="slack", events=["step_passed"])
    announce(database, rollout, WebhookEvent.STEP_PASSED)
    rows = deliveries(database)
    assert len(rows) == 2
    by_format = {("text" in r.payload): r for r in rows}
    document = by_format[False].payload
    assert document["event"] == "step_passed"
    assert document["message"] == "weight 25% in force"
    assert document["evidence"] == {"weight": 25}
    assert document["rollout"]["id"] == rollout.id
    assert document["rollout"]["model"] == "chat"
    assert document["rollout"]["version"] == "v2"
    assert document["rollout"]["stable_version"] == "v1"
    assert by_format[True].payload == {
        "text": f"chat v2: step passed (rollout #{rollout.id}, weight 0%) - weight 25% in force"
    }
    assert all(r.status == "pending" and r.attempts == 0 for r in rows)
    assert {r.rollout_id for r in rows} == {rollout.id}


def test_no_delivery_without_the_event_commit(database: Database, rollout: Rollout) -> None:
    subscribe(database, "all", URL)
    announce(database, rollout, WebhookEvent.PAUSED, commit=False)
    assert deliveries(database) == []


def test_a_lease_keeps_a_delivery_to_one_dispatcher(
    database: Database, rollout: Rollout, clock: FakeClock
) -> None:
    subscribe(database, "all", URL)
    [delivery_id] = announce(database, rollout, WebhookEvent.PAUSED)
    one = Dispatcher(
        database, owner="one", clock=clock, lease=timedelta(seconds=60), policy=LOOPBACK
    )
    two = Dispatcher(
        database, owner="two", clock=clock, lease=timedelta(seconds=60), policy=LOOPBACK
    )
    try:
        assert one.claim(10) == [(delivery_id, deliveries(database)[0].webhook_id)]
        assert two.claim(10) == []
        assert one.claim(10) == []  # not twice to the same owner either
        clock.advance(timedelta(seconds=61))  # the first owner died: its lease runs out
        assert [d for d, _ in two.claim(10)] == [delivery_id]
    finally:
        one.stop()
        two.stop()


def test_claims_take_one_delivery_per_webhook(
    database: Database, rollout: Rollout, clock: FakeClock
) -> None:
    subscribe(database, "a", URL)
    subscribe(database, "b", URL)
    for _ in range(3):
        announce(database, rollout, WebhookEvent.STEP_PASSED)
    dispatcher = Dispatcher(database, owner="one", clock=clock, policy=LOOPBACK)
    try:
        claimed = dispatcher.claim(10)
        assert len(claimed) == 2
        assert len({webhook for _, webhook in claimed}) == 2
        first_a = min(d.id for d in deliveries(database) if d.webhook_id == claimed[0][1])
        assert claimed[0][0] == first_a  # oldest first
    finally:
        dispatcher.stop()


def test_deleting_a_rollout_keeps_its_delivery_records(
    api: object, database: Database, rollout: Rollout
) -> None:
    subscribe(database, "all", URL)
    announce(database, rollout, WebhookEvent.PROMOTED)
    with database.session() as session:
        row = session.get(Rollout, rollout.id)
        session.delete(row)
        session.commit()
    [row] = deliveries(database)
    assert row.rollout_id is None
    assert row.payload["rollout"]["id"] == rollout.id
