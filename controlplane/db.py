"""The database edge: engine, sessions and schema migrations.

SQLite (a file, the default) and PostgreSQL (production, psycopg 3) are both first-class.
Everything else in the package gets a ``Session`` from here and never builds an engine
itself. The schema is only ever changed by Alembic migrations, never by ``create_all``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlmodel import Session

from alembic import command

log = logging.getLogger(__name__)

_PACKAGE_DIR = Path(__file__).resolve().parent


def normalize_url(url: str) -> URL:
    """Accept the URLs people write (``postgresql://``, ``postgres://``) and pick our drivers."""
    parsed = make_url(url.replace("postgres://", "postgresql://", 1))
    if parsed.drivername in ("postgresql", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers run beside the single writer; busy_timeout makes writers queue
    # instead of failing at once; foreign keys are off by default in SQLite.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_engine(url: str, *, pool_size: int = 10) -> sa.Engine:
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = sa.create_engine(
            parsed,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=pool_size,
            max_overflow=pool_size * 2,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return sa.create_engine(
        parsed,
        pool_size=pool_size,
        max_overflow=pool_size * 2,
        pool_pre_ping=True,
        pool_timeout=30,
    )


_HOLDS = "controlplane_holds_writer"  # on a connection's info: it writes under the lock
WRITER_WAIT_SECONDS = 30.0  # as long as SQLite's own busy timeout


class SQLiteWriter:
    """The writers of one process in line for SQLite's one write lock.

    SQLite lets one connection write at a time; the others get SQLITE_BUSY and SQLite's
    busy handler retries after sleeping 1, 2, 5, ... up to 100 ms, so under concurrent
    writes the lock sits free while the writers sleep (registrations from 50 clients: p99
    1.8 s). Here a connection takes this lock before its first INSERT, UPDATE or DELETE
    and gives it back when its transaction ends (commit or rollback): the next writer of
    the process is woken at once. Writers of other processes (``serve --workers``) still
    meet on SQLite's lock. A writer that waits longer than SQLite would have goes on
    without it, to SQLite's lock as before: nothing here waits longer than it did.
    """

    def __init__(self, engine: sa.Engine) -> None:
        self._lock = threading.Lock()
        event.listen(engine, "before_cursor_execute", self._before_execute)
        event.listen(engine, "commit", self._commit)
        event.listen(engine, "rollback", self._rollback)

    def _before_execute(
        self,
        connection: sa.Connection,
        _cursor: Any,
        _statement: str,
        _parameters: Any,
        context: Any,
        _executemany: bool,
    ) -> None:
        writes = context is not None and (context.isinsert or context.isupdate or context.isdelete)
        if (
            writes
            and not connection.info.get(_HOLDS)
            and self._lock.acquire(timeout=WRITER_WAIT_SECONDS)
        ):
            connection.info[_HOLDS] = True

    # The events come before SQLAlchemy ends the transaction: end it here, then let the
    # next writer in (released first, it would find SQLite's lock still held, and sleep).
    # SQLAlchemy's own commit or rollback that follows finds nothing left to end.
    def _commit(self, connection: sa.Connection) -> None:
        self._end(connection, commit=True)

    def _rollback(self, connection: sa.Connection) -> None:
        self._end(connection, commit=False)

    def _end(self, connection: sa.Connection, *, commit: bool) -> None:
        if not connection.info.get(_HOLDS):
            return
        try:
            dbapi = connection.connection.dbapi_connection
            assert dbapi is not None
            if commit:
                dbapi.commit()
            else:
                dbapi.rollback()
        finally:
            del connection.info[_HOLDS]
            self._lock.release()


class Database:
    """An engine and its sessions. One per process; closed on shutdown."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self.engine = make_engine(url, pool_size=pool_size)
        self.writer = SQLiteWriter(self.engine) if self.is_local else None

    def open_session(self) -> Session:
        """A new session; the caller closes it (``session()`` does, as a context manager)."""
        return Session(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self.open_session() as session:
            yield session

    def ping(self) -> None:
        """Raise if the database cannot answer a trivial query."""
        with self.engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def is_local(self) -> bool:
        """The database is a file in this process (SQLite): no call to it waits on a
        network round trip."""
        return self.dialect == "sqlite"

    def dispose(self) -> None:
        self.engine.dispose()


# ---------------------------------------------------------------------------------------
# migrations


def migrations_dir() -> Path:
    """Where the Alembic scripts are: inside the package when installed from a wheel,
    the repository's ``alembic/`` folder in a checkout."""
    packaged = _PACKAGE_DIR / "migrations"
    if (packaged / "env.py").exists():
        return packaged
    return _PACKAGE_DIR.parent / "alembic"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    # ConfigParser interpolation would treat '%' in passwords as syntax.
    config.set_main_option(
        "sqlalchemy.url",
        normalize_url(url).render_as_string(hide_password=False).replace("%", "%%"),
    )
    config.attributes["configure_logging"] = False
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (the latest by default). Safe to run repeatedly."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)


def current_revision(url: str) -> str | None:
    engine = make_engine(url, pool_size=1)
    try:
        with engine.connect() as connection:
            from alembic.runtime.migration import MigrationContext

            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()
