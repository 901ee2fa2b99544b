"""The end-to-end stack as one context manager: a namespace on the local cluster, simulated
vLLM servers for v1 and the canary, a real Prometheus scraping them by version, and
`controlplane serve` as a child process with its own reconcile tick. On entry v1 has been
deployed to stable through the API; v2 is registered and waits for :meth:`Stack.start_v2`.

:func:`open_adapter_stack` is the same for an adapter model on a base pool."""

from __future__ import annotations

import json
import secrets
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from controlplane.simulate import harness
from controlplane.simulate.gateway import Gateway
from controlplane.simulate.pods import PodServers
from controlplane.simulate.process import RunningServer, free_port, running_servers
from controlplane.simulate.prometheus import (
    PrometheusServer,
    ScrapeJob,
    prometheus_server,
    version_jobs,
)
from controlplane.simulate.server import ServerConfig

ANALYSIS = {
    "kind": "analysis",
    "interval_seconds": 5,
    "count": 2,
    "consecutive_error_limit": 1,
    "metrics": ["ttft", "error_rate"],
}
EVAL_GATE = {"kind": "eval_gate", "checks": [{"score": "mmlu", "max_regression": 0.01}]}
STRATEGY = {
    "steps": [
        EVAL_GATE,
        {"kind": "set_weight", "weight": 50},
        ANALYSIS,
        {"kind": "set_weight", "weight": 100},
    ]
}
MMLU = {"v1": 0.61, "v2": 0.62}  # v2 passes the gate: the tests are about live metrics
MODEL = {
    "name": "chat",
    "image": "vllm/vllm-openai:v0.11.0",
    "gpus_per_replica": 1,
    "replicas": 2,
    "gpu_budget": 4,
}


@dataclass
class Stack:
    api: httpx.Client
    control_plane: harness.ControlPlane
    prometheus: PrometheusServer
    servers: dict[str, RunningServer]
    traffic: harness.Traffic
    namespace: str
    token: str

    def start_v2(
        self, strategy: dict[str, Any] | None = None, *, requests_per_second: float = 200
    ) -> int:
        """Start the rollout of v2 (the stack's strategy unless another is given) with load
        that follows its weight in force, at most ``requests_per_second`` in all."""
        response = self.api.post(
            "/v1/models/chat/rollouts", json={"version": "v2", "strategy": strategy or STRATEGY}
        )
        assert response.status_code == 201, response.text
        rollout_id: int = response.json()["id"]
        self.traffic.start(
            self.servers["v1"].url,
            self.servers["v2"].url,
            rollout_id,
            requests_per_second=requests_per_second,
        )
        return rollout_id

    def wait(self, rollout_id: int, *states: str, timeout: float = 180) -> dict[str, Any]:
        return harness.wait_for_state(self.api, rollout_id, set(states), timeout=timeout)

    def events(self, rollout_id: int) -> list[dict[str, Any]]:
        items = self.api.get(f"/v1/rollouts/{rollout_id}/events", params={"limit": 500}).json()
        return list(reversed(items["items"]))

    def version_status(self, version: str) -> str:
        status: str = self.api.get(f"/v1/models/chat/versions/{version}").json()["status"]
        return status


@contextmanager
def open_stack(
    kubeconfig: str,
    workdir: Path,
    canary: ServerConfig,
    *,
    env: Mapping[str, str] | None = None,
) -> Iterator[Stack]:
    """The stack, torn down on exit. ``env`` adds to (or overrides) the server's settings;
    its log is ``workdir / "server.log"``."""
    configs = [ServerConfig(version="v1", time_scale=0.05, seed=1), canary]
    ports = [free_port() for _ in configs]
    name = f"e2e-{secrets.token_hex(3)}"
    jobs = version_jobs(name, "chat", {c.version: p for c, p in zip(configs, ports, strict=True)})
    token = secrets.token_hex(16)
    with (
        harness.namespace(kubeconfig, name),
        prometheus_server(jobs) as prometheus,
        running_servers(configs, ports=ports) as servers,
    ):
        port = free_port()
        server_env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(workdir),
            "CONTROLPLANE_ADMIN_TOKEN": token,
            "CONTROLPLANE_DATABASE_URL": f"sqlite:///{workdir / 'cp.db'}",
            "CONTROLPLANE_KUBECONFIG": kubeconfig,
            "CONTROLPLANE_PROMETHEUS_URL": prometheus.url,
            "CONTROLPLANE_RECONCILE_INTERVAL_SECONDS": "1",
            **(env or {}),
        }
        control_plane = harness.ControlPlane(server_env, port, workdir / "server.log")
        control_plane.start()
        api = httpx.Client(
            base_url=control_plane.url, timeout=10, headers={"Authorization": f"Bearer {token}"}
        )
        traffic = harness.Traffic(control_plane.url, token)
        try:
            created = api.post("/v1/models", json={**MODEL, "namespace": name})
            assert created.status_code == 201, created.text
            for version in ("v1", "v2"):
                registered = api.post(
                    "/v1/models/chat/versions",
                    json={
                        "version": version,
                        "artifact_uri": f"s3://models/chat/{version}",
                        "metadata": {"eval": {"mmlu": MMLU[version]}},
                    },
                )
                assert registered.status_code == 201, registered.text
            first = api.post("/v1/models/chat/rollouts", json={"version": "v1"}).json()
            harness.wait_for_state(api, first["id"], {"succeeded"}, timeout=120)
            yield Stack(
                api,
                control_plane,
                prometheus,
                {s.config.version: s for s in servers},
                traffic,
                name,
                token,
            )
        finally:
            traffic.close()
            api.close()
            control_plane.stop()


