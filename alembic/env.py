"""Alembic environment: migrations run against the URL given by controlplane.db (or, for
Alembic's own CLI, CONTROLPLANE_DATABASE_URL), with the SQLModel metadata as target."""

from __future__ import annotations

import os
from logging.config import fileConfig

import sqlalchemy as sa
from sqlmodel import SQLModel

import controlplane.models  # noqa: F401 - registers the tables on SQLModel.metadata
from alembic import context
from controlplane.db import make_engine, normalize_url

config = context.config
if config.config_file_name and config.attributes.get("configure_logging", True):
    fileConfig(config.config_file_name)

target_metadata = SQLModel.metadata


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return url
    return normalize_url(
        os.environ.get("CONTROLPLANE_DATABASE_URL", "sqlite:///./controlplane.db")
    ).render_as_string(hide_password=False)


def _configure(**kwargs: object) -> None:
    context.configure(
        target_metadata=target_metadata,
        compare_type=True,
        render_as_batch=True,  # SQLite cannot ALTER most things; batch mode copies the table
        **kwargs,  # type: ignore[arg-type]
    )


def run_migrations_offline() -> None:
    _configure(url=_url(), literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if isinstance(connection, sa.Connection):
        _configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(_url(), pool_size=1)
    try:
        with engine.connect() as connection:
            _configure(connection=connection)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
