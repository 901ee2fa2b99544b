"""The rollout loop end to end on the real parts: Deployments on the local cluster (kwok
pods), simulated vLLM servers standing in for the pods' containers, a real Prometheus
scraping them by version, `controlplane serve` with its own tick, and load that follows the
weight in force. Each test starts from v1 stable and rolls out v2."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from controlplane.simulate.server import ServerConfig
from tests.e2e.stack import DOUBLED_TTFT, HEALTHY, MORE_ERRORS, Stack, at, open_stack

pytestmark = [pytest.mark.e2e, pytest.mark.cluster, pytest.mark.prometheus, pytest.mark.slow]


@pytest.fixture
def stack(request: pytest.FixtureRequest, kubeconfig: str, tmp_path: Path) -> Iterator[Stack]:
    canary: ServerConfig = request.param
    with open_stack(kubeconfig, tmp_path, canary) as opened:
        yield opened


@pytest.mark.parametrize("stack", [HEALTHY], indirect=True)
def test_a_healthy_canary_walks_every_step_and_is_promoted(stack: Stack) -> None:
    rollout_id = stack.start_v2()
    done = stack.wait(rollout_id, "succeeded", "rolled_back", "paused")
    assert done["state"] == "succeeded", done["reason"]
    assert (stack.version_status("v2"), stack.version_status("v1")) == ("stable", "retired")
    messages = [e["message"] for e in stack.events(rollout_id)]
    assert any("weight 33% in force" in m for m in messages)
    assert any("analysis passed at 33%" in m for m in messages)
    measurements = stack.api.get(f"/v1/rollouts/{rollout_id}/measurements").json()["items"]
    # oldest last: the eval gate's (step 0, before any traffic), then the analysis' looks,
    # at least `count` of them, the last (which covers the whole step) a pass, those before
    # it a pass or waiting for more traffic
    gate, *looks = reversed(measurements)
    assert (gate["step_index"], gate["weight"], gate["verdict"]) == (0, 0, "pass")
    assert gate["metrics"][0]["metric"] == "mmlu"
    assert len(looks) >= 2
    assert {(m["step_index"], m["weight"]) for m in looks} == {(2, 33)}
    assert looks[-1]["verdict"] == "pass"
    assert all(
        m["verdict"] == "pass" or {x.get("inconclusive") for x in m["metrics"]} <= {None, "too_few"}
        for m in looks
    )


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
    in_force = next(e for e in events if "weight 33% in force" in e["message"])
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
    while stack.api.get(f"/v1/rollouts/{rollout_id}").json()["weight"] == 0:
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
    while stack.api.get(f"/v1/rollouts/{rollout_id}").json()["weight"] == 0:
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
