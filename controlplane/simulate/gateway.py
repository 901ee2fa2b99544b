"""A stand-in for the inference gateway and its endpoint picker, in front of a base pool's
simulated pods: it follows what the cluster says, not the control plane.

Each half second it reads, with kubectl, the model's InferenceModelRewrite (whichever of the
two groups the cluster serves) and the pool's pods that are Ready. Clients' requests for the
model name are sent, as the endpoint picker does, to a target picked at random by the
rewrite's weights (per request), on a Ready pod (round robin), with the request's ``model``
rewritten to the target. It records what llm-d's endpoint picker exports, under its names
and labels (``llm_d_epp_request_total``, ``..._error_total``, ``..._duration_seconds``,
``..._ttft_seconds``, ``..._ntpot_seconds`` with ``model_name`` and ``target_model_name``),
from the latencies the simulated server drew (its ``x-simulated-*`` headers: the server
sleeps only ``time_scale`` of them), and serves them on ``/metrics`` for Prometheus. It
counts the requests a pod answered with 404 (an adapter it did not hold): a pod that takes
an adapter's traffic before it holds it shows up there.
"""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from controlplane.simulate.metrics import CONTENT_TYPE, Histogram, _labels, _number

REWRITE_RESOURCES = (
    "inferencemodelrewrites.llm-d.ai",
    "inferencemodelrewrites.inference.networking.x-k8s.io",
)
# llm-d-router's buckets (pkg/epp/metrics)
GENERAL_LATENCY = (
    0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2, 3, 4, 5, 6, 8, 10, 15, 20,
    30, 45, 60, 120, 180, 240, 300, 360, 480, 600, 900, 1200, 1800, 2700, 3600,
)  # fmt: skip
TTFT_BUCKETS = (
    0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2, 3, 4, 5, 6, 8, 10, 15, 20,
    30, 45, 60, 120,
)  # fmt: skip
NTPOT_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10)


@dataclass
class EppMetrics:
    """The endpoint picker's per-request metrics, by (model_name, target_model_name)."""

    requests: Counter[tuple[str, str]] = field(default_factory=Counter)
    errors: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    duration: dict[tuple[str, str], Histogram] = field(default_factory=dict)
    ttft: dict[tuple[str, str], Histogram] = field(default_factory=dict)
    ntpot: dict[tuple[str, str], Histogram] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _histogram(
        self, family: dict[tuple[str, str], Histogram], name: str, buckets: tuple[float, ...],
        key: tuple[str, str], **extra: str,
    ) -> Histogram:  # fmt: skip
        if key not in family:
            labels = {"model_name": key[0], "target_model_name": key[1], **extra}
            family[key] = Histogram(name, "", buckets, labels)
        return family[key]

    def touch(self, model: str, target: str) -> None:
        """Create a target's series at zero, so that increase() sees its first requests."""
        with self.lock:
            self.requests[(model, target)] += 0
            self.errors[(model, target, "500")] += 0

    def record(
        self, model: str, target: str, *, status: int, ttft: float, latency: float, tokens: int
    ) -> None:
        key = (model, target)
        with self.lock:
            self.requests[key] += 1
            if status >= 400:
                self.errors[(model, target, str(status))] += 1
                return
            name = "llm_d_epp_request_duration_seconds"
            self._histogram(self.duration, name, GENERAL_LATENCY, key).observe(latency)
            self._histogram(
                self.ttft, "llm_d_epp_request_ttft_seconds", TTFT_BUCKETS, key, streaming="true"
            ).observe(ttft)
            self._histogram(
                self.ntpot, "llm_d_epp_request_ntpot_seconds", NTPOT_BUCKETS, key
            ).observe(max(0.0, latency - ttft) / max(1, tokens - 1))

    def render(self) -> str:
        with self.lock:
            lines = ["# TYPE llm_d_epp_request_total counter"]
            for (model, target), n in sorted(self.requests.items()):
                labels = _labels([("model_name", model), ("target_model_name", target)])
                lines.append(f"llm_d_epp_request_total{labels} {_number(n)}")
            lines.append("# TYPE llm_d_epp_request_error_total counter")
            for (model, target, code), n in sorted(self.errors.items()):
                labels = _labels(
                    [("error_code", code), ("model_name", model), ("target_model_name", target)]
                )
                lines.append(f"llm_d_epp_request_error_total{labels} {_number(n)}")
            for family in (self.duration, self.ttft, self.ntpot):
                for index, (_, histogram) in enumerate(sorted(family.items())):
                    rendered = histogram.render()
                    lines += rendered[1:] if index else rendered  # one HELP/TYPE per name
            return "\n".join(lines) + "\n"


