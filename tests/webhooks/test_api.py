"""/v1/webhooks: admin only, the secret once, validation, deliveries newest first, a ping
through the dispatcher to a real receiver (both databases)."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from controlplane.db import Database
from controlplane.models import AuditEvent, Rollout, Webhook
from controlplane.webhooks.dispatcher import Dispatcher
from controlplane.webhooks.schemas import WebhookEvent
from tests.support.receiver import Receiver, signed
from tests.webhooks.helpers import LOOPBACK, announce

BODY = {"name": "ops", "url": "https://hooks.example.com/T0/B0/xyz", "events": ["promoted"]}


def test_create_returns_the_secret_once(api: TestClient, database: Database) -> None:
    response = api.post("/v1/webhooks", json={**BODY, "events": ["promoted", "rolled_back"]})
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["secret"].startswith("whsec_")
    assert created["events"] == ["promoted", "rolled_back"]
    assert created["format"] == "json"
    assert created["active"] is True
    assert created["created_by"] == "admin"
    assert response.headers["location"] == "/v1/webhooks/ops"
    listed = api.get("/v1/webhooks").json()["items"]
    assert [h["name"] for h in listed] == ["ops"]
    assert "secret" not in listed[0]
    assert "secret" not in api.get("/v1/webhooks/ops").json()
    with database.session() as session:
        stored = session.exec(select(Webhook)).one()
        audit = session.exec(select(AuditEvent)).all()
    assert stored.secret == created["secret"]
    assert created["secret"] not in repr(stored)
    assert BODY["url"] not in repr(stored)
    trail = json.dumps([a.details for a in audit])
    assert created["secret"] not in trail
    assert "xyz" not in trail  # the URL's path can be a credential
    assert [a.action for a in audit] == ["webhook.created"]


def test_events_are_deduplicated_in_a_stable_order(api: TestClient) -> None:
    body = {**BODY, "events": ["rolled_back", "started", "rolled_back"]}
    assert api.post("/v1/webhooks", json=body).json()["events"] == ["started", "rolled_back"]


def test_duplicate_names_are_409(api: TestClient) -> None:
    assert api.post("/v1/webhooks", json=BODY).status_code == 201
    again = api.post("/v1/webhooks", json=BODY)
    assert again.status_code == 409
    assert again.json()["code"] == "webhook_exists"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"url": "ftp://example.com/x"}, "url"),
        ({"url": "https:///no-host"}, "url"),
        ({"url": "http://example.com:99999/"}, "url"),
        ({"url": "not a url"}, "url"),
        ({"events": ["started", "exploded"]}, "events.1"),
        ({"events": []}, "events"),
        ({"format": "xml"}, "format"),
        ({"name": "Bad_Name"}, "name"),
        ({"secret": "mine"}, "secret"),
    ],
)
def test_bad_requests_are_422_per_field(
    api: TestClient, change: dict[str, object], field: str
) -> None:
    response = api.post("/v1/webhooks", json={**BODY, **change})
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] == "validation_error"
    assert [e["field"] for e in problem["errors"]] == [field]


def test_only_admins(api: TestClient, viewer: TestClient, operator: TestClient) -> None:
    api.post("/v1/webhooks", json=BODY)
    for client in (viewer, operator):
        for method, path in [
            ("POST", "/v1/webhooks"),
            ("GET", "/v1/webhooks"),
            ("GET", "/v1/webhooks/ops"),
            ("DELETE", "/v1/webhooks/ops"),
            ("GET", "/v1/webhooks/ops/deliveries"),
            ("POST", "/v1/webhooks/ops/test"),
        ]:
            response = client.request(method, path, json=BODY if method == "POST" else None)
            assert response.status_code == 403, (method, path)
            assert response.json()["code"] == "insufficient_role"


def test_unknown_webhooks_are_404(api: TestClient) -> None:
    for method, path in [
        ("GET", "/v1/webhooks/nope"),
        ("DELETE", "/v1/webhooks/nope"),
        ("GET", "/v1/webhooks/nope/deliveries"),
        ("POST", "/v1/webhooks/nope/test"),
    ]:
        response = api.request(method, path)
        assert response.status_code == 404, (method, path)
        assert response.json()["code"] == "webhook_not_found"


def test_ping_is_delivered_and_deliveries_page_newest_first(
    api: TestClient, database: Database, rollout: Rollout, receiver: Receiver
) -> None:
    created = api.post(
        "/v1/webhooks", json={**BODY, "url": receiver.to("/ping"), "events": ["paused"]}
    ).json()
    announce(database, rollout, WebhookEvent.PAUSED, "paused by ops")
    queued = api.post("/v1/webhooks/ops/test")
    assert queued.status_code == 202, queued.text
    assert queued.json()["status"] == "pending"
    assert queued.json()["event"] == "ping"
    dispatcher = Dispatcher(database, policy=LOOPBACK)
    try:
        assert dispatcher.run_due() == 2
    finally:
        dispatcher.stop()
    events = [json.loads(r.body)["event"] for r in receiver.at("/ping")]
    assert sorted(events) == ["paused", "ping"]
    for request in receiver.at("/ping"):
        assert signed(created["secret"], request)

    first = api.get("/v1/webhooks/ops/deliveries", params={"limit": 1}).json()
    assert [d["event"] for d in first["items"]] == ["ping"]  # newest first
    delivery = first["items"][0]
    assert delivery["status"] == "delivered"
    assert delivery["attempts"] == 1
    assert delivery["last_status_code"] == 200
    assert delivery["next_attempt_at"] is None
    assert delivery["webhook"] == "ops"
    assert delivery["rollout_id"] is None
    assert "secret" not in json.dumps(delivery)
    rest = api.get(
        "/v1/webhooks/ops/deliveries", params={"limit": 1, "cursor": first["next_cursor"]}
    ).json()
    assert [d["event"] for d in rest["items"]] == ["paused"]
    assert rest["items"][0]["rollout_id"] == rollout.id
    assert rest["items"][0]["payload"]["message"] == "paused by ops"
    assert rest["next_cursor"] is None
    only_pending = api.get("/v1/webhooks/ops/deliveries", params={"status": "pending"}).json()
    assert only_pending["items"] == []


def test_delete_removes_the_webhook_and_its_deliveries(
    api: TestClient, database: Database, rollout: Rollout
) -> None:
    api.post("/v1/webhooks", json={**BODY, "events": ["paused"]})
    announce(database, rollout, WebhookEvent.PAUSED)
    deleted = api.delete("/v1/webhooks/ops")
    assert deleted.status_code == 200
    assert deleted.json()["name"] == "ops"
    assert api.get("/v1/webhooks/ops").status_code == 404
    assert api.get("/v1/webhooks").json()["items"] == []
    assert api.post("/v1/webhooks", json=BODY).status_code == 201  # the name is free again
    assert api.get("/v1/webhooks/ops/deliveries").json()["items"] == []
