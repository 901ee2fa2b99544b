"""Adapter rollouts against full-weights rollouts, on the same stack: how soon a new version
takes traffic, and how soon traffic is back on stable once a breach is decided.

Both paths run on the local cluster with `controlplane serve` (reconcile tick 1 s), a real
Prometheus and simulated vLLM servers, with the same strategy (50%, an analysis of three
looks 5 s apart, 100%) and the same regression (the canary's time to first token doubled):

- **adapters**: the model ``chat`` served as LoRA adapters on a base pool of three kwok pods
  (tests/e2e/stack.py ``open_adapter_stack``); the rollout loads the adapter on every pod
  and moves the model name's traffic with an InferenceModelRewrite;
- **full weights**: the model ``chat`` as its own Deployments (``replicas`` routing, the
  default; stable 2 replicas, 1 GPU each), the canary a new Deployment.

Every time is read from the cluster, not from the control plane's word: a thread polls the
API server every 50 ms. "Takes traffic" is the first moment the routing object sends the
canary requests (the rewrite gives the canary adapter weight; the model Service's
EndpointSlices list a ready canary pod). "Back on stable" is the first moment it no longer
does; "breach" is the moment the control plane decided (its "analysis failed" event).

What this does not measure, and why the full-weights figures are a lower bound: kwok pods
are Ready the moment they are scheduled, so no image pull and no weight loading (minutes for
an 8B model on a real GPU node) is in the full-weights "takes traffic"; the simulated
adapter load takes ``--lora-load-seconds`` (default 1 s, a rank-8 adapter from local disk),
where vLLM's real load time depends on the adapter's size and where it is read from.

    python -m benchmarks.adapter_rollouts [--runs 3] [--lora-load-seconds 1]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from controlplane.kube.client import DEPLOYMENT, POD, KubeApi, Resource, rewrite_resource
from controlplane.simulate import harness
from controlplane.simulate.server import ServerConfig
from tests.e2e.stack import (
    ADAPTER_STRATEGY,
    DOUBLED_TTFT,
    HEALTHY,
    AdapterStack,
    at,
    open_adapter_stack,
    open_stack,
)

ENDPOINTSLICE = Resource("/apis/discovery.k8s.io/v1", "endpointslices")
REWRITES = rewrite_resource("inference.networking.x-k8s.io/v1alpha2")
# the same steps on both paths (the full-weights stack would put an eval gate first)
STEPS = ADAPTER_STRATEGY


class Watch:
    """Polls a predicate on the API server every 50 ms; remembers when it first held and
    when it first stopped holding after that."""

    def __init__(self, probe: Callable[[], bool]) -> None:
        self.probe = probe
        self.first_true: float | None = None
        self.first_false_after: float | None = None
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stopping.is_set():
            held = False
            with suppress(Exception):
                held = self.probe()
            now = time.time()
            if held and self.first_true is None:
                self.first_true = now
            elif not held and self.first_true is not None and self.first_false_after is None:
                self.first_false_after = now
            self.stopping.wait(0.05)

    def __enter__(self) -> Watch:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stopping.set()
        self.thread.join(timeout=5)


@dataclass
class Run:
    path: str
    healthy: bool
    outcome: str
    to_traffic: float | None  # s from the POST to the canary taking traffic
    breach_to_stable: float | None  # s from the decided breach to traffic all on stable
    start_to_stable: float | None  # s from the POST to traffic all on stable (a bad canary)
    extra_gpus: int  # GPUs the rollout held beyond stable's, at most
    pods_created: int  # pods that did not exist before the rollout (the pool's, adapters)


@dataclass
class Results:
    runs: list[Run] = field(default_factory=list)


def _breach(events: list[dict[str, Any]]) -> datetime | None:
    for event in events:
        if "analysis failed" in event["message"]:
            return at(event)
    return None


def _canary_weight(kube: KubeApi, namespace: str, canary: str) -> bool:
    obj = kube.get(REWRITES, namespace, "chat")
    if obj is None:
        return False
    targets = obj["spec"]["rules"][0]["targets"]
    return any(t["modelRewrite"] == canary and t.get("weight", 0) > 0 for t in targets)


def _canary_endpoint(kube: KubeApi, namespace: str, canary_prefix: str) -> bool:
    slices = kube.list(ENDPOINTSLICE, namespace, label_selector="kubernetes.io/service-name=chat")
    return any(
        (endpoint.get("targetRef") or {}).get("name", "").startswith(canary_prefix)
        and (endpoint.get("conditions") or {}).get("ready", False)
        and not (endpoint.get("conditions") or {}).get("terminating", False)
        for piece in slices
        for endpoint in piece.get("endpoints") or []
    )


def adapter_runs(kube: KubeApi, kubeconfig: str, runs: int, load_seconds: float) -> list[Run]:
    results: list[Run] = []
    with (
        tempfile.TemporaryDirectory() as work,
        open_adapter_stack(kubeconfig, Path(work), lora_load_seconds=load_seconds) as stack,
    ):
        for run in range(runs * 2):
            results.append(_adapter_run(kube, stack, f"v{run + 2}", healthy=run % 2 == 0))
    return results


def _adapter_run(kube: KubeApi, stack: AdapterStack, version: str, *, healthy: bool) -> Run:
    canary = f"chat-{version}"
    stack.register(version)
    if not healthy:
        stack.pods.faults(canary, ttft_median=0.4)
    before = {p["metadata"]["uid"] for p in stack_pods(kube, stack.namespace)}
    with Watch(lambda: _canary_weight(kube, stack.namespace, canary)) as watch:
        posted = time.time()
        rollout = stack.roll_out(version, STEPS)
        done = stack.wait(rollout, "succeeded", "rolled_back", "paused", "failed")
        time.sleep(0.3)
    after = {p["metadata"]["uid"] for p in stack_pods(kube, stack.namespace)}
    return _run(
        "adapters",
        healthy,
        done,
        stack.events(rollout),
        posted,
        watch,
        extra_gpus=0,  # the pool's Deployment is never changed (checked in tests/e2e)
        pods_created=len(after - before),
    )


def stack_pods(kube: KubeApi, namespace: str) -> list[dict[str, Any]]:
    return kube.list(POD, namespace)


def _run(
    path: str,
    healthy: bool,
    done: dict[str, Any],
    events: list[dict[str, Any]],
    posted: float,
    watch: Watch,
    *,
    extra_gpus: int,
    pods_created: int,
) -> Run:
    breach = _breach(events)
    back = watch.first_false_after
    return Run(
        path=path,
        healthy=healthy,
        outcome=done["state"],
        to_traffic=None if watch.first_true is None else watch.first_true - posted,
        breach_to_stable=(
            None if breach is None or back is None else max(0.0, back - breach.timestamp())
        ),
        start_to_stable=None if healthy or back is None else back - posted,
        extra_gpus=extra_gpus,
        pods_created=pods_created,
    )


def weights_runs(kube: KubeApi, kubeconfig: str, runs: int) -> list[Run]:
    results: list[Run] = []
    for run in range(runs * 2):
        healthy = run % 2 == 0
        with tempfile.TemporaryDirectory() as work:
            canary = HEALTHY if healthy else DOUBLED_TTFT
            with open_stack(kubeconfig, Path(work), canary) as stack:
                results.append(_weights_run(kube, stack, canary, healthy=healthy))
    return results


def _weights_run(kube: KubeApi, stack: Any, canary: ServerConfig, *, healthy: bool) -> Run:
    namespace = stack.namespace
    before = {p["metadata"]["uid"] for p in stack_pods(kube, namespace)}
    peak = [0]

    def probe() -> bool:
        deployment = kube.get(DEPLOYMENT, namespace, "chat-v2")
        if deployment is not None:
            peak[0] = max(peak[0], int(deployment["spec"].get("replicas") or 0))
        return _canary_endpoint(kube, namespace, "chat-v2-")

    with Watch(probe) as watch:
        posted = time.time()
        rollout = stack.start_v2(STEPS)
        done = stack.wait(rollout, "succeeded", "rolled_back", "paused", "failed")
        time.sleep(0.3)
    after = {p["metadata"]["uid"] for p in stack_pods(kube, namespace)}
    return _run(
        "full weights",
        healthy,
        done,
        stack.events(rollout),
        posted,
        watch,
        extra_gpus=peak[0],  # one GPU a replica (tests/e2e/stack.py MODEL)
        pods_created=len(after - before),
    )


def _fmt(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def report(results: list[Run]) -> str:
    lines = [
        "seconds: median (min-max) over the runs; times read from the API server every 50 ms",
        "",
        f"{'path':<13} {'start -> canary takes traffic':>30} {'breach -> all on stable':>24} "
        f"{'start -> all on stable (bad)':>29} {'extra GPUs':>10} {'pods created':>12} "
        f"{'outcomes':>20}",
    ]
    for path in ("adapters", "full weights"):
        mine = [r for r in results if r.path == path]
        traffic = [r.to_traffic for r in mine if r.to_traffic is not None]
        breach = [r.breach_to_stable for r in mine if not r.healthy and r.breach_to_stable]
        total = [r.start_to_stable for r in mine if r.start_to_stable is not None]
        outcomes = ", ".join(
            f"{'ok' if r.healthy else 'bad'}:{r.outcome}"
            for r in mine
            if (r.healthy and r.outcome != "succeeded")
            or (not r.healthy and r.outcome != "rolled_back")
        )
        good = sum(r.healthy and r.outcome == "succeeded" for r in mine)
        bad = sum(not r.healthy and r.outcome == "rolled_back" for r in mine)
        lines.append(
            f"{path:<13} {_fmt(traffic):>30} {_fmt(breach):>24} {_fmt(total):>29} "
            f"{max((r.extra_gpus for r in mine), default=0):>10} "
            f"{max((r.pods_created for r in mine), default=0):>12} "
            f"{f'{good} promoted, {bad} rolled back':>20}"
            + (f"  (unexpected: {outcomes})" if outcomes else "")
        )
    adapters = [r.to_traffic for r in results if r.path == "adapters" and r.to_traffic]
    weights = [r.to_traffic for r in results if r.path == "full weights" and r.to_traffic]
    if adapters and weights:
        lines.append("")
        lines.append(
            "start -> traffic, adapters / full weights: "
            f"{statistics.median(adapters) / statistics.median(weights):.2f}x "
            "(full weights without image pull or weight loading: a lower bound)"
        )
    return "\n".join(lines)


@contextmanager
def cluster() -> Iterator[tuple[str, KubeApi]]:
    with harness.local_cluster() as kubeconfig:
        kube = KubeApi.from_kubeconfig(kubeconfig)
        try:
            yield kubeconfig, kube
        finally:
            kube.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="healthy and bad rollouts per path")
    parser.add_argument("--lora-load-seconds", type=float, default=1.0)
    args = parser.parse_args(argv)
    began = time.monotonic()
    with cluster() as (kubeconfig, kube):
        results = adapter_runs(kube, kubeconfig, args.runs, args.lora_load_seconds)
        results += weights_runs(kube, kubeconfig, args.runs)
    print(report(results))
    print(f"\n{len(results)} rollouts in {time.monotonic() - began:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
