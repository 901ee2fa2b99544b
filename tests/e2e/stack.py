"""The end-to-end stack as one context manager: a namespace on the local cluster, simulated
vLLM servers for v1 and the canary, a real Prometheus scraping them by version, and
`controlplane serve` as a child process with its own reconcile tick. On entry v1 has been
deployed to stable through the API; v2 is registered and waits for :meth:`Stack.start_v2`."""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from controlplane.simulate import harness
from controlplane.simulate.process import RunningServer, free_port, running_servers
from controlplane.simulate.prometheus import PrometheusServer, prometheus_server, version_jobs
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
