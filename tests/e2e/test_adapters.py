"""Adapter rollouts end to end on the real stack: the local cluster (a base pool of three
gated kwok pods and its InferencePool), one simulated vLLM per pod, a simulated gateway
that follows the InferenceModelRewrite and the pods' readiness read from the cluster,
a real Prometheus scraping the gateway's endpoint-picker metrics, and `controlplane serve`.

Checked from the API server and the pods' servers, not from the control plane's word: the
pool's Deployment is never changed and no pod is created by a rollout; a canary with a
doubled TTFT is rolled back and unloaded; a healthy one is promoted and the old adapter
unloaded; a pod deleted mid-rollout comes back holding the adapters before it is Ready, and
no request ever reaches a pod that lacks its adapter.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from controlplane.simulate import harness
from controlplane.simulate.gateway import Gateway
from controlplane.simulate.pods import PodServers
from controlplane.simulate.process import free_port
from controlplane.simulate.prometheus import PrometheusServer, ScrapeJob, prometheus_server
from controlplane.simulate.server import ServerConfig
from tests.e2e.stack import at

pytestmark = [pytest.mark.e2e, pytest.mark.cluster, pytest.mark.prometheus, pytest.mark.slow]

BASE = "meta-llama/Llama-3.1-8B-Instruct"
SELECTOR = "app=llama-base"
STRATEGY = {
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


@pytest.fixture
def stack(kubeconfig: str, tmp_path: Path) -> Iterator[AdapterStack]:
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
            config=ServerConfig(model=BASE, version="base", time_scale=0.05, max_loras=4, seed=3),
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


def first_event(events: list[dict[str, Any]], text: str) -> dict[str, Any]:
    return next(e for e in events if text in e["message"])


def test_adapter_canaries_are_rolled_back_or_promoted_on_the_pool_they_share(
    stack: AdapterStack,
) -> None:
    before = stack.pool_snapshot()
    assert stack.holding() == {("chat-v1",)}
    assert stack.rewrite() == [("chat-v1", 100)]

    # v2 doubles its time to first token: judged on the gateway's per-adapter metrics,
    # rolled back, the name back on v1 and v2 unloaded from every pod
    stack.pods.faults("chat-v2", ttft_median=0.4)
    stack.register("v2")
    bad = stack.roll_out("v2", STRATEGY)
    done = stack.wait(bad, "rolled_back", "succeeded", "paused")
    assert done["state"] == "rolled_back", done
    assert "ttft" in done["reason"]
    assert stack.rewrite() == [("chat-v1", 100)]
    assert stack.holding() == {("chat-v1",)}
    events = stack.events(bad)
    breach = at(first_event(events, "analysis failed"))
    back = first_event(events, "rollback: 0% on the canary")
    assert (at(back) - breach).total_seconds() < 5, "traffic back on stable in the same pass"
    # v2 was unloaded only in a later pass than the one that took its traffic away
    assert at(first_event(events, "rolled_back:")) > at(back)

    # v3 is healthy: promoted, v1 unloaded; a pod deleted mid-rollout comes back holding
    # both adapters before it is Ready
    stack.register("v3")
    good = stack.roll_out("v3", STRATEGY)
    harness_wait(lambda: stack.rewrite() == [("chat-v1", 50), ("chat-v3", 50)], "50%")
    victim = sorted(stack.pods.urls())[0]
    subprocess.run(
        [
            harness.kubectl(),
            "--kubeconfig",
            stack.kubeconfig,
            "-n",
            stack.namespace,
            "delete",
            "pod",
            victim,
            "--wait=false",
        ],
        check=True,
        capture_output=True,
    )
    done = stack.wait(good, "succeeded", "rolled_back", "paused")
    assert done["state"] == "succeeded", done
    assert stack.rewrite() == [("chat-v3", 100)]
    harness_wait(lambda: stack.holding() == {("chat-v3",)}, "v1 unloaded everywhere")
    assert len(stack.pods.urls()) == 3
    assert stack.gateway.not_held == {}, "a pod took an adapter's requests before holding it"
    assert stack.gateway.share("chat-v3") > 0

    # the pool's Deployment never changed; only the deleted pod was replaced, by its
    # ReplicaSet, never by the control plane
    generation, spec, uids = stack.pool_snapshot()
    assert (generation, spec) == before[:2]
    assert len(uids - before[2]) == 1
