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

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from controlplane.simulate import harness
from tests.e2e.stack import (
    ADAPTER_STRATEGY,
    AdapterStack,
    at,
    harness_wait,
    open_adapter_stack,
)

pytestmark = [pytest.mark.e2e, pytest.mark.cluster, pytest.mark.prometheus, pytest.mark.slow]


@pytest.fixture
def stack(kubeconfig: str, tmp_path: Path) -> Iterator[AdapterStack]:
    with open_adapter_stack(kubeconfig, tmp_path) as opened:
        yield opened


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
    bad = stack.roll_out("v2", ADAPTER_STRATEGY)
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
    good = stack.roll_out("v3", ADAPTER_STRATEGY)
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
