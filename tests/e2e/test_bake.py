"""The watch after promotion, end to end: v2 passes its canary steps, takes all the traffic
(in replicas routing the model's Service then selects v2 alone while v1 stays warm), and
only then gets slower. The bake compares it with v1's own metrics from before the rollout,
rolls it back after promotion within about one look, and v1, warm all along, takes the
traffic back at once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from controlplane.simulate.server import ServerConfig
from tests.e2e.stack import HEALTHY, Stack, at, open_stack

pytestmark = [pytest.mark.e2e, pytest.mark.cluster, pytest.mark.prometheus, pytest.mark.slow]

INTERVAL = 5
STRATEGY = {
    "steps": [
        {"kind": "set_weight", "weight": 50},
        {"kind": "analysis", "interval_seconds": INTERVAL, "count": 2, "metrics": ["ttft"]},
        {"kind": "set_weight", "weight": 100},
        {
            "kind": "bake",
            "duration_seconds": 300,
            "interval_seconds": INTERVAL,
            "baseline_seconds": 60,
            "metrics": ["ttft"],
            "checks": {"ttft": {"margin": 0.25}},
        },
    ]
}


@pytest.fixture
def stack(request: pytest.FixtureRequest, kubeconfig: str, tmp_path: Path) -> Iterator[Stack]:
    canary: ServerConfig = request.param
    with open_stack(kubeconfig, tmp_path, canary) as opened:
        yield opened


@pytest.mark.parametrize("stack", [HEALTHY], indirect=True)
def test_a_regression_after_promotion_is_rolled_back_during_the_bake(stack: Stack) -> None:
    v1, v2 = stack.servers["v1"].url, stack.servers["v2"].url
    first = stack.api.get("/v1/models/chat/rollouts").json()["items"][-1]["id"]
    stack.traffic.start(v1, v1, first)  # a minute of v1 alone: the bake's baseline
    time.sleep(65)
    rollout_id = stack.start_v2(STRATEGY)
    deadline = time.monotonic() + 180
    while stack.api.get(f"/v1/rollouts/{rollout_id}").json()["step_index"] < 3:
        assert time.monotonic() < deadline, "never reached the bake"
        time.sleep(0.5)
    # v2 carries everything now, and from here on it is twice as slow to first token
    changed = httpx.post(f"{v2}/sim/faults", json={"ttft_median": 0.4}, timeout=5)
    assert changed.status_code == 200, changed.text
    slowed = time.monotonic()
    done = stack.wait(rollout_id, "succeeded", "rolled_back", "paused", timeout=120)
    took = time.monotonic() - slowed
    assert done["state"] == "rolled_back", done["reason"]
    assert done["reason"].startswith("rolled back after promotion"), done["reason"]
    assert stack.version_status("v2") == "rolled_back"
    assert stack.version_status("v1") == "stable", "the old version is stable again"
    events = stack.events(rollout_id)
    into_bake = next(e for e in events if e["step_index"] == 3)
    decided = next(e for e in events if e["phase"] == "rolling_back")
    looks = [
        m
        for m in stack.api.get(f"/v1/rollouts/{rollout_id}/measurements").json()["items"]
        if m["step_index"] == 3
    ]
    print(  # noqa: T201 - the figure for the note, visible with -s
        f"bake: regression caught {took:.1f}s after it began, at look {len(looks)} "
        f"({(at(decided) - at(into_bake)).total_seconds():.1f}s into the bake)"
    )
    assert took <= 4 * INTERVAL, "within about one look (plus scrape and tick)"
    failing = next(m for m in looks if m["verdict"] == "fail")
    ttft = failing["metrics"][0]
    assert ttft["judge"] == "sequential"
    assert ttft["effect_lower"] > 0.25
