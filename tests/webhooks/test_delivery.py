"""The dispatcher against a real HTTP receiver on 127.0.0.1 (both databases): signed
bodies, retries with backoff, a permanent failure, a slow receiver beside a fast one."""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest

from controlplane.db import Database
from controlplane.models import Rollout
from controlplane.webhooks import signing
from controlplane.webhooks.dispatcher import Dispatcher
from controlplane.webhooks.schemas import WebhookEvent
from tests.support.receiver import Receiver, signed
from tests.webhooks.conftest import FakeClock
from tests.webhooks.helpers import LOOPBACK, announce, deliveries, subscribe


@pytest.fixture
def dispatcher(database: Database, clock: FakeClock) -> Iterator[Dispatcher]:
    dispatcher = Dispatcher(
        database,
        clock=clock,
        timeout=2.0,
        max_attempts=4,
        backoff_base=timedelta(seconds=10),
        rng=random.Random(7),
        policy=LOOPBACK,
    )
    yield dispatcher
    dispatcher.stop()


def test_a_delivery_is_signed_with_the_shared_secret(
    database: Database,
    rollout: Rollout,
    receiver: Receiver,
    dispatcher: Dispatcher,
    caplog: pytest.LogCaptureFixture,
) -> None:
    created = subscribe(database, "ops", receiver.to("/hook/secret-path"))
    [delivery_id] = announce(database, rollout, WebhookEvent.PROMOTED, "promoted: all good")
    with caplog.at_level(logging.DEBUG):
        assert dispatcher.run_due() == 1
    [request] = receiver.at("/hook/secret-path")
    assert signed(created.secret, request)
    assert request.headers[signing.DELIVERY_HEADER] == str(delivery_id)
    assert request.headers[signing.EVENT_HEADER] == "promoted"
    assert request.headers["Content-Type"] == "application/json"
    document = json.loads(request.body)
    assert document["event"] == "promoted"
    assert document["rollout"]["id"] == rollout.id
    [row] = deliveries(database)
    assert (row.status, row.attempts, row.last_status_code, row.last_error) == (
        "delivered",
        1,
        200,
        None,
    )
    assert row.delivered_at is not None
    assert row.lease_owner is None
    assert created.secret not in caplog.text
    assert "secret-path" not in caplog.text
    assert dispatcher.run_due() == 0  # delivered once, not again


def test_retries_back_off_exponentially_and_end_delivered(
    database: Database,
    rollout: Rollout,
    receiver: Receiver,
    dispatcher: Dispatcher,
    clock: FakeClock,
) -> None:
    created = subscribe(database, "flaky", receiver.to("/flaky"))
    announce(database, rollout, WebhookEvent.STEP_PASSED)
    receiver.fail_first["/flaky"] = 2
    waits = []
    for attempt in (1, 2):
        assert dispatcher.run_due() == 1
        [row] = deliveries(database)
        assert (row.status, row.attempts, row.last_status_code) == ("pending", attempt, 500)
        assert row.last_error == "HTTP 500: receiver says no"
        wait = row.next_attempt_at - clock()
        base = 10 * 2 ** (attempt - 1)
        assert timedelta(seconds=base / 2) <= wait < timedelta(seconds=base)  # jittered
        waits.append(wait)
        assert dispatcher.run_due() == 0  # not due yet
        clock.advance(wait)
    assert waits[1] > waits[0]
    assert dispatcher.run_due() == 1
    [row] = deliveries(database)
    assert (row.status, row.attempts, row.last_status_code, row.last_error) == (
        "delivered",
        3,
        200,
        None,
    )
    sent = receiver.at("/flaky")
    assert len(sent) == 3
    # a retry is the same delivery: same id, same bytes, each signed when it was sent
    assert len({r.body for r in sent}) == 1
    assert all(signed(created.secret, r) for r in sent)
    assert {r.headers[signing.DELIVERY_HEADER] for r in sent} == {str(row.id)}


def test_a_receiver_that_always_fails_ends_failed_after_the_attempt_limit(
    database: Database,
    rollout: Rollout,
    receiver: Receiver,
    dispatcher: Dispatcher,
    clock: FakeClock,
) -> None:
    subscribe(database, "broken", receiver.to("/broken"))
    announce(database, rollout, WebhookEvent.ROLLED_BACK)
    receiver.always_fail.add("/broken")
    for _ in range(10):
        dispatcher.run_due()
        clock.advance(timedelta(hours=2))
    [row] = deliveries(database)
    assert (row.status, row.attempts, row.last_status_code) == ("failed", 4, 500)
    assert len(receiver.at("/broken")) == 4


def test_an_unreachable_receiver_is_recorded_without_its_url(
    database: Database, rollout: Rollout, dispatcher: Dispatcher, clock: FakeClock
) -> None:
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    subscribe(database, "gone", f"http://127.0.0.1:{port}/services/T0/B0/credential")
    announce(database, rollout, WebhookEvent.PAUSED)
    dispatcher.run_due()
    [row] = deliveries(database)
    assert (row.status, row.attempts, row.last_status_code) == ("pending", 1, None)
    assert row.last_error is not None
    assert row.last_error.startswith("ConnectError")
    assert "credential" not in row.last_error
    assert len(row.last_error) <= 500


def test_a_slow_receiver_does_not_delay_other_deliveries(
    database: Database, rollout: Rollout, receiver: Receiver
) -> None:
    subscribe(database, "slow", receiver.to("/slow"))
    subscribe(database, "fast", receiver.to("/fast"))
    receiver.slow["/slow"] = 20  # never answers in time: the dispatcher gives up at 3s
    dispatcher = Dispatcher(
        database,
        timeout=3.0,
        lease=timedelta(seconds=10),
        workers=4,
        poll_interval=0.05,
        policy=LOOPBACK,
    )
    dispatcher.start()
    try:
        started = time.monotonic()
        announce(database, rollout, WebhookEvent.STEP_PASSED)  # slow's delivery is first
        announce(database, rollout, WebhookEvent.PAUSED)  # two more for fast, in order
        while len(receiver.at("/fast")) < 2 and time.monotonic() - started < 10:
            time.sleep(0.01)
        fast = receiver.at("/fast")
        assert [json.loads(r.body)["event"] for r in fast] == ["step_passed", "paused"]
        # both while the slow one was still waiting: it has not been given up on yet (an
        # order of events, not a wall-clock bound: a loaded machine only moves both later)
        assert not [d for d in deliveries(database) if d.last_error]
        assert len(receiver.at("/slow")) == 1
        while time.monotonic() - started < 15:
            slow = [d for d in deliveries(database) if d.attempts and d.last_error]
            if slow:
                break
            time.sleep(0.02)
        [timed_out] = slow
        assert timed_out.status == "pending"  # to be retried later
        assert timed_out.last_error is not None
        assert timed_out.last_error.startswith("timed out after 3s")
    finally:
        dispatcher.stop()


def test_slack_format_posts_text(
    database: Database, rollout: Rollout, receiver: Receiver, dispatcher: Dispatcher
) -> None:
    subscribe(database, "slack", receiver.to("/slack"), format="slack")
    announce(database, rollout, WebhookEvent.ROLLED_BACK, "rolled_back: analysis failed")
    dispatcher.run_due()
    [request] = receiver.at("/slack")
    assert json.loads(request.body) == {
        "text": f"chat v2: rolled back (rollout #{rollout.id}, weight 0%) - "
        "rolled_back: analysis failed"
    }
