"""Where webhooks may point (server-side request forgery): the address policy on its own,
the API refusing internal URLs under the default settings, and the dispatcher checking
again before every attempt and connecting to the address it checked (real receiver)."""

from __future__ import annotations

import ipaddress
import json
import random
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from controlplane.api import create_app
from controlplane.config import Settings
from controlplane.db import Database
from controlplane.models import AuditEvent, Rollout, Webhook
from controlplane.webhooks.dispatcher import Dispatcher
from controlplane.webhooks.guard import (
    AddressPolicy,
    AddressRefusedError,
    IPAddress,
    UnresolvableHostError,
    ascii_host,
)
from controlplane.webhooks.schemas import WebhookEvent
from tests.conftest import ADMIN_TOKEN
from tests.support.receiver import Receiver
from tests.webhooks.conftest import FakeClock
from tests.webhooks.helpers import LOOPBACK, announce, deliveries, subscribe

ip = ipaddress.ip_address


def resolving(table: dict[str, list[str]]) -> AddressPolicy:
    """A policy allowing loopback, with a fixed name table instead of DNS."""

    def resolve(host: str, port: int) -> list[IPAddress]:
        if host not in table:
            raise UnresolvableHostError(f"host {host!r} does not resolve")
        return [ip(a) for a in table[host]]

    return AddressPolicy(allowed=LOOPBACK.allowed, resolver=resolve)


# --- the policy -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # carrier-grade NAT
        "0.0.0.0",  # noqa: S104 - an address under test, not a bind
        "224.0.0.1",
        "::1",
        "fe80::1",
        "fd00::1",
        "::ffff:10.0.0.1",  # IPv4-mapped
        "2002:a00:1::",  # 6to4 around 10.0.0.1
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "64:ff9b:1::a00:1",  # local-use NAT64 of 10.0.0.1
        "::7f00:1",  # IPv4-compatible 127.0.0.1
        "fec0::1",  # site-local
        "192.0.0.8",  # IETF protocol assignments
        "2001:db8::1",  # documentation
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
    ],
)
def test_internal_addresses_are_refused_by_default(address: str) -> None:
    assert not AddressPolicy().permits(ip(address))


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "64:ff9b::808:808"]
)
def test_public_addresses_are_permitted(address: str) -> None:
    assert AddressPolicy().permits(ip(address))


def test_allowed_networks_and_the_private_switch() -> None:
    cluster = AddressPolicy(allowed=(ipaddress.ip_network("10.96.0.0/12"),))
    assert cluster.permits(ip("10.96.0.10"))
    assert not cluster.permits(ip("10.0.0.1"))
    private = AddressPolicy(allow_private=True)
    assert private.permits(ip("10.0.0.1"))
    assert private.permits(ip("127.0.0.1"))
    assert not private.permits(ip("0.0.0.0"))  # noqa: S104 - never a destination
    assert not private.permits(ip("224.0.0.1"))


def test_a_name_is_refused_if_any_of_its_addresses_is_internal() -> None:
    policy = AddressPolicy(
        resolver=lambda host, port: [ip("93.184.216.34"), ip("10.0.0.7")],
    )
    with pytest.raises(AddressRefusedError) as refused:
        policy.addresses("hooks.example.com", 443)
    message = str(refused.value)
    assert "'hooks.example.com' resolves to 10.0.0.7" in message
    assert "CONTROLPLANE_WEBHOOK_ALLOWED_CIDRS" in message
    assert policy.check("https://hooks.example.com/x") == message


@pytest.mark.parametrize(
    "url",
    [
        "http://2130706433/",  # 127.0.0.1 as one number
        "http://127.1/",
        "http://0x7f.1/",
        "http://010.010.010.010/",  # octal to some resolvers, decimal to others
        "http://1.2.3.4.5/",
    ],
)
def test_numeric_hosts_that_are_not_standard_addresses_are_refused(url: str) -> None:
    message = AddressPolicy(allow_private=True).check(url)
    assert message is not None
    assert "neither a name nor an IP address in standard form" in message


def test_international_names_are_checked_as_they_are_sent() -> None:
    seen: list[str] = []

    def resolve(host: str, port: int) -> list[IPAddress]:
        seen.append(host)
        return [ip("93.184.216.34")]

    assert ascii_host("https://Faß.DE:8443/x") == ("xn--fa-hia.de", 8443)  # IDNA 2008
    assert AddressPolicy(resolver=resolve).check("https://faß.de/x") is None
    assert seen == ["xn--fa-hia.de"]  # not "fass.de", the IDNA 2003 spelling


def test_an_unresolvable_name_is_accepted_at_creation_but_not_sent_to() -> None:
    policy = resolving({})
    assert policy.check("https://not-yet.example.com/x") is None
    with pytest.raises(UnresolvableHostError):
        policy.addresses("not-yet.example.com", 443)


def test_bad_networks_in_the_settings_are_refused_at_start() -> None:
    with pytest.raises(ValueError, match=r"WEBHOOK_ALLOWED_CIDRS: .cluster. is not a network"):
        Settings(admin_token=ADMIN_TOKEN, webhook_allowed_cidrs="10.0.0.0/8, cluster")
    parsed = Settings(admin_token=ADMIN_TOKEN, webhook_allowed_cidrs=" 10.96.0.0/12 ,fd00::/8,")
    assert [str(n) for n in parsed.webhook_allowed_networks] == ["10.96.0.0/12", "fd00::/8"]


# --- the API, under the default settings ------------------------------------------------


