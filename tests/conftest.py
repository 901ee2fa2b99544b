"""Shared fixtures: a migrated database on each backend, and API clients with tokens.

Every test that takes ``database_url`` runs twice: on a SQLite file and on a real
PostgreSQL server (marker ``postgres``). Each test gets a fresh database copied from a
template migrated once per session, so tests are isolated and fast.
"""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from controlplane import db
from controlplane.api import create_app
from controlplane.config import Settings
from tests.support import postgres

pytest_plugins = ["tests.support.cluster"]

ADMIN_TOKEN = "test-admin-token"
_counter = itertools.count()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    db.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    with postgres.postgres_server() as url:
        yield url


@pytest.fixture(scope="session")
def postgres_template(postgres_admin_url: str) -> str:
    name = "controlplane_template"
    url = postgres.create_database(postgres_admin_url, name)
    db.upgrade(url)
    return name


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated database on the test's backend."""
    if backend == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "controlplane.db"
        shutil.copyfile(template, path)
        yield f"sqlite:///{path}"
        return
    admin_url: str = request.getfixturevalue("postgres_admin_url")
    template_name: str = request.getfixturevalue("postgres_template")
    name = f"test_{next(_counter)}"
    yield postgres.create_database(admin_url, name, template=template_name)
    postgres.drop_database(admin_url, name)


@pytest.fixture
def empty_database_url(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[str]:
    """A database with no schema at all, for migration tests."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    admin_url: str = request.getfixturevalue("postgres_admin_url")
    name = f"empty_{next(_counter)}"
    yield postgres.create_database(admin_url, name)
    postgres.drop_database(admin_url, name)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        admin_token=ADMIN_TOKEN,
        database_url=database_url,
        max_body_bytes=64 * 1024,
        reconcile_enabled=False,
    )


@pytest.fixture
def database(settings: Settings) -> Iterator[db.Database]:
    database = db.Database(settings.database_url, pool_size=5)
    yield database
    database.dispose()


@pytest.fixture
def api(settings: Settings, database: db.Database) -> Iterator[TestClient]:
    """An API client authenticated as the bootstrap admin."""
    app = create_app(settings, database, start_reconciler=False)
    with TestClient(app, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as client:
        yield client


@pytest.fixture
def anonymous(settings: Settings, database: db.Database) -> Iterator[TestClient]:
    with TestClient(create_app(settings, database, start_reconciler=False)) as client:
        yield client


def token_client(api: TestClient, role: str, name: str | None = None) -> TestClient:
    """A client holding a fresh token of ``role``, created through the API."""
    name = name or f"{role}-{next(_counter)}"
    response = api.post("/v1/tokens", json={"name": name, "role": role})
    assert response.status_code == 201, response.text
    return TestClient(api.app, headers={"Authorization": f"Bearer {response.json()['token']}"})


@pytest.fixture
def viewer(api: TestClient) -> TestClient:
    return token_client(api, "viewer")


@pytest.fixture
def operator(api: TestClient) -> TestClient:
    return token_client(api, "operator")