class Gateway:
    """Load for ``model`` through the rewrite, onto the pool's Ready pods."""

    def __init__(
        self,
        *,
        kubectl: str,
        kubeconfig: str,
        namespace: str,
        model: str,
        pool_selector: str,
        urls: Callable[[], dict[str, str]],
        requests_per_second: float = 20.0,
        concurrency: int = 8,
        seed: int = 7,
        poll: float = 0.5,
    ) -> None:
        self.kubectl, self.kubeconfig = kubectl, kubeconfig
        self.namespace, self.model, self.pool_selector = namespace, model, pool_selector
        self.urls = urls
        self.rate, self.concurrency, self.poll = requests_per_second, concurrency, poll
        self.rng = random.Random(seed)  # noqa: S311 - a simulation
        self.metrics = EppMetrics()
        self.targets: list[tuple[str, int]] = []  # the rewrite's weights, as last read
        self.ready: list[str] = []  # the pool's Ready pods, as last read
        self.sent: Counter[tuple[str, str]] = Counter()  # (target, pod)
        self.not_held: Counter[tuple[str, str]] = Counter()  # 404s: (target, pod)
        self.unrouted = 0  # requests with no target or no Ready pod
        self.stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._server: ThreadingHTTPServer | None = None
        self._turn = 0

    # --- what the cluster says ----------------------------------------------------------

    def _kubectl(self, *args: str) -> dict[str, Any] | None:
        done = subprocess.run(  # noqa: S603 - kubectl, fixed arguments
            [self.kubectl, "--kubeconfig", self.kubeconfig, "-n", self.namespace, *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        if done.returncode != 0:
            return None
        parsed: dict[str, Any] = json.loads(done.stdout)
        return parsed

    def read_cluster(self) -> None:
        for resource in REWRITE_RESOURCES:
            found = self._kubectl("get", resource, self.model, "-o", "json")
            if found is not None:
                targets = []
                for rule in found.get("spec", {}).get("rules") or []:
                    matches = [m.get("model", {}).get("value") for m in rule.get("matches") or []]
                    if matches and self.model not in matches:
                        continue
                    targets = [
                        (str(t["modelRewrite"]), int(t.get("weight", 1)))
                        for t in rule.get("targets") or []
                    ]
                    break
                self.targets = targets
                break
        else:
            self.targets = []
        pods = self._kubectl("get", "pods", "-l", self.pool_selector, "-o", "json") or {}
        self.ready = sorted(
            p["metadata"]["name"]
            for p in pods.get("items") or []
            if not p["metadata"].get("deletionTimestamp")
            and any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in (p.get("status") or {}).get("conditions") or []
            )
        )
        for target, _ in self.targets:
            self.metrics.touch(self.model, target)

    # --- sending ------------------------------------------------------------------------

    def pick(self) -> tuple[str, str, str] | None:
        """A target by the rewrite's weights, and a Ready pod with a server (round robin)."""
        targets, urls = self.targets, self.urls()
        pods = [p for p in self.ready if p in urls]
        total = sum(w for _, w in targets)
        if not targets or total <= 0 or not pods:
            return None
        draw = self.rng.uniform(0, total)
        target = targets[-1][0]
        for name, weight in targets:
            draw -= weight
            if draw < 0:
                target = name
                break
        self._turn += 1
        pod = pods[self._turn % len(pods)]
        return target, pod, urls[pod]

    async def _send(self, client: httpx.AsyncClient) -> None:
        picked = self.pick()
        if picked is None:
            self.unrouted += 1
            return
        target, pod, url = picked
        self.sent[(target, pod)] += 1
        try:
            response = await client.post(
                f"{url}/v1/completions",
                json={"model": target, "prompt": "Say something plausible."},
                timeout=30,
            )
        except httpx.HTTPError:
            self.metrics.record(self.model, target, status=503, ttft=0, latency=0, tokens=1)
            return
        if response.status_code == 404:
            self.not_held[(target, pod)] += 1
        headers = response.headers
        self.metrics.record(
            self.model,
            target,
            status=response.status_code,
            ttft=float(headers.get("x-simulated-ttft", 0)),
            latency=float(headers.get("x-simulated-latency", 0)),
            tokens=int(headers.get("x-simulated-tokens", 1)),
        )

    async def _load(self) -> None:
        limits = httpx.Limits(max_connections=self.concurrency)
        async with httpx.AsyncClient(limits=limits, trust_env=False) as client:
            in_flight: set[asyncio.Task[None]] = set()
            period = 1.0 / self.rate
            next_at = time.monotonic()
            while not self.stopping.is_set():
                now = time.monotonic()
                if now < next_at:
                    await asyncio.sleep(min(next_at - now, 0.05))
                    continue
                next_at += period
                if len(in_flight) >= self.concurrency:
                    await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                task = asyncio.create_task(self._send(client))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
            if in_flight:
                await asyncio.wait(in_flight, timeout=30)

    def _follow(self) -> None:
        while not self.stopping.is_set():
            with suppress(Exception):  # a failed look is retried at the next poll
                self.read_cluster()
            self.stopping.wait(self.poll)

    # --- serving the metrics ------------------------------------------------------------

    def serve_metrics(self, port: int) -> None:
        metrics = self.metrics

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = metrics.render().encode()
                self.send_response(200 if self.path == "/metrics" else 404)
                self.send_header("Content-Type", CONTENT_TYPE)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                with suppress(BrokenPipeError, ConnectionResetError):  # a scraper gone
                    self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._threads.append(threading.Thread(target=self._server.serve_forever, daemon=True))

    def start(self) -> Gateway:
        self.read_cluster()
        self._threads += [
            threading.Thread(target=self._follow, daemon=True),
            threading.Thread(target=lambda: asyncio.run(self._load()), daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=30)
        self._threads = []

    def __enter__(self) -> Gateway:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def share(self, target: str) -> float:
        """The share of the requests sent so far that went to ``target``."""
        total = sum(self.sent.values())
        return sum(n for (t, _), n in self.sent.items() if t == target) / total if total else 0.0
