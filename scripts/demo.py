"""The demo: a real rollout end to end, on SQLite and the local Kubernetes cluster.

What runs, all on this machine:

- the local cluster (``hack/cluster/cluster.sh up``; or ``$KUBECONFIG`` when set): the
  model's versions become real Deployments with GPU requests, scheduled on kwok GPU nodes;
- three simulated vLLM servers (v1, v2 and a regressed v3: +250 ms time to first token)
  standing in for the pods' containers, scraped every second by a real Prometheus with the
  model/version labels our scrape config uses;
- ``controlplane serve`` on SQLite, with its reconcile loop, the Kubernetes driver and
  Prometheus analysis; every step below is a ``controlplane`` CLI call against it;
- a load generator that follows the weight in force, sending that share of requests to the
  canary's server.

The story: v1 is deployed straight to stable; v2 is canaried 25% -> analysis -> 50% ->
analysis -> 100% and promoted; v3 is canaried, fails its first analysis on TTFT and is
rolled back by itself, traffic first, with the evidence in its history.

    make demo                       # or: .venv/bin/python scripts/demo.py [--summary out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx

from controlplane.simulate import load
from controlplane.simulate.process import free_port, running_servers
from controlplane.simulate.prometheus import ScrapeJob, prometheus_server
from controlplane.simulate.server import ServerConfig

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CLI = [str(BIN / "controlplane")]
NAMESPACE = f"llm-demo-{secrets.token_hex(3)}"  # one per run, deleted at the end
STRATEGY = {
    "steps": [
        {"kind": "set_weight", "weight": 25},
        {"kind": "analysis", "interval_seconds": 10, "count": 2, "metrics": ["ttft", "error_rate"]},
        {"kind": "set_weight", "weight": 50},
        {"kind": "analysis", "interval_seconds": 10, "count": 2, "metrics": ["ttft", "error_rate"]},
        {"kind": "set_weight", "weight": 100},
    ]
}


def say(text: str) -> None:
    print(f"\n\033[1m## {text}\033[0m", flush=True)


@contextmanager
def cluster() -> Iterator[str]:
    if os.environ.get("KUBECONFIG"):
        yield os.environ["KUBECONFIG"]
        return
    script = REPO / "hack" / "cluster" / "cluster.sh"
    was_up = subprocess.run([script, "status"], capture_output=True, check=False).returncode == 0
    up = subprocess.run([script, "up"], capture_output=True, text=True, check=False)
    if up.returncode != 0:
        sys.exit(f"could not start the local cluster:\n{up.stderr[-3000:]}")
    try:
        yield up.stdout.strip().splitlines()[-1]
    finally:
        if not was_up and not os.environ.get("DEMO_KEEP_CLUSTER"):
            subprocess.run([script, "down"], capture_output=True, check=False)


def kubectl() -> str:
    cache = Path(os.environ.get("CONTROLPLANE_CACHE", Path.home() / ".cache" / "controlplane"))
    built = cache / "k8s-v1.36.3" / "bin" / "kubectl"
    return str(built) if built.exists() else (shutil.which("kubectl") or "kubectl")


@contextmanager
def demo_namespace(kubeconfig: str) -> Iterator[None]:
    tool = kubectl()
    manifest = json.dumps(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    )
    subprocess.run(
        [tool, "--kubeconfig", kubeconfig, "apply", "--server-side", "-f", "-"],
        input=manifest,
        text=True,
        capture_output=True,
        check=True,
    )
    for _ in range(100):  # a new namespace takes pods once its ServiceAccount exists
        sa = subprocess.run(
            [tool, "--kubeconfig", kubeconfig, "-n", NAMESPACE, "get", "serviceaccount", "default"],
            capture_output=True,
            check=False,
        )
        if sa.returncode == 0:
            break
        time.sleep(0.2)
    try:
        yield
    finally:
        subprocess.run(
            [tool, "--kubeconfig", kubeconfig, "delete", "namespace", NAMESPACE, "--wait=false"],
            capture_output=True,
            check=False,
        )


@contextmanager
def api_server(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*CLI, "serve", "--port", env["PORT"]], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        url = env["CONTROLPLANE_URL"]
        for _ in range(300):
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None:
                sys.exit(f"the API server exited:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
        yield process
    finally:
        process.terminate()
        process.wait(timeout=30)


def cli(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    print(f"$ controlplane {' '.join(args)}", flush=True)
    result = subprocess.run([*CLI, *args], env=env, text=True, check=False)
    if check and result.returncode != 0:
        sys.exit(f"controlplane {args[0]} {args[1]} failed with exit code {result.returncode}")
    return result


class Traffic:
    """Load that follows the live rollout's weight: that share goes to the canary server."""

    def __init__(self, env: dict[str, str]) -> None:
        self.api = httpx.Client(
            base_url=env["CONTROLPLANE_URL"],
            timeout=5,
            headers={"Authorization": f"Bearer {env['CONTROLPLANE_TOKEN']}"},
        )
        self.stop = threading.Event()
        self.sent = 0
        self.rollout_id: int | None = None
        self.weight = 0.0
        self.thread: threading.Thread | None = None

    def _weight(self) -> float:
        return self.weight

    def _follow(self) -> None:
        while not self.stop.is_set():
            if self.rollout_id is not None:
                with suppress(httpx.HTTPError, KeyError, ValueError):
                    self.weight = float(
                        self.api.get(f"/v1/rollouts/{self.rollout_id}").json()["weight"]
                    )
            time.sleep(0.5)

    def start(self, stable_url: str, canary_url: str, rollout_id: int) -> None:
        self.stop_now()
        self.stop.clear()
        self.rollout_id, self.weight = rollout_id, 0.0
        threading.Thread(target=self._follow, daemon=True).start()

        def loop() -> None:
            while not self.stop.is_set():  # bounded chunks: at most 400 requests / 2 s each
                report = load.run(
                    stable_url,
                    canary_url,
                    self._weight,
                    requests=400,
                    seconds=2,
                    concurrency=8,
                    model="chat",
                )
                self.sent += report.total

        self.thread = threading.Thread(target=loop, daemon=True)
        self.thread.start()

    def stop_now(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=30)
            self.thread = None


