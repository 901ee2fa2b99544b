"""The moving parts of the demo and the end-to-end tests, outside the product: the local
cluster, a namespace, a `controlplane serve` process (that can be killed and restarted), and
load that follows the live rollout's weight. It talks to the product only as a user does:
through processes and the REST API."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx

from controlplane.simulate import load

REPO = Path(__file__).resolve().parents[2]
CLUSTER_SH = REPO / "hack" / "cluster" / "cluster.sh"


@contextmanager
def local_cluster() -> Iterator[str]:
    """``$KUBECONFIG`` when set; else the local cluster (started, and stopped afterwards
    unless it was already running or DEMO_KEEP_CLUSTER is set). Yields a kubeconfig path."""
    if os.environ.get("KUBECONFIG"):
        yield os.environ["KUBECONFIG"]
        return
    status = subprocess.run([CLUSTER_SH, "status"], capture_output=True, check=False)
    up = subprocess.run([CLUSTER_SH, "up"], capture_output=True, text=True, check=False)
    if up.returncode != 0:
        raise RuntimeError(f"could not start the local cluster:\n{up.stderr[-3000:]}")
    try:
        yield up.stdout.strip().splitlines()[-1]
    finally:
        if status.returncode != 0 and not os.environ.get("DEMO_KEEP_CLUSTER"):
            subprocess.run([CLUSTER_SH, "down"], capture_output=True, check=False)


def kubectl() -> str:
    cache = Path(os.environ.get("CONTROLPLANE_CACHE", Path.home() / ".cache" / "controlplane"))
    built = cache / "k8s-v1.36.3" / "bin" / "kubectl"
    return str(built) if built.exists() else (shutil.which("kubectl") or "kubectl")


@contextmanager
def namespace(kubeconfig: str, name: str) -> Iterator[str]:
    """A namespace that accepts pods (its default ServiceAccount exists); deleted after."""
    tool = kubectl()
    manifest = json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    subprocess.run(
        [tool, "--kubeconfig", kubeconfig, "apply", "--server-side", "-f", "-"],
        input=manifest,
        text=True,
        capture_output=True,
        check=True,
    )
    for _ in range(150):
        found = subprocess.run(
            [tool, "--kubeconfig", kubeconfig, "-n", name, "get", "serviceaccount", "default"],
            capture_output=True,
            check=False,
        )
        if found.returncode == 0:
            break
        time.sleep(0.2)
    try:
        yield name
    finally:
        subprocess.run(
            [tool, "--kubeconfig", kubeconfig, "delete", "namespace", name, "--wait=false"],
            capture_output=True,
            check=False,
        )


class ControlPlane:
    """`controlplane serve` as a child process, with its environment kept so that it can be
    killed (SIGKILL, as a crash) and started again on the same database."""

    def __init__(self, env: dict[str, str], port: int, log: Path) -> None:
        self.env = env
        self.port = port
        self.log = log
        self.url = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "controlplane", "serve", "--port", str(self.port)],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"controlplane serve did not start:\n{self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        """A crash: no shutdown handlers, no goodbye."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


class Traffic:
    """Load that follows a rollout's weight in force: that share of requests goes to the
    canary's server, the rest to stable's. Bounded chunks; loopback only."""

    def __init__(self, api_url: str, token: str) -> None:
        self.api = httpx.Client(
            base_url=api_url, timeout=5, headers={"Authorization": f"Bearer {token}"}
        )
        self.stopping = threading.Event()
        self.sent = 0
        self.rollout_id: int | None = None
        self.weight = 0.0
        self._threads: list[threading.Thread] = []

    def _follow(self) -> None:
        while not self.stopping.is_set():
            if self.rollout_id is not None:
                with suppress(httpx.HTTPError, KeyError, ValueError):
                    self.weight = float(
                        self.api.get(f"/v1/rollouts/{self.rollout_id}").json()["weight"]
                    )
            time.sleep(0.5)

    def start(
        self,
        stable_url: str,
        canary_url: str,
        rollout_id: int,
        *,
        requests_per_second: float = 200,
    ) -> None:
        self.stop()
        self.stopping.clear()
        self.rollout_id, self.weight = rollout_id, 0.0
        chunk = max(1, round(requests_per_second * 2))

        def send() -> None:
            while not self.stopping.is_set():  # at most `chunk` requests per 2 s
                began = time.monotonic()
                report = load.run(
                    stable_url,
                    canary_url,
                    lambda: self.weight,
                    requests=chunk,
                    seconds=2,
                    concurrency=8,
                    model="chat",
                )
                self.sent += report.total
                self.stopping.wait(max(0.0, 2 - (time.monotonic() - began)))

        self._threads = [threading.Thread(target=t, daemon=True) for t in (self._follow, send)]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self.stopping.set()
        for thread in self._threads:
            thread.join(timeout=30)
        self._threads = []

    def close(self) -> None:
        self.stop()
        self.api.close()


def wait_for_state(
    api: httpx.Client, rollout_id: int, states: set[str], *, timeout: float = 300
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    rollout: dict[str, Any] = {}
    while time.monotonic() < deadline:
        with suppress(httpx.TransportError):
            rollout = api.get(f"/v1/rollouts/{rollout_id}").json()
            if rollout.get("state") in states:
                return rollout
        time.sleep(0.5)
    raise TimeoutError(f"rollout {rollout_id} not in {states} after {timeout}s: {rollout}")
