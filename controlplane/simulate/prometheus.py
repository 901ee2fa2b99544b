"""A throwaway Prometheus server for the tests, from the machine's own binary.

``prometheus_server(targets)`` writes a config that scrapes the given loopback targets
every second (each group as its own job, with the ``namespace``/``model``/``version``
labels our real scrape config puts on inference pods), starts Debian's
``/usr/bin/prometheus`` (or ``$CONTROLPLANE_PROMETHEUS_BIN``) on a free loopback port with
its storage in a temporary directory, waits until it is ready, and stops it and removes
its data afterwards. ``scripts/ensure-prometheus.sh`` installs the binary when missing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from controlplane.simulate.process import free_port

ENSURE = Path(__file__).resolve().parents[2] / "scripts" / "ensure-prometheus.sh"


class PrometheusUnavailableError(RuntimeError):
    pass


def find_binary() -> str:
    configured = os.environ.get("CONTROLPLANE_PROMETHEUS_BIN")
    candidates = [configured] if configured else ["/usr/bin/prometheus", shutil.which("prometheus")]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise PrometheusUnavailableError(
        f"no Prometheus server binary found: run {ENSURE.relative_to(ENSURE.parents[1])} "
        "(installs Debian's prometheus package) or set CONTROLPLANE_PROMETHEUS_BIN"
    )


@dataclass(frozen=True)
class ScrapeJob:
    """One scrape job: loopback ``host:port`` targets sharing the same labels."""

    name: str
    targets: Sequence[str]
    labels: Mapping[str, str] = field(default_factory=dict)


def version_jobs(namespace: str, model: str, ports: Mapping[str, int]) -> list[ScrapeJob]:
    """One job per version's server on loopback, labelled as the analysis queries expect
    (namespace, model, version, and pod: one server is one pod): what the scrape config in
    manifests/monitoring does."""
    return [
        ScrapeJob(
            name=version,
            targets=[f"127.0.0.1:{port}"],
            labels={
                "namespace": namespace,
                "model": model,
                "version": version,
                "pod": f"{model}-{version}-0",
            },
        )
        for version, port in ports.items()
    ]


def config(jobs: Sequence[ScrapeJob], *, scrape_interval: str = "1s") -> dict[str, Any]:
    for job in jobs:
        for target in job.targets:
            if not target.startswith(("127.", "localhost:", "[::1]:")):
                raise ValueError(f"test scrape targets must be on loopback, not {target!r}")
    return {
        "global": {"scrape_interval": scrape_interval, "scrape_timeout": scrape_interval},
        "scrape_configs": [
            {
                "job_name": job.name,
                "static_configs": [{"targets": list(job.targets), "labels": dict(job.labels)}],
            }
            for job in jobs
        ],
    }


@dataclass
class PrometheusServer:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)

    def query(self, promql: str) -> list[dict[str, Any]]:
        """A plain instant query (for test set-up, independent of the client under test)."""
        response = httpx.get(
            f"{self.url}/api/v1/query", params={"query": promql}, timeout=5, trust_env=False
        )
        response.raise_for_status()
        result: list[dict[str, Any]] = response.json()["data"]["result"]
        return result

    def wait_until(
        self, what: str, condition: Callable[[], bool], *, timeout: float = 15.0
    ) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError(f"Prometheus at {self.url}: {what} not seen after {timeout}s")
            time.sleep(0.2)


@contextmanager
def prometheus_server(
    jobs: Sequence[ScrapeJob] = (), *, scrape_interval: str = "1s", startup_timeout: float = 30.0
) -> Iterator[PrometheusServer]:
    binary = find_binary()
    root = Path(tempfile.mkdtemp(prefix="controlplane-prom-"))
    config_file = root / "prometheus.yml"
    # JSON is YAML: no YAML writer needed
    config_file.write_text(json.dumps(config(jobs, scrape_interval=scrape_interval), indent=2))
    port = free_port()
    log = root / "prometheus.log"
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603 - the Prometheus binary, our own flags
            [
                binary,
                f"--config.file={config_file}",
                f"--storage.tsdb.path={root / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--storage.tsdb.retention.time=1h",
                "--log.level=warn",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    server = PrometheusServer(f"http://127.0.0.1:{port}", process, log)
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if process.poll() is not None:
                raise PrometheusUnavailableError(
                    f"prometheus exited with {process.returncode}: "
                    f"{log.read_text(errors='replace')[-2000:]}"
                )
            try:
                if httpx.get(f"{server.url}/-/ready", timeout=1, trust_env=False).is_success:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise PrometheusUnavailableError(f"prometheus not ready after {startup_timeout}s")
            time.sleep(0.1)
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