def rollout(
    env: dict[str, str], traffic: Traffic, servers: dict[str, str], version: str, stable: str | None
) -> dict[str, Any]:
    args = ["rollout", "start", "chat", version, "-o", "json"]
    if stable is not None:
        args += ["--strategy", json.dumps(STRATEGY)]
    print(f"$ controlplane {' '.join(a if a[0] != '{' else repr(a) for a in args)}", flush=True)
    started = subprocess.run([*CLI, *args], env=env, text=True, capture_output=True, check=True)
    rollout_id = json.loads(started.stdout)["id"]
    if stable is not None:
        traffic.start(servers[stable], servers[version], rollout_id)
    cli(env, "rollout", "status", str(rollout_id), "--watch", "--timeout", "300")
    traffic.stop_now()
    final = json.loads(cli_capture(env, "rollout", "status", str(rollout_id), "-o", "json"))
    print(
        f"=> rollout {rollout_id}: {final['phase']}"
        + (f" ({final['reason']})" if final["reason"] else ""),
        flush=True,
    )
    return dict(final)


def cli_capture(env: dict[str, str], *args: str) -> str:
    return subprocess.run([*CLI, *args], env=env, text=True, capture_output=True, check=True).stdout


def main() -> int:
    parser = argparse.ArgumentParser(description="controlplane demo: a real rollout end to end")
    parser.add_argument("--summary", type=Path, help="write what happened as JSON here")
    args = parser.parse_args()
    started = time.monotonic()
    token = secrets.token_hex(16)
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cp-demo-")))
        say("the local Kubernetes cluster (etcd, kube-apiserver, scheduler, kwok GPU nodes)")
        kubeconfig = stack.enter_context(cluster())
        stack.enter_context(demo_namespace(kubeconfig))
        print(f"kubeconfig: {kubeconfig}; namespace {NAMESPACE}")

        say("three simulated vLLM servers and a Prometheus scraping them every second")
        configs = [
            ServerConfig(version="v1", time_scale=0.05, seed=1),
            ServerConfig(version="v2", time_scale=0.05, seed=2),
            ServerConfig(version="v3", time_scale=0.05, seed=3, latency_offset=0.25),
        ]
        ports = [free_port() for _ in configs]
        jobs = [
            ScrapeJob(
                name=c.version,
                targets=[f"127.0.0.1:{p}"],
                labels={"namespace": NAMESPACE, "model": "chat", "version": c.version},
            )
            for c, p in zip(configs, ports, strict=True)
        ]
        prometheus = stack.enter_context(prometheus_server(jobs))
        stack.enter_context(running_servers(configs, ports=ports))
        servers = {c.version: f"http://127.0.0.1:{p}" for c, p in zip(configs, ports, strict=True)}
        print(f"prometheus: {prometheus.url}; v1, v2: healthy; v3: +250 ms time to first token")

        say("controlplane serve (SQLite, reconcile loop every second, Prometheus analysis)")
        port = str(free_port())
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONTROLPLANE_")} | {
            "PORT": port,
            "CONTROLPLANE_URL": f"http://127.0.0.1:{port}",
            "CONTROLPLANE_TOKEN": token,
            "CONTROLPLANE_ADMIN_TOKEN": token,
            "CONTROLPLANE_DATABASE_URL": f"sqlite:///{work / 'controlplane.db'}",
            "CONTROLPLANE_KUBECONFIG": kubeconfig,
            "CONTROLPLANE_PROMETHEUS_URL": prometheus.url,
            "CONTROLPLANE_RECONCILE_INTERVAL_SECONDS": "1",
        }
        stack.enter_context(api_server(env, work / "server.log"))
        traffic = Traffic(env)
        stack.callback(traffic.stop_now)

        say("register the model and three versions")
        cli(
            env,
            "models",
            "create",
            "chat",
            "--namespace",
            NAMESPACE,
            "--image",
            "vllm/vllm-openai:v0.11.0",
            "--gpus",
            "1",
            "--replicas",
            "2",
            "--gpu-budget",
            "4",
            "--arg=--model",
            "--arg={artifact_uri}",
            "-o",
            "json",
        )
        for version, mmlu in (("v1", 0.61), ("v2", 0.63), ("v3", 0.64)):
            cli(
                env,
                "versions",
                "register",
                "chat",
                version,
                "--artifact-uri",
                f"s3://models/chat/{version}",
                "--metadata",
                json.dumps({"eval": {"mmlu": mmlu}}),
                "-o",
                "json",
            )

        say("v1: the first version goes straight to stable")
        first = rollout(env, traffic, servers, "v1", None)
        say("v2: canary 25% -> analysis -> 50% -> analysis -> 100%, judged against v1")
        second = rollout(env, traffic, servers, "v2", "v1")
        say("v3: a regressed canary (slower time to first token), judged against v2")
        third = rollout(env, traffic, servers, "v3", "v2")

        say("the history")
        cli(env, "rollout", "history", "chat")
        cli(env, "rollout", "events", str(third["id"]))
        cli(env, "versions", "list", "chat")
        measurements = httpx.get(
            f"{env['CONTROLPLANE_URL']}/v1/rollouts/{third['id']}/measurements",
            headers={"Authorization": f"Bearer {token}"},
        ).json()["items"]
        if measurements:
            print(f"\nthe measurement that failed v3: {measurements[0]['summary']}")
        summary = {
            "rollouts": [first, second, third],
            "measurements_v3": measurements,
            "requests_sent": traffic.sent,
            "seconds": round(time.monotonic() - started, 1),
        }
        if args.summary:
            args.summary.write_text(json.dumps(summary, indent=2, default=str))
        ok = (first["phase"], second["phase"], third["phase"]) == (
            "succeeded",
            "succeeded",
            "rolled_back",
        )
        say(
            f"done in {summary['seconds']}s, {traffic.sent} requests: "
            + ("v1 stable, v2 promoted, v3 rolled back" if ok else "UNEXPECTED outcome")
        )
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
