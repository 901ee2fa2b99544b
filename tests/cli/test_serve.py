"""`controlplane serve --workers N`: several worker processes on one database, each a
replica; against a real server on SQLite and PostgreSQL."""

from __future__ import annotations

import concurrent.futures
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.factories import model_body, version_body
from tests.support.serve import ADMIN, CLI, serve

AUTH = {"Authorization": f"Bearer {ADMIN}"}


def worker_processes(pid: int) -> list[int]:
    """The processes uvicorn spawned to serve (not multiprocessing's resource tracker)."""
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [
        int(child)
        for child in text.split()
        if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()
    ]


def test_two_workers_answer_and_every_write_lands_once(database_url: str, tmp_path: Path) -> None:
    with serve(database_url, tmp_path / "server.log", "--workers", "2") as server:
        assert len(worker_processes(server.pid)) == 2
        with httpx.Client(base_url=server.url, headers=AUTH, timeout=60) as http:
            assert http.post("/v1/models", json=model_body(name="chat")).status_code == 201

            def register(index: int) -> int:
                with httpx.Client(base_url=server.url, headers=AUTH, timeout=60) as client:
                    body = version_body(version=f"v{index}")
                    return client.post("/v1/models/chat/versions", json=body).status_code

            with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
                statuses = list(pool.map(register, range(40)))
            assert statuses == [201] * 40
            listed = http.get("/v1/models/chat/versions", params={"limit": 100}).json()
            assert sorted(v["version"] for v in listed["items"]) == sorted(
                f"v{index}" for index in range(40)
            )
            audit = http.get(
                "/v1/audit", params={"action": "version.registered", "limit": 100}
            ).json()
            assert len(audit["items"]) == 40


def test_workers_must_be_at_least_one() -> None:
    result = subprocess.run(
        [*CLI, "serve", "--workers", "0"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2
    assert "--workers" in result.stderr


@pytest.mark.parametrize("enabled", [True, False])
def test_server_timing_is_sent_only_when_asked(
    database_url: str, tmp_path: Path, enabled: bool
) -> None:
    setting = {"server_timing": "true"} if enabled else {}
    with (
        serve(database_url, tmp_path / "server.log", **setting) as server,
        httpx.Client(base_url=server.url, headers=AUTH) as http,
    ):
        answer = http.get("/v1/models")
        assert answer.status_code == 200
        if not enabled:
            assert "server-timing" not in answer.headers
            return
        name, _, duration = answer.headers["server-timing"].partition(";dur=")
        assert name == "app"
        assert 0 < float(duration) < 10_000
        problem = http.get("/v1/models/missing")  # errors are timed too
        assert problem.status_code == 404
        assert problem.headers["server-timing"].startswith("app;dur=")
