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
