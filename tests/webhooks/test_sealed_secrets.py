"""Signing secrets sealed at rest (CONTROLPLANE_SECRET_KEYS), on both databases: created
sealed through the API, unsealed by the dispatcher to sign real deliveries, resealed for
rotation by `controlplane db reseal`, and never readable from the database alone."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlmodel import select

from controlplane.api import create_app
from controlplane.config import Settings
from controlplane.db import Database
from controlplane.models import AuditEvent, Rollout, Webhook
from controlplane.sealing import PREFIX, Sealer, SealingError
from controlplane.webhooks import service
from controlplane.webhooks.dispatcher import Dispatcher
from controlplane.webhooks.schemas import WebhookEvent
from tests.conftest import ADMIN_TOKEN
from tests.support.receiver import Receiver, signed
from tests.webhooks.helpers import LOOPBACK, announce, deliveries, subscribe

KEY = "k" * 16 + "0123456789abcdef"
NEWER = "n" * 16 + "fedcba9876543210"
CLI = [sys.executable, "-m", "controlplane"]


def stored_secrets(database: Database) -> dict[str, str]:
    with database.session() as session:
        return {h.name: h.secret for h in session.exec(select(Webhook)).all()}


def stored_urls(database: Database) -> dict[str, str]:
    with database.session() as session:
        return {h.name: h.url for h in session.exec(select(Webhook)).all()}


def send_all(database: Database, sealer: Sealer) -> None:
    dispatcher = Dispatcher(database, policy=LOOPBACK, sealer=sealer)
    try:
        dispatcher.run_due()
    finally:
        dispatcher.stop()


@pytest.fixture
def sealed_api(settings: Settings, database: Database) -> Iterator[TestClient]:
    keyed = settings.model_copy(update={"secret_keys": SecretStr(KEY)})
    app = create_app(keyed, database, start_reconciler=False)
    with TestClient(app, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as client:
        yield client


def test_the_api_stores_the_secret_sealed_and_deliveries_are_signed_with_it(
    sealed_api: TestClient, database: Database, rollout: Rollout, receiver: Receiver
) -> None:
    body = {"name": "ops", "url": receiver.to("/hook"), "events": ["promoted"]}
    created = sealed_api.post("/v1/webhooks", json=body)
    assert created.status_code == 201, created.text
    secret = created.json()["secret"]
    stored = stored_secrets(database)["ops"]
    assert stored.startswith(PREFIX)
    assert secret not in stored
    stored_url = stored_urls(database)["ops"]
    assert stored_url.startswith(PREFIX)
    assert "/hook" not in stored_url
    assert sealed_api.get("/v1/webhooks/ops").json()["url"] == body["url"]
    assert sealed_api.get("/v1/webhooks").json()["items"][0]["url"] == body["url"]
    announce(database, rollout, WebhookEvent.PROMOTED)
    send_all(database, Sealer.from_passphrases([KEY]))
    [request] = receiver.at("/hook")
    assert signed(secret, request)


def test_without_the_key_nothing_is_sent_and_the_delivery_says_why(
    database: Database, rollout: Rollout, receiver: Receiver
) -> None:
    subscribe(database, "ops", receiver.to("/hook"), sealer=Sealer.from_passphrases([KEY]))
    announce(database, rollout, WebhookEvent.PROMOTED)
    send_all(database, Sealer.from_passphrases([NEWER]))  # the key was lost or swapped
    assert receiver.at("/hook") == []
    [row] = deliveries(database)
    assert (row.status, row.attempts) == ("pending", 1)  # retried: the key may come back
    assert row.last_error is not None
    assert "which is not among CONTROLPLANE_SECRET_KEYS" in row.last_error


def test_reseal_seals_old_plain_secrets_then_rotates_to_a_new_key(
    database: Database, rollout: Rollout, receiver: Receiver
) -> None:
    plain = {name: subscribe(database, name, receiver.to(f"/{name}")).secret for name in ("a", "b")}
    assert stored_secrets(database) == plain  # stored before any key was set

    first = Sealer.from_passphrases([KEY])
    with database.session() as session:
        assert service.reseal_secrets(session, sealer=first, actor="ops") == (2, 0)
    sealed = stored_secrets(database)
    assert all(v.startswith(PREFIX) for v in sealed.values())
    assert all(v.startswith(PREFIX) for v in stored_urls(database).values())
    with database.session() as session:
        assert service.reseal_secrets(session, sealer=first, actor="ops") == (0, 2)
    assert stored_secrets(database) == sealed  # nothing rewritten

    rotating = Sealer.from_passphrases([NEWER, KEY])
    with database.session() as session:
        assert service.reseal_secrets(session, sealer=rotating, actor="ops") == (2, 0)
        actions = [e.action for e in session.exec(select(AuditEvent)).all()]
    assert actions.count("webhook.secrets_resealed") == 2

    announce(database, rollout, WebhookEvent.PROMOTED)
    send_all(database, Sealer.from_passphrases([NEWER]))  # the old key is gone now
    for name, secret in plain.items():
        [request] = receiver.at(f"/{name}")
        assert signed(secret, request)


def test_reseal_is_all_or_nothing(database: Database, receiver: Receiver) -> None:
    subscribe(database, "a", receiver.to("/a"))  # plain
    subscribe(database, "b", receiver.to("/b"), sealer=Sealer.from_passphrases([NEWER]))
    before = stored_secrets(database)
    with database.session() as session, pytest.raises(SealingError):
        service.reseal_secrets(session, sealer=Sealer.from_passphrases([KEY]), actor="ops")
    assert stored_secrets(database) == before


def test_the_reseal_command(database: Database, database_url: str, receiver: Receiver) -> None:
    subscribe(database, "a", receiver.to("/a"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTROLPLANE_")}
    env["CONTROLPLANE_DATABASE_URL"] = database_url

    def reseal(**extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CLI, "db", "reseal"],
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    unset = reseal()
    assert unset.returncode == 2
    assert "CONTROLPLANE_SECRET_KEYS is not set" in unset.stderr
    short = reseal(CONTROLPLANE_SECRET_KEYS="short")
    assert short.returncode == 2
    assert "at least 32" in short.stderr
    assert "short" not in short.stderr  # the key is never echoed
    done = reseal(CONTROLPLANE_SECRET_KEYS=KEY)
    assert done.returncode == 0, done.stderr
    assert "resealed 1 webhook secret(s); 0 already" in done.stdout
    assert KEY not in done.stdout + done.stderr
    assert stored_secrets(database)["a"].startswith(PREFIX)
    lost = reseal(CONTROLPLANE_SECRET_KEYS=NEWER)
    assert lost.returncode == 2
    assert "nothing was changed" in lost.stderr


def test_a_sealed_secret_copied_to_another_webhook_does_not_open_there(
    database: Database, rollout: Rollout, receiver: Receiver
) -> None:
    sealer = Sealer.from_passphrases([KEY])
    subscribe(database, "a", receiver.to("/a"), sealer=sealer)
    subscribe(database, "b", receiver.to("/b"), sealer=sealer)
    with database.session() as session:
        a, b = session.exec(select(Webhook).order_by(Webhook.name)).all()
        b.secret = a.secret  # someone with write access to the table
        session.add(b)
        session.commit()
    announce(database, rollout, WebhookEvent.PROMOTED)
    send_all(database, sealer)
    assert len(receiver.at("/a")) == 1
    assert receiver.at("/b") == []
    errors = {row.last_error for row in deliveries(database) if row.last_error}
    assert any("does not authenticate" in e for e in errors), errors


def test_a_url_sealed_with_a_missing_key_reads_as_unreadable_not_as_an_error(
    settings: Settings, database: Database, receiver: Receiver
) -> None:
    subscribe(database, "ops", receiver.to("/hook"), sealer=Sealer.from_passphrases([NEWER]))
    keyed = settings.model_copy(update={"secret_keys": SecretStr(KEY)})
    app = create_app(keyed, database, start_reconciler=False)
    with TestClient(app, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as client:
        shown = client.get("/v1/webhooks/ops")
    assert shown.status_code == 200
    assert shown.json()["url"] == service.UNREADABLE_URL
