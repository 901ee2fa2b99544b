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
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

from controlplane.evals import starter_path
from controlplane.simulate import harness
from controlplane.simulate.process import free_port, running_servers
from controlplane.simulate.prometheus import prometheus_server, version_jobs
from controlplane.simulate.server import ServerConfig

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CLI = [str(BIN / "controlplane")]
NAMESPACE = f"llm-demo-{secrets.token_hex(3)}"  # one per run, deleted at the end
STRATEGY = {
    "steps": [
        # offline quality first: no more than one MMLU point below stable, before any traffic
        {"kind": "eval_gate", "checks": [{"score": "mmlu", "max_regression": 0.01}]},
        {"kind": "set_weight", "weight": 25},
        # live quality: the starter suite's 350 prompts to both versions, paired item by item
        # (in replicas routing the canary takes traffic as soon as it runs: with gateway-api
        # routing this step would come first, at 0%)
        {"kind": "evaluation", "suite": "starter"},
        {"kind": "analysis", "interval_seconds": 10, "count": 2, "metrics": ["ttft", "error_rate"]},
        {"kind": "set_weight", "weight": 50},
        {"kind": "analysis", "interval_seconds": 10, "count": 2, "metrics": ["ttft", "error_rate"]},
        {"kind": "set_weight", "weight": 100},
    ]
}


def say(text: str) -> None:
    print(f"\n\033[1m## {text}\033[0m", flush=True)


def cli(env: dict[str, str], *args: str) -> None:
    print(f"$ controlplane {' '.join(args)}", flush=True)
    result = subprocess.run([*CLI, *args], env=env, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"controlplane {args[0]} {args[1]} failed with exit code {result.returncode}")


def cli_capture(env: dict[str, str], *args: str) -> str:
    return subprocess.run([*CLI, *args], env=env, text=True, capture_output=True, check=True).stdout


def rollout(
    env: dict[str, str],
    traffic: harness.Traffic,
    servers: dict[str, str],
    version: str,
    stable: str | None,
) -> dict[str, Any]:
    args = ["rollout", "start", "chat", version, "-o", "json"]
    if stable is not None:
        args += ["--strategy", json.dumps(STRATEGY)]
    print(f"$ controlplane {' '.join(a if a[0] != '{' else repr(a) for a in args)}", flush=True)
    rollout_id = json.loads(cli_capture(env, *args))["id"]
    if stable is not None:
        traffic.start(servers[stable], servers[version], rollout_id)
    cli(env, "rollout", "status", str(rollout_id), "--watch", "--timeout", "300")
    traffic.stop()
    final: dict[str, Any] = json.loads(
        cli_capture(env, "rollout", "status", str(rollout_id), "-o", "json")
    )
    print(
        f"=> rollout {rollout_id}: {final['state']}"
        + (f" ({final['reason']})" if final["reason"] else ""),
        flush=True,
    )
    return final


def register(env: dict[str, str]) -> None:
    say("the starter eval suite: 300 general items, 40 red-team probes, 10 over-refusal checks")
    suite = Path(tempfile.mkdtemp(prefix="cp-suite-")) / "starter.jsonl"
    suite.write_text(starter_path("general").read_text() + starter_path("safety").read_text())
    cli(env, "evals", "create", "starter", "--file", str(suite))
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


def server_configs() -> list[ServerConfig]:
    """v1 and v2 healthy, v3 slower to the first token; all three answer the starter suite
    from its knowledge table, with 1% of answers flipped (temperature 0 under batching)."""
    knowledge = f"{starter_path('general')},{starter_path('safety')}"
    answers = json.dumps({"noise": 0.01})
    return [
        ServerConfig(
            version=version,
            time_scale=0.05,
            seed=seed,
            latency_offset=0.25 if version == "v3" else 0.0,
            knowledge=knowledge,
            answer_knobs=answers,
        )
        for seed, version in enumerate(("v1", "v2", "v3"), start=1)
    ]


