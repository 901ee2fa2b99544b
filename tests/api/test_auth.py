"""Tokens and roles: who may call what, and that only hashes are stored."""

from __future__ import annotations

import hashlib

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from controlplane.api import create_app
from controlplane.auth import TokenCache
from controlplane.config import Settings
from controlplane.db import Database
from controlplane.models import ApiToken
from tests.conftest import token_client
from tests.factories import model_body, version_body


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_every_v1_call_needs_a_token(anonymous: TestClient) -> None:
    for method, path in [
        ("GET", "/v1/models"),
        ("POST", "/v1/models"),
        ("GET", "/v1/tokens"),
        ("GET", "/v1/models/x/versions"),
        ("GET", "/v1/audit"),
    ]:
        response = anonymous.request(method, path, json={})
        assert response.status_code == 401, (method, path)
        assert response.json()["code"] == "unauthenticated"
        assert response.headers["www-authenticate"] == "Bearer"


def test_wrong_token_is_401(settings: object, anonymous: TestClient) -> None:
    response = anonymous.get("/v1/models", headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_token"


def test_health_endpoints_need_no_token(anonymous: TestClient) -> None:
    assert anonymous.get("/healthz").json() == {"status": "ok"}
    ready = anonymous.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"


def test_contract_token_creation_returns_the_secret_once(
    api: TestClient, database: Database
) -> None:
    response = api.post("/v1/tokens", json={"name": "ci-viewer", "role": "viewer"})
    assert response.status_code == 201, response.text
    secret = response.json()["token"]
    assert secret.startswith("cpt_")
    listed = api.get("/v1/tokens").json()["items"]
    assert [t["name"] for t in listed] == ["ci-viewer"]
    assert "token" not in listed[0]
    with database.session() as session:
        stored = session.exec(select(ApiToken)).one()
    assert stored.token_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in stored.model_dump_json()


def test_viewer_reads_but_cannot_write(api: TestClient, viewer: TestClient) -> None:
    api.post("/v1/models", json=model_body(name="chat"))
    assert viewer.get("/v1/models/chat").status_code == 200
    assert viewer.get("/v1/models/chat/versions").status_code == 200
    response = viewer.post("/v1/models/chat/versions", json=version_body())
    assert response.status_code == 403
    assert response.json()["code"] == "insufficient_role"
    assert "operator" in response.json()["detail"]
    assert viewer.post("/v1/models", json=model_body()).status_code == 403
    assert viewer.patch("/v1/models/chat", json={"replicas": 1}).status_code == 403
    assert api.get("/v1/models/chat/versions").json()["items"] == []


def test_operator_registers_but_cannot_manage_tokens_or_delete(
    api: TestClient, operator: TestClient
) -> None:
    assert operator.post("/v1/models", json=model_body(name="chat")).status_code == 201
    registered = operator.post("/v1/models/chat/versions", json=version_body(version="v1"))
    assert registered.status_code == 201
    assert registered.json()["created_by"].startswith("operator-")
    assert operator.post("/v1/tokens", json={"name": "x", "role": "admin"}).status_code == 403
    assert operator.get("/v1/tokens").status_code == 403
    assert operator.delete("/v1/models/chat").status_code == 403


def test_admin_tokens_can_create_tokens(api: TestClient) -> None:
    admin = token_client(api, "admin", name="second-admin")
    response = admin.post("/v1/tokens", json={"name": "made-by-admin", "role": "operator"})
    assert response.status_code == 201
    assert response.json()["created_by"] == "second-admin"


def test_revoked_token_stops_working_at_once(api: TestClient) -> None:
    client = token_client(api, "operator", name="leaky")
    assert client.get("/v1/models").status_code == 200
    revoked = api.delete("/v1/tokens/leaky")
    assert revoked.status_code == 200
    assert revoked.json()["revoked_by"] == "admin"
    assert client.get("/v1/models").status_code == 401
    assert api.get("/v1/tokens").json()["items"] == []
    with_revoked = api.get("/v1/tokens", params={"include_revoked": True}).json()["items"]
    assert [t["name"] for t in with_revoked] == ["leaky"]
    assert api.delete("/v1/tokens/leaky").status_code == 200  # idempotent


def test_a_revocation_through_another_replica_holds_here_within_the_cache_time(
    api: TestClient, settings: Settings, database: Database
) -> None:
    """Two apps on one database are two replicas: the other one refuses the revoked
    token once its cache's time to live has passed (the documented bound), not before a
    clock it does not own says so."""
    clock = FakeClock()
    replica_app = create_app(settings, database, start_reconciler=False)
    replica_app.state.token_cache = TokenCache(settings.token_cache_seconds, clock=clock)
    secret = api.post("/v1/tokens", json={"name": "leaky", "role": "viewer"}).json()["token"]
    with TestClient(replica_app, headers={"Authorization": f"Bearer {secret}"}) as replica:
        assert replica.get("/v1/models").status_code == 200  # now in the replica's cache
        assert api.delete("/v1/tokens/leaky").status_code == 200
        clock.now += settings.token_cache_seconds - 0.1
        # within the bound the replica has not read the revocation: the cost of the cache
        assert replica.get("/v1/models").status_code == 200
        clock.now += 0.1
        refused = replica.get("/v1/models")
        assert refused.status_code == 401
        assert refused.json()["code"] == "invalid_token"


def test_without_a_cache_a_revocation_through_another_replica_holds_at_once(
    api: TestClient, settings: Settings, database: Database
) -> None:
    uncached = settings.model_copy(update={"token_cache_seconds": 0})
    replica_app = create_app(uncached, database, start_reconciler=False)
    secret = api.post("/v1/tokens", json={"name": "leaky", "role": "viewer"}).json()["token"]
    with TestClient(replica_app, headers={"Authorization": f"Bearer {secret}"}) as replica:
        assert replica.get("/v1/models").status_code == 200
        assert api.delete("/v1/tokens/leaky").status_code == 200
        assert replica.get("/v1/models").status_code == 401


def test_duplicate_and_reserved_token_names(api: TestClient) -> None:
    assert api.post("/v1/tokens", json={"name": "ci", "role": "viewer"}).status_code == 201
    duplicate = api.post("/v1/tokens", json={"name": "ci", "role": "admin"})
    assert duplicate.status_code == 409
    assert duplicate.json()["code"] == "token_exists"
    reserved = api.post("/v1/tokens", json={"name": "system", "role": "admin"})
    assert reserved.status_code == 400
    assert reserved.json()["code"] == "reserved_name"


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "role": "root"},
        {"name": "Bad Name", "role": "viewer"},
        {"role": "viewer"},
        {"name": "x", "role": "viewer", "expires_in_days": 0},
    ],
)
def test_bad_token_requests_are_422(api: TestClient, body: dict[str, object]) -> None:
    response = api.post("/v1/tokens", json=body)
    assert response.status_code == 422
    assert response.json()["errors"]