def at(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["at"].replace("Z", "+00:00"))


HEALTHY = ServerConfig(version="v2", time_scale=0.05, seed=2)
DOUBLED_TTFT = ServerConfig(version="v2", time_scale=0.05, seed=2, ttft_median=0.4)
MORE_ERRORS = ServerConfig(version="v2", time_scale=0.05, seed=2, error_rate=0.05)


# --- adapter models on a base pool ----------------------------------------------------

BASE = "meta-llama/Llama-3.1-8B-Instruct"
SELECTOR = "app=llama-base"
ADAPTER_STRATEGY = {
    "steps": [
        {"kind": "set_weight", "weight": 50},
        {
            "kind": "analysis",
            "interval_seconds": 5,
            "count": 3,
            "max_duration_seconds": 240,
            "consecutive_error_limit": 2,
            "metrics": ["ttft", "error_rate"],
        },
        {"kind": "set_weight", "weight": 100},
    ]
}


def manifests(namespace: str) -> list[dict[str, Any]]:
    labels = {"app": "llama-base", "sim.controlplane.dev/fault": "adapters-gate"}
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "llama-base", "namespace": namespace},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "llama-base"}},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "readinessGates": [{"conditionType": "controlplane.dev/adapters-ready"}],
                        "containers": [
                            {
                                "name": "vllm",
                                "image": "vllm/vllm-openai:v0.11.0",
                                "args": ["--model", BASE, "--enable-lora", "--max-loras", "4"],
                                "env": [
                                    {"name": "VLLM_ALLOW_RUNTIME_LORA_UPDATING", "value": "True"}
                                ],
                            }
                        ],
                    },
                },
            },
        },
        {
            "apiVersion": "inference.networking.k8s.io/v1",
            "kind": "InferencePool",
            "metadata": {"name": "llama-base", "namespace": namespace},
            "spec": {
                "selector": {"matchLabels": {"app": "llama-base"}},
                "targetPorts": [{"number": 8000}],
                "endpointPickerRef": {"name": "llama-epp", "port": {"number": 9002}},
            },
        },
    ]


