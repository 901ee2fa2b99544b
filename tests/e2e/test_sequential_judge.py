"""The sequential judge end to end, at traffic the fixed-sample judge could never judge: the
canary gets far fewer requests per look interval than the old ``min_samples`` (100), yet a
regressed canary is rolled back and a healthy one promoted without a person, because the
evidence accumulates over the step and every look stays valid."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from controlplane.simulate.server import ServerConfig
from tests.e2e.stack import DOUBLED_TTFT, HEALTHY, Stack, open_stack

pytestmark = [pytest.mark.e2e, pytest.mark.cluster, pytest.mark.prometheus, pytest.mark.slow]

INTERVAL = 5
OLD_MIN_SAMPLES = 100  # the fixed-sample judge's TTFT floor per look window
LOW_TRAFFIC = 10  # requests per second in all; the canary takes a third (replicas routing)
STRATEGY = {
    "steps": [
        {"kind": "set_weight", "weight": 10},
        {
            "kind": "analysis",
            "interval_seconds": INTERVAL,
            "count": 3,
            "max_duration_seconds": 240,
            "consecutive_error_limit": 2,
            "metrics": ["ttft"],
        },
        {"kind": "set_weight", "weight": 100},
    ]
}


@pytest.fixture
def stack(request: pytest.FixtureRequest, kubeconfig: str, tmp_path: Path) -> Iterator[Stack]:
    canary: ServerConfig = request.param
    with open_stack(kubeconfig, tmp_path, canary) as opened:
        yield opened


def analysis_looks(stack: Stack, rollout_id: int) -> list[dict[str, Any]]:
    items = stack.api.get(f"/v1/rollouts/{rollout_id}/measurements").json()["items"]
    return sorted((m for m in items if m["step_index"] == 1), key=lambda m: m["at"])


def canary_requests_per_window(looks: list[dict[str, Any]]) -> float:
    """The canary's TTFT observations per look interval, over the step (cumulative counts
    of the last look, divided by the looks taken)."""
    last = looks[-1]["metrics"][0]
    return float(last["canary_samples"]) / len(looks)


@pytest.mark.parametrize("stack", [DOUBLED_TTFT], indirect=True)
def test_a_regressed_canary_on_thin_traffic_is_rolled_back(stack: Stack) -> None:
    rollout_id = stack.start_v2(STRATEGY, requests_per_second=LOW_TRAFFIC)
    done = stack.wait(rollout_id, "succeeded", "rolled_back", "paused", timeout=300)
    assert done["state"] == "rolled_back", done["reason"]
    looks = analysis_looks(stack, rollout_id)
    assert canary_requests_per_window(looks) < OLD_MIN_SAMPLES
    ttft = looks[-1]["metrics"][0]
    assert ttft["verdict"] == "fail"
    assert ttft["judge"] == "sequential"
    assert ttft["effect_lower"] > ttft["margin"], "the whole interval is beyond the margin"
    assert "worse than stable by more than the margin" in done["reason"]


@pytest.mark.parametrize("stack", [HEALTHY], indirect=True)
def test_a_healthy_canary_on_thin_traffic_is_promoted_without_a_person(stack: Stack) -> None:
    rollout_id = stack.start_v2(STRATEGY, requests_per_second=LOW_TRAFFIC)
    done = stack.wait(rollout_id, "succeeded", "rolled_back", "paused", timeout=360)
    assert done["state"] == "succeeded", done["reason"]
    events = stack.events(rollout_id)
    assert not any(e["phase"] == "paused" for e in events), "no person was needed"
    assert all(e["actor"] == "system" for e in events if e["kind"] != "created")
    looks = analysis_looks(stack, rollout_id)
    assert canary_requests_per_window(looks) < OLD_MIN_SAMPLES
    ttft = looks[-1]["metrics"][0]
    assert ttft["verdict"] == "pass"
    assert ttft["power"] >= 0.9, "it had the traffic to catch the stated regression"
    assert ttft["effect_lower"] <= ttft["margin"]
    # while it was thin, the looks said what they still needed
    thin = [m["metrics"][0] for m in looks if m["verdict"] == "inconclusive"]
    assert all(t["inconclusive"] == "too_few" and t["needed"] > 0 for t in thin)