def test_revoking_an_unknown_token_is_404(api: TestClient) -> None:
    assert api.delete("/v1/tokens/nope").json()["code"] == "token_not_found"


def test_expired_token_is_refused_with_its_own_code(database: Database) -> None:
    from datetime import timedelta

    from controlplane import auth
    from controlplane.errors import AuthenticationError
    from controlplane.models import Role, TokenCreate, utcnow

    now = utcnow()
    with database.session() as session:
        created = auth.create_token(
            session,
            data=TokenCreate(name="short", role=Role.VIEWER, expires_in_days=1),
            actor="admin",
            now=now,
        )
        principal = auth.authenticate(
            session, secret=created.token, admin_token="x", now=now + timedelta(hours=23)
        )
        assert principal.name == "short"
        with pytest.raises(AuthenticationError) as error:
            auth.authenticate(
                session,
                secret=created.token,
                admin_token="x",
                now=now + timedelta(days=1, seconds=1),
            )
        assert error.value.code == "token_expired"


def test_a_cached_token_still_expires_on_time(database: Database) -> None:
    from datetime import timedelta

    from controlplane import auth
    from controlplane.errors import AuthenticationError
    from controlplane.models import Role, TokenCreate, utcnow

    now = utcnow()
    cache = TokenCache(60, clock=FakeClock())
    with database.session() as session:
        created = auth.create_token(
            session,
            data=TokenCreate(name="short", role=Role.VIEWER, expires_in_days=1),
            actor="admin",
            now=now,
        )
        auth.authenticate(session, secret=created.token, admin_token="x", now=now, cache=cache)
    known = auth.known_principal(secret=created.token, admin_token="x", cache=cache, now=now)
    assert known is not None
    assert known.name == "short"  # told without the database
    with pytest.raises(AuthenticationError) as error:
        auth.known_principal(
            secret=created.token,
            admin_token="x",
            cache=cache,
            now=now + timedelta(days=1, seconds=1),
        )
    assert error.value.code == "token_expired"
