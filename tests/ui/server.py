"""A live control plane for the page tests: the real app served by uvicorn in a thread on
a free loopback port, on a migrated SQLite file."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import uvicorn
from fastapi import FastAPI

from controlplane import db
from controlplane.api import create_app
from controlplane.config import Settings
from controlplane.simulate.process import free_port

ADMIN_TOKEN = "ui-test-admin-token"


def ui_app(database_url: str) -> FastAPI:
    settings = Settings(admin_token=ADMIN_TOKEN, database_url=database_url, reconcile_enabled=False)
    return create_app(settings, start_reconciler=False)


@contextmanager
def live_server(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Yields (base URL, database URL) of a running server; stops it after."""
    database_url = f"sqlite:///{tmp_path / 'controlplane.db'}"
    db.upgrade(database_url)
    port = free_port()
    config = uvicorn.Config(
        ui_app(database_url), host="127.0.0.1", port=port, log_level="warning", ws="none"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="ui-test-server", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    assert httpx.get(f"{url}/healthz").status_code == 200
    try:
        yield url, database_url
    finally:
        server.should_exit = True
        thread.join(timeout=10)
