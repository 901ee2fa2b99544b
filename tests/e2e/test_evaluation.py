"""The evaluation step end to end on the real parts: a gateway-api model on the local
cluster (kwok pods, a real HTTPRoute), simulated vLLM servers that answer the starter
suites from a knowledge table (one per version, each with its own forgetting and safety
knobs) reached through each version's Service address, and `controlplane serve` with its
own tick. v1 is stable; v2 forgot 10% of the general suite, v3 complies with one red-team
probe v1 refuses, v4 is healthy up to sampling noise. The first two are rolled back before
the route ever gives them weight; the third passes and takes its traffic steps."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from controlplane.evals import starter_path
from controlplane.simulate import harness
from controlplane.simulate.process import free_port, running_servers
from controlplane.simulate.server import ServerConfig
from tests.e2e.stack import open_adapter_stack

pytestmark = [pytest.mark.e2e, pytest.mark.cluster, pytest.mark.slow]

KNOWLEDGE = f"{starter_path('general')},{starter_path('safety')}"
NOISE = {"noise": 0.01}  # healthy versions still flip an answer now and then
VERSIONS: dict[str, dict[str, Any]] = {
    "v1": {**NOISE, "seed": 1},
    "v2": {**NOISE, "seed": 2, "forget": 0.10},
    "v3": {**NOISE, "seed": 3, "comply_ids": ["safe-007"]},
    "v4": {**NOISE, "seed": 4},
}
STRATEGY = {
    "steps": [
        {"kind": "evaluation", "suite": "starter", "concurrency": 8},
        {"kind": "set_weight", "weight": 50},
        {"kind": "pause", "duration_seconds": 2},
        {"kind": "set_weight", "weight": 100},
    ]
}


def jsonl(path: Path) -> list[dict[str, Any]]:
    lines = path.read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip() and not line.startswith("#")]


@dataclass
class EvalStack:
    api: httpx.Client
    namespace: str

    def roll_out(self, version: str) -> dict[str, Any]:
        started = self.api.post(
            "/v1/models/chat/rollouts", json={"version": version, "strategy": STRATEGY}
        )
        assert started.status_code == 201, started.text
        rollout_id = started.json()["id"]
        return harness.wait_for_state(
            self.api, rollout_id, {"succeeded", "rolled_back", "paused"}, timeout=240
        )

    def events(self, rollout_id: int) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.api.get(
            f"/v1/rollouts/{rollout_id}/events", params={"limit": 500}
        ).json()["items"]
        return list(reversed(items))

    def runs(self, rollout_id: int, items: str = "regressed") -> list[dict[str, Any]]:
        runs: list[dict[str, Any]] = self.api.get(
            f"/v1/rollouts/{rollout_id}/evaluations", params={"items": items}
        ).json()
        return runs


@contextmanager
def open_eval_stack(kubeconfig: str, workdir: Path) -> Iterator[EvalStack]:
    configs = [
        ServerConfig(
            version=version,
            time_scale=0.01,
            seed=index,
            knowledge=KNOWLEDGE,
            answer_knobs=json.dumps(knobs),
        )
        for index, (version, knobs) in enumerate(VERSIONS.items(), start=1)
    ]
    name = f"e2e-eval-{secrets.token_hex(3)}"
    token = secrets.token_hex(16)
    with harness.namespace(kubeconfig, name), running_servers(configs) as servers:
        addresses = workdir / "addresses.json"
        addresses.write_text(
            json.dumps({f"service/{name}/chat-{s.config.version}": s.url for s in servers})
        )
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(workdir),
            "CONTROLPLANE_ADMIN_TOKEN": token,
            "CONTROLPLANE_DATABASE_URL": f"sqlite:///{workdir / 'cp.db'}",
            "CONTROLPLANE_KUBECONFIG": kubeconfig,
            "CONTROLPLANE_RECONCILE_INTERVAL_SECONDS": "1",
            "CONTROLPLANE_POD_ADDRESS_MAP": str(addresses),
        }
        control_plane = harness.ControlPlane(env, free_port(), workdir / "server.log")
        control_plane.start()
        api = httpx.Client(
            base_url=control_plane.url, timeout=30, headers={"Authorization": f"Bearer {token}"}
        )
        try:
            model = {
                "name": "chat",
                "namespace": name,
                "image": "vllm/vllm-openai:v0.11.0",
                "replicas": 2,
                "routing_mode": "gateway-api",
                "gateway": "gw",
            }
            assert api.post("/v1/models", json=model).status_code == 201
            for version in VERSIONS:
                body = {"version": version, "artifact_uri": f"s3://models/chat/{version}"}
                assert api.post("/v1/models/chat/versions", json=body).status_code == 201
            items = jsonl(starter_path("general")) + jsonl(starter_path("safety"))
            suite = api.post("/v1/eval-suites", json={"name": "starter", "items": items})
            assert suite.status_code == 201, suite.text
            first = api.post("/v1/models/chat/rollouts", json={"version": "v1"}).json()
            harness.wait_for_state(api, first["id"], {"succeeded"}, timeout=120)
            yield EvalStack(api, name)
        finally:
            api.close()
            control_plane.stop()


@pytest.fixture
def stack(kubeconfig: str, tmp_path: Path) -> Iterator[EvalStack]:
    with open_eval_stack(kubeconfig, tmp_path) as opened:
        yield opened


def test_the_gate_stops_forgetting_and_unsafe_canaries_before_any_traffic(
    stack: EvalStack,
) -> None:
    # v2 forgot 10% of the general items: rolled back, the route never gave it weight
    forgetful = stack.roll_out("v2")
    assert forgetful["state"] == "rolled_back", forgetful["reason"]
    assert "evaluation failed" in forgetful["reason"]
    assert "general" in forgetful["reason"]
    assert max(e["weight"] for e in stack.events(forgetful["id"])) == 0
    (run,) = stack.runs(forgetful["id"])
    assert run["status"] == "done"
    regressed = [i for i in run["items"] if i["tag"] == "general"]
    assert len(regressed) >= 20  # ~30 of the 300 general items, less those v1 got wrong
    shown = regressed[0]
    assert shown["stable"]["passed"] is True
    assert shown["canary"]["passed"] is False
    assert shown["prompt"]
    assert shown["canary"]["answer"] != shown["stable"]["answer"]
    cost = run["cost"]
    assert cost["prompts"] == 2 * 350  # both sides, nothing to reuse yet
    assert cost["prompt_tokens"] > 0
    assert cost["completion_tokens"] > 0
    assert "prompts" in forgetful["reason"]

    # v3 complies with one probe v1 refuses: rolled back on that one item
    unsafe = stack.roll_out("v3")
    assert unsafe["state"] == "rolled_back", unsafe["reason"]
    assert "safety" in unsafe["reason"]
    assert max(e["weight"] for e in stack.events(unsafe["id"])) == 0
    (run,) = stack.runs(unsafe["id"])
    assert [i["item_id"] for i in run["items"] if i["tag"] == "safety"] == ["safe-007"]
    assert run["cost"]["reused"] == 350  # v1's answers from the first run
    assert run["cost"]["prompts"] == 350

    # v4 is healthy: it passes and takes its traffic steps to promotion
    healthy = stack.roll_out("v4")
    assert healthy["state"] == "succeeded", healthy["reason"]
    messages = [e["message"] for e in stack.events(healthy["id"])]
    passed = next(m for m in messages if m.startswith("evaluation passed"))
    assert "prompts" in passed
    assert "tokens" in passed
    assert any("weight 50% in force" in m for m in messages)
    assert max(e["weight"] for e in stack.events(healthy["id"])) == 100


def test_an_adapter_that_forgot_is_rolled_back_before_the_rewrite_gives_it_weight(
    kubeconfig: str, tmp_path: Path
) -> None:
    """The same gate on a base pool: the suite goes to the pods that hold each adapter,
    under each adapter's name; the forgetful adapter never gets a share of the name."""
    answers = {"chat-v1": {**NOISE, "seed": 1}, "chat-v2": {**NOISE, "seed": 2, "forget": 0.1}}
    settings = {"knowledge": KNOWLEDGE, "adapter_answers": json.dumps(answers)}
    with open_adapter_stack(kubeconfig, tmp_path, pod_settings=settings) as stack:
        items = jsonl(starter_path("general")) + jsonl(starter_path("safety"))
        suite = stack.api.post("/v1/eval-suites", json={"name": "starter", "items": items})
        assert suite.status_code == 201, suite.text
        stack.register("v2")
        rollout_id = stack.roll_out("v2", STRATEGY)
        done = stack.wait(rollout_id, "rolled_back", "succeeded", "paused")
        assert done["state"] == "rolled_back", done["reason"]
        assert "evaluation failed" in done["reason"]
        assert "general" in done["reason"]
        events = stack.events(rollout_id)
        assert max(e["weight"] for e in events) == 0
        assert stack.rewrite() == [("chat-v1", 100)]
        runs = stack.api.get(f"/v1/rollouts/{rollout_id}/evaluations").json()
        assert len([i for i in runs[0]["items"] if i["tag"] == "general"]) >= 20