@pytest.fixture
def strict_api(database_url: str) -> Iterator[TestClient]:
    settings = Settings(admin_token=ADMIN_TOKEN, database_url=database_url, reconcile_enabled=False)
    app = create_app(settings, start_reconciler=False)
    with TestClient(app, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as client:
        yield client


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/v1/tokens",
        "http://localhost:10250/pods",  # a name for loopback
        "http://169.254.169.254/latest/meta-data/iam/",
        "https://[::1]/x",
        "http://10.0.0.1/",
    ],
)
def test_the_api_refuses_internal_urls_and_writes_nothing(
    strict_api: TestClient, database_url: str, url: str
) -> None:
    response = strict_api.post(
        "/v1/webhooks", json={"name": "sneaky", "url": url, "events": ["promoted"]}
    )
    assert response.status_code == 400, response.text
    problem = response.json()
    assert problem["code"] == "webhook_url_forbidden"
    assert problem["errors"][0]["field"] == "url"
    assert "internal address" in problem["detail"]
    assert strict_api.get("/v1/webhooks").json()["items"] == []
    database = Database(database_url, pool_size=1)
    try:
        with database.session() as session:
            assert session.exec(select(Webhook)).all() == []
            assert session.exec(select(AuditEvent)).all() == []
    finally:
        database.dispose()


def test_the_api_accepts_a_public_name_it_cannot_resolve_yet(strict_api: TestClient) -> None:
    body = {"name": "ops", "url": "https://hooks.example.invalid/T0", "events": ["promoted"]}
    assert strict_api.post("/v1/webhooks", json=body).status_code == 201


# --- the dispatcher, before every attempt -----------------------------------------------


def send_due(database: Database, clock: FakeClock, policy: AddressPolicy) -> None:
    """One pass of a dispatcher under ``policy``: exactly one delivery is due and tried."""
    dispatcher = Dispatcher(
        database, clock=clock, timeout=2.0, max_attempts=4, rng=random.Random(3), policy=policy
    )
    try:
        assert dispatcher.run_due() == 1
    finally:
        dispatcher.stop()


def test_a_url_that_became_internal_fails_at_once_and_nothing_is_sent(
    database: Database, rollout: Rollout, receiver: Receiver, clock: FakeClock
) -> None:
    subscribe(database, "ops", receiver.to("/hook"))  # allowed when it was created
    announce(database, rollout, WebhookEvent.PROMOTED)
    send_due(database, clock, AddressPolicy())  # then the rules changed
    assert receiver.at("/hook") == []
    [row] = deliveries(database)
    assert (row.status, row.attempts, row.last_status_code) == ("failed", 1, None)
    assert row.last_error is not None
    assert "127.0.0.1 is an internal address" in row.last_error


def test_the_connection_goes_to_the_checked_address_with_the_name_in_host(
    database: Database, rollout: Rollout, receiver: Receiver, clock: FakeClock
) -> None:
    port = receiver.url.rsplit(":", 1)[1]
    table = {"hooks.test": ["127.0.0.1"]}
    subscribe(database, "ops", f"http://hooks.test:{port}/hook")
    announce(database, rollout, WebhookEvent.PROMOTED)
    policy = resolving(table)
    send_due(database, clock, policy)
    [request] = receiver.at("/hook")
    assert request.headers["Host"] == f"hooks.test:{port}"
    assert json.loads(request.body)["event"] == "promoted"

    # the name now resolves somewhere internal (DNS rebinding): refused, not sent
    table["hooks.test"] = ["10.0.0.9"]
    announce(database, rollout, WebhookEvent.ROLLED_BACK)
    send_due(database, clock, policy)
    assert len(receiver.at("/hook")) == 1
    first, second = deliveries(database)
    assert (first.status, second.status) == ("delivered", "failed")
    assert second.last_error is not None
    assert "resolves to 10.0.0.9" in second.last_error


def test_a_name_that_does_not_resolve_is_retried(
    database: Database, rollout: Rollout, receiver: Receiver, clock: FakeClock
) -> None:
    subscribe(database, "ops", "http://gone.test/hook")
    announce(database, rollout, WebhookEvent.PROMOTED)
    send_due(database, clock, resolving({}))
    [row] = deliveries(database)
    assert (row.status, row.attempts) == ("pending", 1)
    assert row.last_error is not None
    assert "does not resolve" in row.last_error
    assert row.next_attempt_at > clock.now + timedelta(seconds=1)


def test_a_url_httpx_cannot_use_fails_at_once_and_is_not_retried(
    database: Database, rollout: Rollout, receiver: Receiver, clock: FakeClock
) -> None:
    subscribe(database, "ops", receiver.to("/hook"))
    with database.session() as session:  # stored before creation refused such hosts
        hook = session.exec(select(Webhook)).one()
        hook.url = "http://010.010.010.010/hook"
        session.add(hook)
        session.commit()
    announce(database, rollout, WebhookEvent.PROMOTED)
    send_due(database, clock, LOOPBACK)
    [row] = deliveries(database)
    assert (row.status, row.attempts) == ("failed", 1)
    assert row.last_error is not None
    assert "the webhook URL cannot be used" in row.last_error


def test_a_receiver_echoing_the_url_path_does_not_put_it_in_the_record(
    database: Database,
    rollout: Rollout,
    receiver: Receiver,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = "/services/T000/B000/XXXXSECRET"
    subscribe(database, "slack", receiver.to(f"{path}?token=abc123"))
    receiver.always_fail.add(f"{path}?token=abc123")
    receiver.echo_path = True
    announce(database, rollout, WebhookEvent.PROMOTED)
    send_due(database, clock, LOOPBACK)
    [row] = deliveries(database)
    assert row.last_error is not None
    assert row.last_error.startswith("HTTP 500: Cannot POST")
    for leaked in ("XXXXSECRET", "abc123"):
        assert leaked not in row.last_error
        assert leaked not in caplog.text
