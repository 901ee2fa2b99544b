"""The database going away under the API (a restart, a failover): every request answers
503 ``database_unavailable`` with ``Retry-After`` (documented on every operation), nothing
is half-written, and the API serves again once the database is back. Against a real
PostgreSQL server of the test's own, crashed and started again."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from controlplane import db
from controlplane.api import create_app
from controlplane.config import Settings
from tests.conftest import ADMIN_TOKEN
from tests.factories import model_body
from tests.support import postgres

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def server() -> Iterator[postgres.RestartablePostgres]:
    with postgres.restartable_postgres() as pg:
        yield pg


def test_requests_while_the_database_is_down_answer_503_and_retry_works(
    server: postgres.RestartablePostgres,
) -> None:
    url = postgres.create_database(server.url, "down")
    db.upgrade(url)
    settings = Settings(admin_token=ADMIN_TOKEN, database_url=url, reconcile_enabled=False)
    database = db.Database(url, pool_size=2)
    app = create_app(settings, database, start_reconciler=False)
    try:
        with TestClient(app, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as api:
            assert api.post("/v1/models", json=model_body(name="before")).status_code == 201
            server.stop()
            try:
                for method, path, body in (
                    ("POST", "/v1/models", model_body(name="during")),
                    ("GET", "/v1/models/before", None),
                    ("GET", "/v1/models", None),
                ):
                    answer = api.request(method, path, json=body)
                    assert answer.status_code == 503, (method, path, answer.text)
                    assert answer.headers["content-type"] == "application/problem+json"
                    assert answer.headers["retry-after"] == "1"
                    assert answer.json()["code"] == "database_unavailable"
                    assert "Traceback" not in answer.text
            finally:
                server.start()
            listed = [m["name"] for m in api.get("/v1/models").json()["items"]]
            assert listed == ["before"], "the refused create left something behind"
            assert api.post("/v1/models", json=model_body(name="during")).status_code == 201
            documented = api.get("/openapi.json").json()["paths"]
            for path, operations in documented.items():
                for method, operation in operations.items():
                    assert "503" in operation["responses"], (method, path)
    finally:
        database.dispose()
