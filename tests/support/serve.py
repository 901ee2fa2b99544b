"""A real `controlplane serve` process on a free loopback port, for tests that talk to the
server the way users do (the CLI, raw HTTP, schemathesis)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.postgres import free_port

CLI = [sys.executable, "-m", "controlplane"]
ADMIN = "serve-admin-token"


@dataclass
class Server:
    url: str
    log: Path
    pid: int

    def cli(self, *args: str, token: str | None = ADMIN) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONTROLPLANE_")}
        env["CONTROLPLANE_URL"] = self.url
        if token is not None:
            env["CONTROLPLANE_TOKEN"] = token
        return subprocess.run(
            [*CLI, *args], env=env, capture_output=True, text=True, timeout=60, check=False
        )


@contextmanager
def serve(database_url: str, log: Path, *args: str, **settings: str) -> Iterator[Server]:
    """The server on ``database_url`` (migrated first, as `serve` does), with the admin token
    ``ADMIN``, no reconcile loop, more ``serve`` options (``args``) and more
    ``CONTROLPLANE_*`` settings by their lowercase names; its output goes to ``log``."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTROLPLANE_")}
    env |= {
        "CONTROLPLANE_ADMIN_TOKEN": ADMIN,
        "CONTROLPLANE_DATABASE_URL": database_url,
        "CONTROLPLANE_RECONCILE_ENABLED": "false",
    }
    env |= {f"CONTROLPLANE_{name.upper()}": value for name, value in settings.items()}
    with log.open("w") as log_file:
        process = subprocess.Popen(
            [*CLI, "serve", "--host", "127.0.0.1", "--port", str(port), *args],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"server did not start:\n{log.read_text()}")
            time.sleep(0.1)
        yield Server(url=url, log=log, pid=process.pid)
    finally:
        process.terminate()
        process.wait(timeout=15)
