"""Registry load, side by side with MLflow's model registry: the same operations, the same
client, one run.

Starts a real `controlplane serve` (SQLite, one worker) and a real `mlflow server` (SQLite,
one worker: MLflow installed from PyPI into its own virtualenv outside the repository, in
~/.cache/controlplane/mlflow-<version>, on first use), one after the other, and drives
each over HTTP from the same 50 concurrent asyncio clients (keep-alive connections of the
lean client in benchmarks/http1.py):

    healthz       the floor: a request that touches no database (/healthz, /health)
    register      10,000 versions of one model (POST /v1/models/{m}/versions;
                  POST /api/2.0/mlflow/model-versions/create), each with a label and two
                  metadata entries (MLflow: three tags)
    get           every version by name, shuffled (GET /v1/models/{m}/versions/{v};
                  GET /api/2.0/mlflow/model-versions/get)
    get, 1 client the same reads from one client, one at a time: what a read costs
                  when nothing waits in line
    list          2,000 random pages of 100 (GET /v1/models/{m}/versions?limit=100&cursor=;
                  GET /api/2.0/mlflow/model-versions/search?max_results=100&page_token=)

and prints p50/p99 latency and throughput of each, and the ratios: throughput (ours over
MLflow's) and p50 latency (MLflow's over ours); above 1, the control plane is faster.
The control plane is called with an operator token (a database token, as a CI job would
hold; not the bootstrap admin token), MLflow without authentication (its default).

"server ms" is the control plane's own time per request (p50 of its ``Server-Timing``
header, CONTROLPLANE_SERVER_TIMING=true: from the parsed request to the start of the
answer; see controlplane/api/timing.py); under load it includes waiting for the event
loop and the GIL beside 49 other requests.

With ``--backends sqlite,postgres`` the control plane also runs on a throwaway
PostgreSQL server (same phases; MLflow is compared on SQLite only). Client and servers
share the machine's cores, so absolute figures are a floor, not a capacity plan; the
ratios compare two servers measured minutes apart on the same machine.

    python -m benchmarks.registry_load [--versions 10000] [--clients 50]
                                       [--backends sqlite,postgres] [--workers 1]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from benchmarks.http1 import Answer, Client
from controlplane.simulate.process import free_port
from tests.support import postgres

ADMIN = "bench-admin-token"
MODEL = "bench"
MLFLOW_VERSION = "3.17.2"
CACHE = Path(os.environ.get("CONTROLPLANE_CACHE", Path.home() / ".cache" / "controlplane"))

CONTROLPLANE = [sys.executable, "-m", "controlplane"]
Request = Callable[[Client], Awaitable[Answer]]


@dataclass
class PhaseResult:
    name: str
    latencies: list[float]
    elapsed: float
    errors: int
    server_ms: list[float] = field(default_factory=list)
    client_cpu: float = 0.0  # seconds of CPU this (client) process spent in the phase

    @property
    def p50_ms(self) -> float:
        return statistics.median(self.latencies) * 1000

    @property
    def p99_ms(self) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.elapsed

    @property
    def client_cpu_ms(self) -> float:
        return self.client_cpu / len(self.latencies) * 1000

    @property
    def server_p50_ms(self) -> float | None:
        return statistics.median(self.server_ms) if self.server_ms else None


async def run_phase(
    name: str,
    requests: list[Request],
    *,
    base_url: str,
    headers: dict[str, str],
    clients: int,
    expect: int,
) -> PhaseResult:
    queue: asyncio.Queue[Request] = asyncio.Queue()
    for request in requests:
        queue.put_nowait(request)
    latencies: list[float] = []
    server_ms: list[float] = []
    errors = 0

    async def worker() -> None:
        nonlocal errors
        async with Client(base_url, headers=headers) as http:
            while True:
                try:
                    request = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                started = time.perf_counter()
                response = await request(http)
                latencies.append(time.perf_counter() - started)
                if response.status_code != expect:
                    errors += 1
                timing = response.headers.get("server-timing", "")
                if timing.startswith("app;dur="):
                    server_ms.append(float(timing.removeprefix("app;dur=")))

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return PhaseResult(
        name,
        latencies,
        time.perf_counter() - started,
        errors,
        server_ms,
        time.process_time() - cpu,
    )


# ---------------------------------------------------------------------------------------
# the two registries: the same operations, each in its own API


class Registry:
    """One server's API for the phases: set up, then requests by version index."""

    name: str
    health_path: str
    headers: dict[str, str]

    async def setup(self, http: Client) -> None:
        raise NotImplementedError

    def register(self, index: int) -> Request:
        raise NotImplementedError

    def get(self, index: int) -> Request:
        raise NotImplementedError

    def page(self, token: str | None) -> Request:
        raise NotImplementedError

    def next_token(self, body: dict[str, object]) -> str | None:
        raise NotImplementedError

    register_status = 200


