"""Migrations: upgrade to head, no drift between models and migrations, downgrade to base."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import SQLModel

import controlplane.models  # noqa: F401 - registers the tables
from controlplane import db
from controlplane.redaction import REDACTED

AT = datetime(2026, 11, 30, tzinfo=UTC)


def test_round_trip_has_no_drift(empty_database_url: str) -> None:
    db.upgrade(empty_database_url)
    assert db.current_revision(empty_database_url) is not None
    engine = db.make_engine(empty_database_url, pool_size=1)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            diff = compare_metadata(context, SQLModel.metadata)
            assert diff == [], f"models and migrations differ: {diff}"
        db.upgrade(empty_database_url)  # a second upgrade is a no-op
        db.downgrade(empty_database_url, "base")
        with engine.connect() as connection:
            tables = set(sa.inspect(connection).get_table_names()) - {"alembic_version"}
        assert tables == set()
        assert db.current_revision(empty_database_url) is None
    finally:
        engine.dispose()


def test_0002_gives_existing_models_empty_placement(empty_database_url: str) -> None:
    db.upgrade(empty_database_url, "0001")
    engine = db.make_engine(empty_database_url, pool_size=1)
    try:
        with engine.begin() as connection:
            connection.execute(
                sa.text(
                    "INSERT INTO model (name, namespace, description, labels, image, "
                    "gpus_per_replica, gpu_resource, replicas, port, args, env, routing_mode, "
                    "health_path, created_at, created_by, updated_at, updated_by) VALUES "
                    "('old', 'llm', '', '{}', 'img', 1, 'nvidia.com/gpu', 1, 8000, '[]', '{}', "
                    "'replicas', '/health', CURRENT_TIMESTAMP, 'a', CURRENT_TIMESTAMP, 'a')"
                )
            )
        db.upgrade(empty_database_url)
        with engine.connect() as connection:
            row = connection.execute(
                sa.text("SELECT node_selector, tolerations, gateway FROM model")
            ).one()
        selector, tolerations, gateway = row
        assert selector in ({}, "{}")
        assert tolerations in ([], "[]")
        assert gateway is None
    finally:
        engine.dispose()


def test_0013_scrubs_credentials_from_audit_details_written_before(
    empty_database_url: str,
) -> None:
    token = "hf_" + "Mg9" * 12
    db.upgrade(empty_database_url, "0012")
    engine = db.make_engine(empty_database_url, pool_size=1)
    details = {
        "name": "chat",
        "env": {"HF_TOKEN": "named-value-1c2d", "MIRROR": token, "HF_HOME": "/cache"},
        "args": ["--api-key", "arg-value-9e8f"],
    }
    events = sa.table(
        "audit_event",
        sa.column("id", sa.Integer()),
        sa.column("at", sa.DateTime(timezone=True)),
        sa.column("actor", sa.String()),
        sa.column("action", sa.String()),
        sa.column("details", sa.JSON()),
    )
    try:
        with engine.begin() as connection:
            connection.execute(
                sa.insert(events),
                [
                    {"at": AT, "actor": "a", "action": "model.created", "details": d}
                    for d in (details, {"changes": {"env": {"OPENAI_API_KEY": "sk-" + "x" * 30}}})
                ]
                + [
                    {"at": AT, "actor": "a", "action": "token.created", "details": d}
                    for d in ({"name": "ci", "role": "viewer"},)
                ],
            )
        db.upgrade(empty_database_url)
        with engine.connect() as connection:
            rows = connection.execute(sa.select(events.c.details).order_by(events.c.id)).all()
        assert [row[0] for row in rows] == [
            {
                "name": "chat",
                "env": {"HF_TOKEN": REDACTED, "MIRROR": REDACTED, "HF_HOME": "/cache"},
                "args": ["--api-key", REDACTED],
            },
            {"changes": {"env": {"OPENAI_API_KEY": REDACTED}}},
            {"name": "ci", "role": "viewer"},  # nothing to scrub: left as it was
        ]
        db.downgrade(empty_database_url, "0012")  # one way: the scrubbed details stay
        with engine.connect() as connection:
            assert connection.execute(sa.select(sa.func.count()).select_from(events)).scalar() == 3
    finally:
        engine.dispose()


def test_0015_cuts_metadata_stored_too_deep_so_the_version_reads_again(
    empty_database_url: str,
) -> None:
    from fastapi.testclient import TestClient

    from controlplane.api import create_app
    from controlplane.config import Settings
    from controlplane.jsonlimits import CUT, MAX_DEPTH
    from tests.conftest import ADMIN_TOKEN
    from tests.factories import model_body, version_body

    db.upgrade(empty_database_url)
    settings = Settings(
        admin_token=ADMIN_TOKEN, database_url=empty_database_url, reconcile_enabled=False
    )
    database = db.Database(empty_database_url, pool_size=1)
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    try:
        with TestClient(
            create_app(settings, database, start_reconciler=False), headers=headers
        ) as api:
            assert api.post("/v1/models", json=model_body(name="chat")).status_code == 201
            for version in ("v1", "v2"):
                body = version_body(version=version)
                assert api.post("/v1/models/chat/versions", json=body).status_code == 201
        # as the server stored it before the limit: 300 levels deep, in v1 and its audit
        db.downgrade(empty_database_url, "0014")
        deep = '{"a":' * 300 + "1" + "}" * 300
        cast = "CAST(:v AS JSONB)" if database.dialect == "postgresql" else ":v"
        with database.engine.begin() as connection:
            connection.execute(
                sa.text(f"UPDATE model_version SET metadata = {cast} WHERE version = 'v1'"),  # noqa: S608
                {"v": deep},
            )
            connection.execute(
                sa.text(f"UPDATE audit_event SET details = {cast} WHERE id = 1"),  # noqa: S608
                {"v": '{"metadata":' + deep + "}"},
            )
        db.upgrade(empty_database_url)
        with TestClient(
            create_app(settings, database, start_reconciler=False), headers=headers
        ) as api:
            read = api.get("/v1/models/chat/versions/v1")
            assert read.status_code == 200, read.text
            node, depth = read.json()["metadata"], 1
            while isinstance(node, dict):
                node, depth = node["a"], depth + 1
            assert (node, depth) == (CUT.format(depth=MAX_DEPTH), MAX_DEPTH + 1)
            listed = api.get("/v1/models/chat/versions")
            assert listed.status_code == 200, listed.text
            assert sorted(v["version"] for v in listed.json()["items"]) == ["v1", "v2"]
            assert api.get("/v1/audit").status_code == 200
    finally:
        database.dispose()
