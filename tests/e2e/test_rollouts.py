"""The rollout loop end to end on the real parts: Deployments on the local cluster (kwok
pods), simulated vLLM servers standing in for the pods' containers, a real Prometheus
scraping them by version, `controlplane serve` with its own tick, and load that follows the
weight in force. Each test starts from v1 stable and rolls out v2."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from controlplane.simulate import harness
from controlplane.simulate.process import RunningServer, free_port, running_servers
from controlplane.simulate.prometheus import PrometheusServer, ScrapeJob, prometheus_server
from controlplane.simulate.server import ServerConfig

pytestmark = [pytest.mark.e2e, pytest.mark.cluster, pytest.mark.prometheus, pytest.mark.slow]

ANALYSIS = {
    "kind": "analysis",
    "interval_seconds": 5,
    "count": 2,
    "consecutive_error_limit": 1,
    "metrics": ["ttft", "error_rate"],
}
STRATEGY = {
    "steps": [{"kind": "set_weight", "weight": 50}, ANALYSIS, {"kind": "set_weight", "weight": 100}]
}


@dataclass
class Stack:
    api: httpx.Client
    control_plane: harness.ControlPlane
    prometheus: PrometheusServer
    servers: dict[str, RunningServer]
    traffic: harness.Traffic
    namespace: str

    def start_v2(self) -> int:
        response = self.api.post(
            "/v1/models/chat/rollouts", json={"version": "v2", "strategy": STRATEGY}
        )
        assert response.status_code == 201, response.text
        rollout_id: int = response.json()["id"]
        self.traffic.start(self.servers["v1"].url, self.servers["v2"].url, rollout_id)
        return rollout_id

    def wait(self, rollout_id: int, *states: str, timeout: float = 180) -> dict[str, Any]:
        return harness.wait_for_state(self.api, rollout_id, set(states), timeout=timeout)

    def events(self, rollout_id: int) -> list[dict[str, Any]]:
        items = self.api.get(f"/v1/rollouts/{rollout_id}/events", params={"limit": 500}).json()
        return list(reversed(items["items"]))

    def version_status(self, version: str) -> str:
        status: str = self.api.get(f"/v1/models/chat/versions/{version}").json()["status"]
        return status


@pytest.fixture
def stack(request: pytest.FixtureRequest, kubeconfig: str, tmp_path: Path) -> Iterator[Stack]:
    canary: ServerConfig = request.param
    configs = [ServerConfig(version="v1", time_scale=0.05, seed=1), canary]
    ports = [free_port() for _ in configs]
    name = f"e2e-{secrets.token_hex(3)}"
    jobs = [
        ScrapeJob(
            name=c.version,
            targets=[f"127.0.0.1:{p}"],
            labels={"namespace": name, "model": "chat", "version": c.version},
        )
        for c, p in zip(configs, ports, strict=True)
    ]
    token = secrets.token_hex(16)
    with (
        harness.namespace(kubeconfig, name),
        prometheus_server(jobs) as prometheus,
        running_servers(configs, ports=ports) as servers,
    ):
        port = free_port()
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp_path),
            "CONTROLPLANE_ADMIN_TOKEN": token,
            "CONTROLPLANE_DATABASE_URL": f"sqlite:///{tmp_path / 'cp.db'}",
            "CONTROLPLANE_KUBECONFIG": kubeconfig,
            "CONTROLPLANE_PROMETHEUS_URL": prometheus.url,
            "CONTROLPLANE_RECONCILE_INTERVAL_SECONDS": "1",
        }
        control_plane = harness.ControlPlane(env, port, tmp_path / "server.log")
        control_plane.start()
        api = httpx.Client(
            base_url=control_plane.url, timeout=10, headers={"Authorization": f"Bearer {token}"}
        )
        traffic = harness.Traffic(control_plane.url, token)
        try:
            assert (
                api.post(
                    "/v1/models",
                    json={
                        "name": "chat",
                        "namespace": name,
                        "image": "vllm/vllm-openai:v0.11.0",
                        "gpus_per_replica": 1,
                        "replicas": 2,
                        "gpu_budget": 4,
                    },
                ).status_code
                == 201
            )
            for version in ("v1", "v2"):
                assert (
                    api.post(
                        "/v1/models/chat/versions",
                        json={"version": version, "artifact_uri": f"s3://models/chat/{version}"},
                    ).status_code
                    == 201
                )
            first = api.post("/v1/models/chat/rollouts", json={"version": "v1"}).json()
            harness.wait_for_state(api, first["id"], {"succeeded"}, timeout=120)
            yield Stack(
                api,
                control_plane,
                prometheus,
                {s.config.version: s for s in servers},
                traffic,
                name,
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


@pytest.mark.parametrize("stack", [HEALTHY], indirect=True)
def test_a_healthy_canary_walks_every_step_and_is_promoted(stack: Stack) -> None:
    rollout_id = stack.start_v2()
    done = stack.wait(rollout_id, "succeeded", "rolled_back", "paused")
    assert done["state"] == "succeeded", done["reason"]
    assert (stack.version_status("v2"), stack.version_status("v1")) == ("stable", "retired")
    messages = [e["message"] for e in stack.events(rollout_id)]
    assert any("weight 50% in force" in m for m in messages)
    assert any("analysis passed at 50%" in m for m in messages)
    measurements = stack.api.get(f"/v1/rollouts/{rollout_id}/measurements").json()["items"]
    assert len(measurements) == 2
    assert all(m["verdict"] == "pass" for m in measurements)


@pytest.mark.parametrize("stack", [DOUBLED_TTFT], indirect=True)
def test_a_canary_with_doubled_ttft_is_rolled_back_with_the_evidence(stack: Stack) -> None:
    rollout_id = stack.start_v2()
    done = stack.wait(rollout_id, "succeeded", "rolled_back", "paused")
    assert done["state"] == "rolled_back"
    assert "ttft" in done["reason"]
    assert stack.version_status("v2") == "rolled_back"
    failing = stack.api.get(f"/v1/rollouts/{rollout_id}/measurements").json()["items"][0]
    ttft = next(m for m in failing["metrics"] if m["metric"] == "ttft")
    assert ttft["verdict"] == "fail"
    assert ttft["canary_value"] > 1.5 * ttft["stable_value"]
    events = stack.events(rollout_id)
    in_force = next(e for e in events if "weight 50% in force" in e["message"])
    decided = next(e for e in events if e["phase"] == "rolling_back")
    finished = next(e for e in events if e["phase"] == "rolled_back")
    # the figures for the note: from the canary taking traffic (the breach starts showing in
    # Prometheus) to the rollback decision, and to all traffic back on stable
    print(  # noqa: T201 - the figure the issue asks for, visible with -s
        f"\nbreach -> decision {(at(decided) - at(in_force)).total_seconds():.1f}s, "
        f"-> canary gone {(at(finished) - at(in_force)).total_seconds():.1f}s"
    )


@pytest.mark.parametrize("stack", [MORE_ERRORS], indirect=True)
def test_a_canary_with_five_points_more_errors_is_rolled_back(stack: Stack) -> None:
    rollout_id = stack.start_v2()
    done = stack.wait(rollout_id, "succeeded", "rolled_back", "paused")
    assert done["state"] == "rolled_back", done["reason"]
    assert "error_rate" in done["reason"]


@pytest.mark.parametrize("stack", [HEALTHY], indirect=True)
def test_prometheus_stopped_mid_analysis_never_promotes(stack: Stack) -> None:
    rollout_id = stack.start_v2()
    stack.wait(rollout_id, "progressing")
    deadline = time.monotonic() + 60
    while stack.api.get(f"/v1/rollouts/{rollout_id}").json()["weight"] < 50:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    stack.prometheus.stop()
    done = stack.wait(rollout_id, "succeeded", "rolled_back", "paused")
    assert done["state"] == "rolled_back"
    assert "metrics unavailable" in done["reason"]
    assert stack.version_status("v1") == "stable"


@pytest.mark.parametrize("stack", [HEALTHY], indirect=True)
def test_a_killed_control_plane_resumes_without_repeating_a_traffic_move(stack: Stack) -> None:
    rollout_id = stack.start_v2()
    deadline = time.monotonic() + 60
    while stack.api.get(f"/v1/rollouts/{rollout_id}").json()["weight"] < 50:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    stack.control_plane.kill()  # SIGKILL, mid-analysis
    time.sleep(1)
    stack.control_plane.start()
    done = stack.wait(rollout_id, "succeeded", "rolled_back", "paused")
    assert done["state"] == "succeeded", done["reason"]
    moves = [e["message"] for e in stack.events(rollout_id) if "in force" in e["message"]]
    assert len(moves) == len(set(moves)), f"a traffic move was recorded twice: {moves}"
    assert any("50%" in m for m in moves)
