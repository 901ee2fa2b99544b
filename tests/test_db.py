"""The database edge on SQLite: the writers of a process take turns on one lock, which no
transaction keeps after it ends, however it ends."""

from __future__ import annotations

import concurrent.futures
from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError
from sqlmodel import func, select

from controlplane import db
from controlplane.models import AuditEvent, Model, ModelCreate, utcnow
from controlplane.registry import models as registry


@pytest.fixture
def database(tmp_path: Path) -> db.Database:
    url = f"sqlite:///{tmp_path / 'writers.db'}"
    db.upgrade(url)
    return db.Database(url, pool_size=4)


def writer_is_free(database: db.Database) -> bool:
    assert database.writer is not None
    lock = database.writer._lock
    if lock.acquire(blocking=False):
        lock.release()
        return True
    return False


def test_the_lock_is_free_after_a_commit_a_failed_write_and_a_read(
    database: db.Database,
) -> None:
    with database.session() as session:
        registry.create_model(session, data=ModelCreate(name="chat", image="i:1"), actor="t")
    assert writer_is_free(database)
    duplicate = Model(
        name="chat",
        image="i:1",
        created_at=utcnow(),
        created_by="t",
        updated_at=utcnow(),
        updated_by="t",
    )
    with database.session() as session:
        session.add(duplicate)
        with pytest.raises(IntegrityError):
            session.commit()
    assert writer_is_free(database)
    with database.session() as session:
        session.add(AuditEvent(at=utcnow(), actor="t", action="x", details={}))
        session.flush()
        assert not writer_is_free(database)  # held while the transaction writes
    assert writer_is_free(database)  # closed without a commit: rolled back, given back
    with database.session() as session:
        assert session.exec(select(func.count()).select_from(AuditEvent)).one() == 1
    assert writer_is_free(database)


def test_concurrent_writers_all_land(database: db.Database) -> None:
    def write(index: int) -> None:
        for step in range(10):
            with database.session() as session:
                session.add(
                    AuditEvent(at=utcnow(), actor=f"w{index}", action=f"{step}", details={})
                )
                session.commit()

    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(write, range(16)))
    with database.session() as session:
        assert session.exec(select(func.count()).select_from(AuditEvent)).one() == 160
    assert writer_is_free(database)


def test_postgres_needs_no_writer_lock(postgres_admin_url: str) -> None:
    database = db.Database(postgres_admin_url, pool_size=1)
    try:
        assert database.writer is None
    finally:
        database.dispose()