def show_history(
    env: dict[str, str], token: str, second: dict[str, Any], third: dict[str, Any]
) -> list[dict[str, Any]]:
    """Print what happened; returns v3's measurements, newest first."""
    say("the history")
    cli(env, "rollout", "history", "chat")
    say(f"the history of rollout {second['id']} (v2, promoted)")
    cli(env, "rollout", "events", str(second["id"]))
    cli(env, "rollout", "evals", str(second["id"]), "--items", "differ")
    say(f"the history of rollout {third['id']} (v3, rolled back)")
    cli(env, "rollout", "events", str(third["id"]))
    cli(env, "versions", "list", "chat")
    measurements: list[dict[str, Any]] = httpx.get(
        f"{env['CONTROLPLANE_URL']}/v1/rollouts/{third['id']}/measurements",
        headers={"Authorization": f"Bearer {token}"},
    ).json()["items"]
    if measurements:
        print(f"\nthe measurement that failed v3: {measurements[0]['summary']}")
    return measurements


def main() -> int:
    parser = argparse.ArgumentParser(description="controlplane demo: a real rollout end to end")
    parser.add_argument("--summary", type=Path, help="write what happened as JSON here")
    args = parser.parse_args()
    started = time.monotonic()
    token = secrets.token_hex(16)
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cp-demo-")))
        say("the local Kubernetes cluster (etcd, kube-apiserver, scheduler, kwok GPU nodes)")
        kubeconfig = stack.enter_context(harness.local_cluster())
        stack.enter_context(harness.namespace(kubeconfig, NAMESPACE))
        print(f"kubeconfig: {kubeconfig}; namespace {NAMESPACE}")

        say("three simulated vLLM servers and a Prometheus scraping them every second")
        configs = server_configs()
        ports = [free_port() for _ in configs]
        by_version = {c.version: p for c, p in zip(configs, ports, strict=True)}
        jobs = version_jobs(NAMESPACE, "chat", by_version)
        prometheus = stack.enter_context(prometheus_server(jobs))
        stack.enter_context(running_servers(configs, ports=ports))
        servers = {c.version: f"http://127.0.0.1:{p}" for c, p in zip(configs, ports, strict=True)}
        # where each version's Service answers: the simulated servers stand in for its pods
        addresses = work / "addresses.json"
        addresses.write_text(
            json.dumps({f"service/{NAMESPACE}/chat-{v}": url for v, url in servers.items()})
        )
        print(f"prometheus: {prometheus.url}; v1, v2: healthy; v3: +250 ms time to first token")

        say("controlplane serve (SQLite, reconcile loop every second, Prometheus analysis)")
        port = str(free_port())
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONTROLPLANE_")} | {
            "CONTROLPLANE_URL": f"http://127.0.0.1:{port}",
            "CONTROLPLANE_TOKEN": token,
            "CONTROLPLANE_ADMIN_TOKEN": token,
            "CONTROLPLANE_DATABASE_URL": f"sqlite:///{work / 'controlplane.db'}",
            "CONTROLPLANE_KUBECONFIG": kubeconfig,
            "CONTROLPLANE_PROMETHEUS_URL": prometheus.url,
            "CONTROLPLANE_RECONCILE_INTERVAL_SECONDS": "1",
            "CONTROLPLANE_POD_ADDRESS_MAP": str(addresses),
        }
        server = harness.ControlPlane(env, int(port), work / "server.log")
        stack.callback(server.stop)
        server.start()
        traffic = harness.Traffic(env["CONTROLPLANE_URL"], token)
        stack.callback(traffic.close)

        register(env)

        say("v1: the first version goes straight to stable")
        first = rollout(env, traffic, servers, "v1", None)
        say(
            "v2: eval gate (mmlu) -> canary 25% -> evaluation (starter suite) -> analysis -> "
            "50% -> analysis -> 100%, vs v1"
        )
        second = rollout(env, traffic, servers, "v2", "v1")
        say("v3: a regressed canary (slower time to first token), judged against v2")
        third = rollout(env, traffic, servers, "v3", "v2")

        measurements = show_history(env, token, second, third)
        summary = {
            "rollouts": [first, second, third],
            "measurements_v3": measurements,
            "requests_sent": traffic.sent,
            "seconds": round(time.monotonic() - started, 1),
        }
        if args.summary:
            args.summary.write_text(json.dumps(summary, indent=2, default=str))
        ok = (first["state"], second["state"], third["state"]) == (
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
