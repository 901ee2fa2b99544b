"""The cluster moves under a rollout, end to end: `controlplane serve` with its own tick, the
local cluster, Prometheus and the simulators. Someone scales stable to zero by hand in the
middle of a pause; the control plane notices within a few ticks, says who did what in a
`drift` event, restores stable, and moves no traffic meanwhile."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from controlplane.simulate import harness
from controlplane.simulate.server import ServerConfig
from tests.e2e.stack import HEALTHY, Stack, open_stack

pytestmark = [pytest.mark.e2e, pytest.mark.cluster, pytest.mark.prometheus, pytest.mark.slow]

STRATEGY = {
    "steps": [
        {"kind": "set_weight", "weight": 50},
        {"kind": "pause", "duration_seconds": 600},
        {"kind": "set_weight", "weight": 100},
    ]
}


@pytest.fixture
def stack(request: pytest.FixtureRequest, kubeconfig: str, tmp_path: Path) -> Iterator[Stack]:
    canary: ServerConfig = request.param
    with open_stack(kubeconfig, tmp_path, canary) as opened:
        opened.kubeconfig = kubeconfig  # type: ignore[attr-defined]
        yield opened


def kubectl(stack: Stack, *args: str) -> str:
    done = subprocess.run(
        [harness.kubectl(), "--kubeconfig", stack.kubeconfig, "-n", stack.namespace, *args],  # type: ignore[attr-defined]
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


@pytest.mark.parametrize("stack", [HEALTHY], indirect=True)
def test_stable_scaled_to_zero_mid_pause_is_restored_with_an_event(stack: Stack) -> None:
    rollout_id = stack.start_v2(STRATEGY, requests_per_second=20)
    deadline = time.monotonic() + 120
    while stack.api.get(f"/v1/rollouts/{rollout_id}").json()["step_index"] < 1:
        assert time.monotonic() < deadline
        time.sleep(0.5)
    weight = stack.api.get(f"/v1/rollouts/{rollout_id}").json()["weight"]
    kubectl(stack, "scale", "deployment", "chat-v1", "--replicas=0")
    scaled = time.monotonic()
    weights = set()
    while True:
        rollout = stack.api.get(f"/v1/rollouts/{rollout_id}").json()
        weights.add(rollout["weight"])
        v1 = json.loads(kubectl(stack, "get", "deployment", "chat-v1", "-o", "json"))
        if v1["spec"]["replicas"] == 2 and v1["status"].get("readyReplicas") == 2:
            break
        assert time.monotonic() - scaled < 60, "stable was not restored"
        time.sleep(0.5)
    restored = time.monotonic() - scaled
    print(f"stable scaled to 0 by hand: back at 2 ready after {restored:.1f}s")  # noqa: T201
    assert weights == {weight}, "no traffic moved while stable was short"
    drift = [e for e in stack.events(rollout_id) if e["kind"] == "drift"]
    assert drift, "the drift was said"
    assert "Deployment chat-v1 stable replicas 0 instead of 2" in drift[0]["message"]
    final = stack.api.get(f"/v1/rollouts/{rollout_id}").json()
    assert (final["phase"], final["step_index"]) == ("progressing", 1), "the pause goes on"
