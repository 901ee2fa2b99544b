"""`controlplane webhooks ...` against a real `controlplane serve` (SQLite and PostgreSQL)
and a real receiver on 127.0.0.1 (allowed by CONTROLPLANE_WEBHOOK_ALLOWED_CIDRS): the
secret printed once and signing what arrives, never shown again, deliveries newest first,
and the refusals a user meets."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from controlplane.cli.webhooks import EVENTS
from controlplane.webhooks.schemas import WebhookEvent
from tests.support.receiver import Receiver, receiving, signed
from tests.support.serve import ADMIN, Server, serve

# a Slack-like URL: its path is a credential, kept out of the list
SLACK_PATH = "/services/T0001/B0001/path-credential-9f3e"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as state:
        yield state


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[Server]:
    """The server, letting webhooks reach 127.0.0.1, and retrying a failed delivery only
    after half an hour at least (so a test sees each after exactly one attempt)."""
    with serve(
        database_url,
        tmp_path / "server.log",
        webhook_allowed_cidrs="127.0.0.0/8",
        webhook_backoff_base_seconds="3600",
    ) as running:
        yield running


def deliveries_once(
    server: Server, name: str, done: Callable[[list[dict[str, Any]]], bool]
) -> list[dict[str, Any]]:
    """The webhook's deliveries (from the API) once ``done`` holds for them: the server's
    dispatcher sends them from its own thread."""
    deadline = time.monotonic() + 30
    while True:
        items: list[dict[str, Any]] = httpx.get(
            f"{server.url}/v1/webhooks/{name}/deliveries",
            headers={"Authorization": f"Bearer {ADMIN}"},
        ).json()["items"]
        if done(items):
            return items
        if time.monotonic() > deadline:
            pytest.fail(f"deliveries of {name} never got there: {items}")
        time.sleep(0.2)


def test_the_event_choices_in_the_help_are_the_servers() -> None:
    assert list(EVENTS) == [e.value for e in WebhookEvent]


def test_create_prints_the_secret_once_and_what_arrives_is_signed_with_it(
    server: Server, receiver: Receiver
) -> None:
    created = server.cli(
        "webhooks",
        "create",
        "ops",
        receiver.to(SLACK_PATH),
        "--event",
        "rolled_back",
        "--event",
        "failed",
        "--description",
        "the on-call channel",
    )
    assert created.returncode == 0, created.stderr
    assert created.stdout.startswith("webhook ops created\n")
    assert "signing secret, shown only this once" in created.stdout
    secret = created.stdout.strip().splitlines()[-1]
    assert len(secret) >= 32
    assert created.stdout.count(secret) == 1

    tested = server.cli("webhooks", "test", "ops")
    assert tested.returncode == 0, tested.stderr
    assert "ping queued for webhook ops" in tested.stdout
    items = deliveries_once(server, "ops", lambda d: d[0]["status"] != "pending")
    assert items[0]["status"] == "delivered"
    (ping,) = receiver.at(SLACK_PATH)
    assert signed(secret, ping)

    deliveries = server.cli("webhooks", "deliveries", "ops")
    assert deliveries.returncode == 0, deliveries.stderr
    header, row = deliveries.stdout.splitlines()
    assert header.split()[:5] == ["ID", "CREATED", "EVENT", "ROLLOUT", "STATUS"]
    assert row.split()[3:7] == ["ping", "-", "delivered", "1"]

    listed = server.cli("webhooks", "list")
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()
    assert header.split()[:4] == ["NAME", "HOST", "EVENTS", "FORMAT"]
    host = receiver.url.removeprefix("http://")
    assert row.split()[:5] == ["ops", host, "rolled_back,failed", "json", "yes"]
    assert SLACK_PATH not in listed.stdout

    shown = server.cli("webhooks", "show", "ops")
    assert shown.returncode == 0, shown.stderr
    assert f"url:         {receiver.to(SLACK_PATH)}" in shown.stdout
    assert "description: the on-call channel" in shown.stdout
    as_json = [
        server.cli("webhooks", "list", "-o", "json"),
        server.cli("webhooks", "show", "ops", "-o", "json"),
        server.cli("webhooks", "deliveries", "ops", "-o", "json"),
    ]
    assert json.loads(as_json[1].stdout)["url"] == receiver.to(SLACK_PATH)
    for result in [tested, deliveries, listed, shown, *as_json]:
        assert result.returncode == 0, result.stderr
        assert secret not in result.stdout + result.stderr
        assert "secret" not in result.stdout
    assert secret not in server.log.read_text()


def test_create_as_json_then_failing_deliveries_newest_first_then_delete(
    server: Server, receiver: Receiver
) -> None:
    receiver.always_fail.add("/ci")
    created = server.cli(
        "webhooks",
        "create",
        "ci",
        receiver.to("/ci"),
        "--event",
        "promoted",
        "--event",
        "started",
        "--format",
        "slack",
        "--inactive",
        "-o",
        "json",
    )
    assert created.returncode == 0, created.stderr
    hook = json.loads(created.stdout)
    assert hook["events"] == ["started", "promoted"]
    assert (hook["format"], hook["active"]) == ("slack", False)
    assert created.stdout.count(hook["secret"]) == 1
    assert "shown only this once" in created.stderr

    for _ in range(2):  # an inactive webhook gets test pings: that is how to try it
        assert server.cli("webhooks", "test", "ci").returncode == 0
    items = deliveries_once(server, "ci", lambda d: all(i["attempts"] >= 1 for i in d))
    newest, oldest = items[0]["id"], items[1]["id"]
    assert newest > oldest

    deliveries = server.cli("webhooks", "deliveries", "ci")
    assert deliveries.returncode == 0, deliveries.stderr
    header, *rows = deliveries.stdout.splitlines()
    assert "LAST ERROR" in header
    assert [row.split()[0] for row in rows] == [str(newest), str(oldest)]
    for row in rows:
        assert row.split()[3:7] == ["ping", "-", "pending", "1"]  # tried again later
        assert row.endswith("HTTP 500: receiver says no")
    only_delivered = server.cli("webhooks", "deliveries", "ci", "--status", "delivered")
    assert only_delivered.stdout.strip() == "no delivery yet"

    deleted = server.cli("webhooks", "delete", "ci")
    assert deleted.returncode == 0, deleted.stderr
    assert deleted.stdout.strip() == "webhook ci deleted, with its deliveries"
    for command in (("show", "ci"), ("deliveries", "ci"), ("test", "ci"), ("delete", "ci")):
        gone = server.cli("webhooks", *command)
        assert gone.returncode == 1, command
        assert "no webhook named 'ci'" in gone.stderr
    assert server.cli("webhooks", "list", "-o", "json").stdout.strip() == "[]"


def test_refusals_print_the_servers_reason_and_exit_1(server: Server, receiver: Receiver) -> None:
    metadata = server.cli(
        "webhooks", "create", "meta", "http://169.254.169.254/latest", "--event", "failed"
    )
    assert metadata.returncode == 1
    assert metadata.stdout == ""
    assert "CONTROLPLANE_WEBHOOK_ALLOWED_CIDRS" in metadata.stderr
    # said once: the server's message already names each field's issue
    assert metadata.stderr.count("169.254.169.254 is an internal address") == 1

    unknown = server.cli("webhooks", "create", "x", receiver.to("/x"), "--event", "deployed")
    assert unknown.returncode == 1
    assert "events" in unknown.stderr
    assert unknown.stderr.count("'rolled_back'") == 1  # the choices the server takes

    no_event = server.cli("webhooks", "create", "x", receiver.to("/x"))
    assert no_event.returncode == 2
    assert "--event" in no_event.stderr

    for role in ("viewer", "operator"):
        issued = server.cli("tokens", "create", f"a-{role}", "--role", role, "-o", "json")
        token = json.loads(issued.stdout)["token"]
        for command in (
            ("create", "x", receiver.to("/x"), "--event", "failed"),
            ("list",),
            ("show", "x"),
            ("test", "x"),
        ):
            refused = server.cli("webhooks", *command, token=token)
            assert refused.returncode == 1, (role, command)
            assert "this call needs 'admin'" in refused.stderr, (role, command)
    assert server.cli("webhooks", "list", "-o", "json").stdout.strip() == "[]"
