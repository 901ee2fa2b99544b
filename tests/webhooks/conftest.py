"""A real HTTP receiver on 127.0.0.1, an API with the webhook routes, and a rollout to
announce."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from controlplane.api import create_app
from controlplane.config import Settings
from controlplane.db import Database
from controlplane.models import ModelVersion, Rollout, VersionStatus
from tests.conftest import ADMIN_TOKEN
from tests.factories import model_body, version_body
from tests.support.receiver import Receiver, receiving


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"webhook_allowed_cidrs": "127.0.0.0/8"})


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as state:
        yield state


@pytest.fixture
def api(settings: Settings, database: Database) -> Iterator[TestClient]:
    """The API as the bootstrap admin."""
    app = create_app(settings, database, start_reconciler=False)
    with TestClient(app, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as client:
        yield client


@pytest.fixture
def rollout(api: TestClient, database: Database) -> Rollout:
    """A pending rollout of chat v2 over stable v1, recorded through the API."""
    api.post("/v1/models", json=model_body(name="chat"))
    for version in ("v1", "v2"):
        api.post("/v1/models/chat/versions", json=version_body(version=version))
    with database.session() as session:
        v1 = session.exec(select(ModelVersion).where(ModelVersion.version == "v1")).one()
        v1.status = VersionStatus.STABLE
        session.add(v1)
        session.commit()
    response = api.post("/v1/models/chat/rollouts", json={"version": "v2"})
    assert response.status_code == 201, response.text
    with database.session() as session:
        found = session.get(Rollout, response.json()["id"])
        assert found is not None
        return found


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC) + timedelta(minutes=1)  # after anything just written

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