def _metadata() -> dict[str, object]:
    return {"eval": {"mmlu": round(random.random(), 6)}, "dataset_sha256": "9f" * 32}


class ControlPlane(Registry):
    name = "controlplane"
    health_path = "/healthz"
    register_status = 201

    def __init__(self) -> None:
        self.headers = {"Authorization": f"Bearer {ADMIN}"}

    async def setup(self, http: Client) -> None:
        admin = {"Authorization": f"Bearer {ADMIN}"}
        created = await http.post(
            "/v1/models",
            headers=admin,
            json={
                "name": MODEL,
                "namespace": "llm",
                "image": "vllm/vllm-openai:v0.11.0",
                "gpus_per_replica": 1,
                "replicas": 2,
                "gpu_budget": 4,
            },
        )
        created.raise_for_status()
        token = await http.post(
            "/v1/tokens", headers=admin, json={"name": "bench-ci", "role": "operator"}
        )
        token.raise_for_status()
        self.headers = {"Authorization": f"Bearer {token.json()['token']}"}

    def register(self, index: int) -> Request:
        body = {
            "version": f"v{index}",
            "artifact_uri": f"s3://models/{MODEL}/v{index}",
            "labels": {"team": "nlp"},
            "metadata": _metadata(),
        }
        return lambda http: http.post(f"/v1/models/{MODEL}/versions", json=body)

    def get(self, index: int) -> Request:
        return lambda http: http.get(f"/v1/models/{MODEL}/versions/v{index}")

    def page(self, token: str | None) -> Request:
        params = {"limit": "100", **({"cursor": token} if token else {})}
        return lambda http: http.get(f"/v1/models/{MODEL}/versions", params=params)

    def next_token(self, body: dict[str, object]) -> str | None:
        token = body.get("next_cursor")
        return str(token) if token else None


class MLflow(Registry):
    name = "MLflow"
    health_path = "/health"
    api = "/api/2.0/mlflow"

    def __init__(self) -> None:
        self.headers = {}

    async def setup(self, http: Client) -> None:
        created = await http.post(f"{self.api}/registered-models/create", json={"name": MODEL})
        created.raise_for_status()

    def register(self, index: int) -> Request:
        metadata = _metadata()
        body = {
            "name": MODEL,
            "source": f"s3://models/{MODEL}/v{index}",
            "tags": [
                {"key": "team", "value": "nlp"},
                {"key": "eval.mmlu", "value": str(metadata["eval"]["mmlu"])},  # type: ignore[index]
                {"key": "dataset_sha256", "value": str(metadata["dataset_sha256"])},
            ],
        }
        return lambda http: http.post(f"{self.api}/model-versions/create", json=body)

    def get(self, index: int) -> Request:
        # MLflow numbers versions itself, from 1 in the order they were created
        params = {"name": MODEL, "version": str(index + 1)}
        return lambda http: http.get(f"{self.api}/model-versions/get", params=params)

    def page(self, token: str | None) -> Request:
        params = {
            "filter": f"name='{MODEL}'",
            "max_results": "100",
            **({"page_token": token} if token else {}),
        }
        return lambda http: http.get(f"{self.api}/model-versions/search", params=params)

    def next_token(self, body: dict[str, object]) -> str | None:
        token = body.get("next_page_token")
        return str(token) if token else None


