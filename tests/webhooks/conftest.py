"""A real HTTP receiver on 127.0.0.1, an API with the webhook routes, and a rollout to
announce."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from controlplane.api import create_app
from controlplane.api.routers import webhooks as webhooks_router
from controlplane.config import Settings
from controlplane.db import Database
from controlplane.models import ModelVersion, Rollout, VersionStatus
from tests.conftest import ADMIN_TOKEN
from tests.factories import model_body, version_body


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Receiver:
    """Records every POST. Per path: fail (500) the first N times, fail always, or be slow."""

    url: str = ""
    requests: list[Received] = field(default_factory=list)
    fail_first: dict[str, int] = field(default_factory=dict)
    always_fail: set[str] = field(default_factory=set)
    slow: dict[str, float] = field(default_factory=dict)
    released: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def to(self, path: str) -> str:
        return f"{self.url}{path}"

    def at(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.path == path]

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> int:
        with self.lock:
            self.requests.append(Received(path, headers, body, time.monotonic()))
            failing = self.fail_first.get(path, 0)
            if failing:
                self.fail_first[path] = failing - 1
        if path in self.slow:
            self.released.wait(self.slow[path])
        return 500 if failing or path in self.always_fail else 200


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            code = state.handle(self.path, dict(self.headers.items()), body)
            payload = b"receiver says no" if code >= 400 else b"ok"
            try:
                self.send_response(code)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except OSError:  # the dispatcher gave up on a slow answer
                pass

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.block_on_close = False
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.released.set()
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def api(settings: Settings, database: Database) -> Iterator[TestClient]:
    """The API as the bootstrap admin, with the webhook routes (whether or not the app
    registers them yet)."""
    app = create_app(settings, database, start_reconciler=False)
    if not any(getattr(r, "path", "").startswith("/v1/webhooks") for r in app.routes):
        app.include_router(webhooks_router.router)
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