def kubectl_json(kubeconfig: str, namespace: str, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [harness.kubectl(), "--kubeconfig", kubeconfig, "-n", namespace, *args, "-o", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    parsed: dict[str, Any] = json.loads(done.stdout)
    return parsed


@dataclass
class AdapterStack:
    api: httpx.Client
    pods: PodServers
    gateway: Gateway
    prometheus: PrometheusServer
    kubeconfig: str
    namespace: str

    def register(self, version: str) -> None:
        response = self.api.post(
            "/v1/models/chat/versions",
            json={
                "version": version,
                "artifact_uri": f"s3://adapters/chat/{version}",
                "artifact_kind": "lora_adapter",
                "base_model": BASE,
                "lora_rank": 8,
            },
        )
        assert response.status_code == 201, response.text

    def roll_out(self, version: str, strategy: dict[str, Any] | None = None) -> int:
        body: dict[str, Any] = {"version": version}
        if strategy is not None:
            body["strategy"] = strategy
        response = self.api.post("/v1/models/chat/rollouts", json=body)
        assert response.status_code == 201, response.text
        rollout_id: int = response.json()["id"]
        return rollout_id

    def wait(self, rollout_id: int, *states: str, timeout: float = 240) -> dict[str, Any]:
        return harness.wait_for_state(self.api, rollout_id, set(states), timeout=timeout)

    def events(self, rollout_id: int) -> list[dict[str, Any]]:
        items = self.api.get(f"/v1/rollouts/{rollout_id}/events", params={"limit": 500}).json()
        return list(reversed(items["items"]))

    def pool_snapshot(self) -> tuple[Any, Any, set[str]]:
        deployment = kubectl_json(
            self.kubeconfig, self.namespace, "get", "deployment", "llama-base"
        )
        pods = kubectl_json(self.kubeconfig, self.namespace, "get", "pods", "-l", SELECTOR)
        uids = {p["metadata"]["uid"] for p in pods["items"]}
        return deployment["metadata"]["generation"], deployment["spec"], uids

    def rewrite(self) -> list[tuple[str, int]]:
        obj = kubectl_json(
            self.kubeconfig,
            self.namespace,
            "get",
            "inferencemodelrewrites.inference.networking.x-k8s.io",
            "chat",
        )
        return [(t["modelRewrite"], t["weight"]) for t in obj["spec"]["rules"][0]["targets"]]

    def holding(self) -> set[tuple[str, ...]]:
        held = self.pods.adapters()
        return {tuple(adapters) for adapters in held.values()}


@contextmanager
def open_adapter_stack(
    kubeconfig: str,
    tmp_path: Path,
    *,
    lora_load_seconds: float = 0.0,
    pod_settings: Mapping[str, Any] | None = None,
) -> Iterator[AdapterStack]:
    """A base pool of three gated kwok pods (one simulated vLLM each, reached through the
    pod address map), a simulated gateway following the InferenceModelRewrite and exporting
    the endpoint picker's metrics to a real Prometheus, and `controlplane serve`; on entry
    the adapter model ``chat`` has v1 stable on the pool and the gateway sends load.
    ``pod_settings`` adds to every pod server's settings (e.g. a knowledge table)."""
    name = f"e2e-lora-{secrets.token_hex(3)}"
    token = secrets.token_hex(16)
    map_file = tmp_path / "pods.json"
    epp_port = free_port()
    jobs = [
        ScrapeJob(
            name="epp",
            targets=[f"127.0.0.1:{epp_port}"],
            labels={"namespace": name, "pod": "llama-epp-0"},
        )
    ]
    with harness.namespace(kubeconfig, name), prometheus_server(jobs) as prometheus:
        subprocess.run(
            [harness.kubectl(), "--kubeconfig", kubeconfig, "apply", "--server-side", "-f", "-"],
            input="\n---\n".join(json.dumps(m) for m in manifests(name)),
            text=True,
            capture_output=True,
            check=True,
        )
        pods = PodServers(
            kubectl=harness.kubectl(),
            kubeconfig=kubeconfig,
            namespace=name,
            selector=SELECTOR,
            config=ServerConfig(
                model=BASE,
                version="base",
                time_scale=0.05,
                max_loras=4,
                seed=3,
                lora_load_seconds=lora_load_seconds,
                **(pod_settings or {}),
            ),
            map_file=map_file,
        )
        gateway = Gateway(
            kubectl=harness.kubectl(),
            kubeconfig=kubeconfig,
            namespace=name,
            model="chat",
            pool_selector=SELECTOR,
            urls=pods.urls,
            requests_per_second=30,
        )
        gateway.serve_metrics(epp_port)
        port = free_port()
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp_path),
            "CONTROLPLANE_ADMIN_TOKEN": token,
            "CONTROLPLANE_DATABASE_URL": f"sqlite:///{tmp_path / 'cp.db'}",
            "CONTROLPLANE_KUBECONFIG": kubeconfig,
            "CONTROLPLANE_PROMETHEUS_URL": prometheus.url,
            "CONTROLPLANE_RECONCILE_INTERVAL_SECONDS": "1",
            "CONTROLPLANE_POD_ADDRESS_MAP": str(map_file),
        }
        control_plane = harness.ControlPlane(env, port, tmp_path / "server.log")
        with pods:
            harness_wait(lambda: len(pods.urls()) == 3, "three pod servers")
            control_plane.start()
            api = httpx.Client(
                base_url=control_plane.url,
                timeout=10,
                headers={"Authorization": f"Bearer {token}"},
            )
            try:
                created = api.post(
                    "/v1/pools",
                    json={
                        "name": "llama",
                        "namespace": name,
                        "base_model": BASE,
                        "deployment": "llama-base",
                        "inference_pool": "llama-base",
                        "max_loras": 4,
                    },
                )
                assert created.status_code == 201, created.text
                model = api.post("/v1/models", json={"name": "chat", "base_pool": "llama"})
                assert model.status_code == 201, model.text
                opened = AdapterStack(api, pods, gateway, prometheus, kubeconfig, name)
                opened.register("v1")
                first = opened.roll_out("v1")
                opened.wait(first, "succeeded", timeout=120)
                with gateway:
                    yield opened
            finally:
                api.close()
                control_plane.stop()


def harness_wait(probe: Any, what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe():
            return
        time.sleep(0.2)
    raise TimeoutError(f"timed out waiting for {what}")
