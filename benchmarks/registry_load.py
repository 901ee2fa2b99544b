"""Registry load: 10,000 versions registered and read back by 50 concurrent clients.

Starts a real `controlplane serve` process per backend (a SQLite file, then a throwaway
PostgreSQL server), drives it over HTTP from 50 concurrent asyncio clients, and prints
p50/p99 latency and throughput for each phase:

    healthz   the baseline: a request that touches no database (same server, same run)
    register  POST /v1/models/{m}/versions, 10,000 distinct versions
    get       GET  /v1/models/{m}/versions/{v}, every version by name, shuffled
    list      GET  /v1/models/{m}/versions?limit=100&cursor=..., random pages of 100

`ratio` is the phase's p50 over the healthz p50 of the same server: it says what the
database work costs, independent of how fast this machine is. Client and server share the
machine's cores, so absolute figures are a floor, not a capacity plan.

    python -m benchmarks.registry_load [--versions 10000] [--clients 50]
                                       [--backends sqlite,postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support import postgres

ADMIN = "bench-admin-token"
MODEL = "bench"


@dataclass
class PhaseResult:
    name: str
    latencies: list[float]
    elapsed: float
    errors: int

    def row(self, baseline_p50: float | None) -> str:
        lat = sorted(self.latencies)
        p50 = statistics.median(lat) * 1000
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000
        rps = len(lat) / self.elapsed
        ratio = f"{p50 / baseline_p50:6.1f}x" if baseline_p50 else "   1.0x"
        return (
            f"  {self.name:<9} {len(lat):>7} {p50:>9.2f} {p99:>9.2f} {rps:>10.0f} {ratio:>8}"
            f" {self.errors:>7}"
        )


async def run_phase(
    name: str,
    requests: list[Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]],
    *,
    base_url: str,
    clients: int,
    expect: int,
) -> PhaseResult:
    queue: asyncio.Queue[Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]] = asyncio.Queue()
    for request in requests:
        queue.put_nowait(request)
    latencies: list[float] = []
    errors = 0

    async def worker() -> None:
        nonlocal errors
        headers = {"Authorization": f"Bearer {ADMIN}"}
        async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=60) as http:
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

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return PhaseResult(name, latencies, time.perf_counter() - started, errors)


@contextmanager
def server(database_url: str) -> Iterator[str]:
    port = postgres.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTROLPLANE_")}
    env |= {
        "CONTROLPLANE_ADMIN_TOKEN": ADMIN,
        "CONTROLPLANE_DATABASE_URL": database_url,
        "CONTROLPLANE_DATABASE_POOL_SIZE": "20",
        "CONTROLPLANE_LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "controlplane", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise RuntimeError("server did not become ready")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


async def bench_backend(base_url: str, versions: int, clients: int) -> list[PhaseResult]:
    headers = {"Authorization": f"Bearer {ADMIN}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers) as http:
        created = await http.post(
            "/v1/models",
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

    names = [f"v{i}" for i in range(versions)]

    def register(name: str) -> Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]:
        body = {
            "version": name,
            "artifact_uri": f"s3://models/{MODEL}/{name}",
            "labels": {"team": "nlp"},
            "metadata": {"eval": {"mmlu": random.random()}, "dataset_sha256": "9f" * 32},
        }
        return lambda http: http.post(f"/v1/models/{MODEL}/versions", json=body)

    def get(name: str) -> Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]:
        return lambda http: http.get(f"/v1/models/{MODEL}/versions/{name}")

    def page(cursor: str | None) -> Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]:
        params = {"limit": "100", **({"cursor": cursor} if cursor else {})}
        return lambda http: http.get(f"/v1/models/{MODEL}/versions", params=params)

    results = [
        await run_phase(
            "healthz",
            [lambda http: http.get("/healthz")] * 5000,
            base_url=base_url,
            clients=clients,
            expect=200,
        ),
        await run_phase(
            "register", [register(n) for n in names], base_url=base_url, clients=clients, expect=201
        ),
    ]
    shuffled = random.sample(names, len(names))
    results.append(
        await run_phase(
            "get", [get(n) for n in shuffled], base_url=base_url, clients=clients, expect=200
        )
    )
    cursors: list[str | None] = [None]
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=60) as http:
        while True:
            body = (await page(cursors[-1])(http)).json()
            if not body["next_cursor"]:
                break
            cursors.append(body["next_cursor"])
    assert len(cursors) == -(-versions // 100), "a full walk must see every version once"
    picks = [random.choice(cursors) for _ in range(2000)]
    results.append(
        await run_phase(
            "list", [page(c) for c in picks], base_url=base_url, clients=clients, expect=200
        )
    )
    return results


def report(backend: str, results: list[PhaseResult]) -> None:
    baseline = statistics.median(results[0].latencies) * 1000
    print(f"\n{backend}")
    print(
        f"  {'phase':<9} {'requests':>7} {'p50 ms':>9} {'p99 ms':>9} {'req/s':>10} "
        f"{'ratio':>8} {'errors':>7}"
    )
    for index, result in enumerate(results):
        print(result.row(None if index == 0 else baseline))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--versions", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--backends", default="sqlite,postgres")
    args = parser.parse_args()
    random.seed(7)
    print(
        f"registry load: {args.versions} versions, {args.clients} concurrent clients, "
        f"one server process, {os.cpu_count()} cores shared by client and server"
    )
    for backend in args.backends.split(","):
        if backend == "sqlite":
            with (
                tempfile.TemporaryDirectory() as tmp,
                server(f"sqlite:///{Path(tmp) / 'bench.db'}") as url,
            ):
                report("sqlite", asyncio.run(bench_backend(url, args.versions, args.clients)))
        elif backend == "postgres":
            with postgres.postgres_server() as admin_url:
                database = postgres.create_database(admin_url, "bench")
                with server(database) as url:
                    report("postgres", asyncio.run(bench_backend(url, args.versions, args.clients)))
        else:
            raise SystemExit(f"unknown backend {backend!r}: use sqlite and/or postgres")


if __name__ == "__main__":
    main()