async def bench(
    registry: Registry, base_url: str, versions: int, clients: int
) -> list[PhaseResult]:
    async with Client(base_url) as http:
        await registry.setup(http)

    def phase(
        name: str, requests: list[Request], expect: int, *, clients: int = clients
    ) -> Awaitable[PhaseResult]:
        return run_phase(
            name,
            requests,
            base_url=base_url,
            headers=registry.headers,
            clients=clients,
            expect=expect,
        )

    results = [
        await phase("healthz", [lambda http: http.get(registry.health_path)] * 5000, 200),
        await phase(
            "register",
            [registry.register(i) for i in range(versions)],
            registry.register_status,
        ),
    ]
    shuffled = random.sample(range(versions), versions)
    results.append(await phase("get", [registry.get(i) for i in shuffled], 200))
    serial = shuffled[: min(versions, 2000)]
    results.append(await phase("get, 1 client", [registry.get(i) for i in serial], 200, clients=1))
    tokens: list[str | None] = [None]
    async with Client(base_url, headers=registry.headers) as http:
        while True:
            response = await registry.page(tokens[-1])(http)
            response.raise_for_status()
            token = registry.next_token(response.json())
            if token is None:
                break
            tokens.append(token)
    assert len(tokens) == -(-versions // 100), f"{registry.name}: a walk must see every page"
    picks = [random.choice(tokens) for _ in range(2000)]
    results.append(await phase("list", [registry.page(t) for t in picks], 200))
    return results


# ---------------------------------------------------------------------------------------
# servers


def _wait_ready(process: subprocess.Popen[bytes], url: str, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the server exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the server and the processes it started (its own process group)."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@contextmanager
def controlplane_server(database_url: str, workdir: Path, workers: int) -> Iterator[str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTROLPLANE_")}
    env |= {
        "CONTROLPLANE_ADMIN_TOKEN": ADMIN,
        "CONTROLPLANE_DATABASE_URL": database_url,
        "CONTROLPLANE_DATABASE_POOL_SIZE": "20",
        "CONTROLPLANE_LOG_LEVEL": "WARNING",
        "CONTROLPLANE_RECONCILE_ENABLED": "false",
        "CONTROLPLANE_SERVER_TIMING": "true",
    }
    log = workdir / "controlplane.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*CONTROLPLANE, "serve", "--port", str(port), "--workers", str(workers)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(process, f"{url}/readyz", log, 60)
        yield url
    finally:
        _stop(process)


def _uv() -> str | None:
    found = shutil.which("uv")
    cached = CACHE / "uv" / "bin" / "uv"
    return found or (str(cached) if cached.exists() else None)


def ensure_mlflow() -> Path:
    """MLflow's `mlflow` command, installed from PyPI into its own virtualenv on first use
    (with uv when there is one, else venv and pip); a finished install is marked, so an
    interrupted one is started over."""
    home = CACHE / f"mlflow-{MLFLOW_VERSION}"
    mlflow = home / "bin" / "mlflow"
    marker = home / ".installed"
    if marker.exists() and mlflow.exists():
        return mlflow
    print(f"installing MLflow {MLFLOW_VERSION} into {home} (once)", flush=True)
    shutil.rmtree(home, ignore_errors=True)
    uv = _uv()
    requirement = f"mlflow=={MLFLOW_VERSION}"
    if uv:
        env = os.environ | {"UV_PYTHON_DOWNLOADS": "never"}
        python = f"{sys.base_prefix}/bin/python3"
        subprocess.run([uv, "venv", "--quiet", "--python", python, str(home)], env=env, check=True)
        subprocess.run(
            [
                uv,
                "pip",
                "install",
                "--quiet",
                "--python",
                str(home / "bin" / "python"),
                requirement,
            ],
            env=env,
            check=True,
        )
    else:
        subprocess.run([sys.executable, "-m", "venv", str(home)], check=True)
        subprocess.run(
            [str(home / "bin" / "pip"), "install", "--quiet", "--no-input", requirement],
            check=True,
        )
    marker.write_text(MLFLOW_VERSION + "\n")
    return mlflow


@contextmanager
def mlflow_server(mlflow: Path, workdir: Path) -> Iterator[str]:
    port = free_port()
    env = os.environ | {
        # nothing that phones home, nor the job runner's background consumers (they would
        # take CPU from the server being measured)
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    log = workdir / "mlflow.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                str(mlflow),
                "server",
                *("--backend-store-uri", f"sqlite:///{workdir / 'mlflow.db'}"),
                *("--default-artifact-root", str(workdir / "mlflow-artifacts")),
                *("--workers", "1", "--host", "127.0.0.1", "--port", str(port)),
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(process, f"{url}/health", log, 180)
        yield url
    finally:
        _stop(process)


# ---------------------------------------------------------------------------------------
# report


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def report_side_by_side(ours: list[PhaseResult], theirs: list[PhaseResult]) -> None:
    print(
        f"\n  {'operation':<14} | {'controlplane p50':>16} {'p99':>8} {'req/s':>7}"
        f" {'server ms':>9} | {'MLflow p50':>10} {'p99':>8} {'req/s':>7} |"
        f" {'req/s x':>7} {'p50 x':>6} | {'client cpu ms':>13} | errors"
    )
    for mine, other in zip(ours, theirs, strict=True):
        print(
            f"  {mine.name:<14} | {mine.p50_ms:>16.2f} {mine.p99_ms:>8.1f}"
            f" {mine.throughput:>7.0f} {_ms(mine.server_p50_ms):>9} |"
            f" {other.p50_ms:>10.2f} {other.p99_ms:>8.1f} {other.throughput:>7.0f} |"
            f" {mine.throughput / other.throughput:>6.1f}x {other.p50_ms / mine.p50_ms:>5.1f}x"
            f" | {mine.client_cpu_ms:>5.2f} / {other.client_cpu_ms:>5.2f}"
            f" | {mine.errors}/{other.errors}"
        )


def report_alone(backend: str, results: list[PhaseResult]) -> None:
    print(f"\n  controlplane on {backend}")
    print(
        f"  {'operation':<14} | {'p50':>8} {'p99':>8} {'req/s':>7} {'server ms':>9}"
        f" | {'client cpu ms':>13} | errors"
    )
    for result in results:
        print(
            f"  {result.name:<14} | {result.p50_ms:>8.2f} {result.p99_ms:>8.1f}"
            f" {result.throughput:>7.0f} {_ms(result.server_p50_ms):>9}"
            f" | {result.client_cpu_ms:>13.2f} | {result.errors}"
        )


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min), {five:.1f} (5 min)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--versions", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--backends", default="sqlite,postgres", help="sqlite and/or postgres")
    parser.add_argument("--workers", type=int, default=1, help="the control plane's on PostgreSQL")
    args = parser.parse_args()
    backends = args.backends.split(",")
    if unknown := set(backends) - {"sqlite", "postgres"}:
        raise SystemExit(f"unknown backends {sorted(unknown)}: use sqlite and/or postgres")
    mlflow = ensure_mlflow() if "sqlite" in backends else None
    random.seed(7)
    print(
        f"registry load: {args.versions} versions, {args.clients} concurrent clients, "
        f"{os.cpu_count()} cores shared by clients and servers; MLflow {MLFLOW_VERSION}"
    )
    if "sqlite" in backends:
        assert mlflow is not None
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            print(f"controlplane on SQLite: starting, {load()}", flush=True)
            with controlplane_server(f"sqlite:///{workdir / 'bench.db'}", workdir, 1) as url:
                ours = asyncio.run(bench(ControlPlane(), url, args.versions, args.clients))
            print(f"MLflow on SQLite: starting, {load()}", flush=True)
            with mlflow_server(mlflow, workdir) as url:
                theirs = asyncio.run(bench(MLflow(), url, args.versions, args.clients))
            print(f"done, {load()}")
        print("\nSQLite, one worker each (x: the control plane over MLflow; above 1 is faster)")
        report_side_by_side(ours, theirs)
    if "postgres" in backends:
        try:
            postgres.find_bindir()
        except postgres.PostgresUnavailableError as error:
            if not os.environ.get("CONTROLPLANE_TEST_POSTGRES_URL"):
                print(f"\nPostgreSQL skipped: {error}")
                return
        print(f"\ncontrolplane on PostgreSQL: starting, {load()}", flush=True)
        with (
            tempfile.TemporaryDirectory() as tmp,
            postgres.postgres_server() as admin_url,
        ):
            database = postgres.create_database(admin_url, "bench")
            with controlplane_server(database, Path(tmp), args.workers) as url:
                results = asyncio.run(bench(ControlPlane(), url, args.versions, args.clients))
        report_alone(f"PostgreSQL, {args.workers} worker(s)", results)


if __name__ == "__main__":
    main()
