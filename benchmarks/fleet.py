"""A simulated inference fleet, minute by minute, with the noise real fleets have, behind a
metric source that answers the PromQL the analysis really sends.

Noise (all of it shared by every judge that is compared on it):

- **arrivals**: Poisson, total rate ``R`` requests/s modulated by a load wave (+-30%, a
  30-minute period, random phase), split between the versions by the weight in force and
  evenly over each version's pods;
- **latency**: per request log-normal time to first token (median 0.2 s, sigma 0.6),
  binned into vLLM's TTFT buckets; end-to-end latency log-normal (median 2 s, sigma 0.35);
  inter-token latency per token, 64 tokens a request, each request with its own speed
  (sigma 0.25) and each token jittered around it (sigma 0.25), so a request's tokens move
  together;
- **shared load**: the load wave also slows every pod of both versions together (+-8%);
- **pods**: each pod's speed is off by a factor fixed for the rollout (log sd
  ``pod_offset_sd``: 5% or 2%) and drifts minute to minute (AR(1), log sd 5%, lag-one
  correlation 0.8);
- **errors**: 0.5% of requests fail, plus shared bursts (2% chance a minute, 1 to 3 minutes
  at 5%) that hit both versions;
- **regressions** (canary only): a factor on TTFT (e2e follows through the TTFT's share of
  it), added error points, or a slow tail (the slowest 3% of requests stretched beyond the
  p97: p99 +60% while p95 does not move).

Counters are cumulative per pod, as Prometheus keeps them; a query's ``increase(...[W])``
is the exact difference over the last ``W`` seconds (no scrape jitter or extrapolation).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

from controlplane.analysis.metrics import Sample, Series
from controlplane.simulate.metrics import (
    INTER_TOKEN_BUCKETS,
    REQUEST_LATENCY_BUCKETS,
    TTFT_BUCKETS,
)

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
TTFT_MEDIAN, TTFT_SIGMA = 0.2, 0.6
E2E_MEDIAN, E2E_SIGMA = 2.0, 0.35
ITL_MEDIAN, ITL_REQUEST_SIGMA, ITL_TOKEN_SIGMA = 0.03, 0.25, 0.25
TOKENS = 64
ITL_GROUPS = 8
BASE_ERRORS = 0.005
BURST_START, BURST_RATE = 0.02, 0.05
POD_DRIFT_SD, POD_DRIFT_RHO = 0.05, 0.8
LOAD_RATE, LOAD_LATENCY, LOAD_PERIOD = 0.3, 0.08, 30.0


def _bounds(buckets: tuple[float, ...]) -> np.ndarray:
    return np.array([*buckets, math.inf])


TTFT_B = _bounds(TTFT_BUCKETS)
ITL_B = _bounds(INTER_TOKEN_BUCKETS)
E2E_B = _bounds(REQUEST_LATENCY_BUCKETS)
_SQRT2 = math.sqrt(2)


def _cdf(z: np.ndarray) -> np.ndarray:
    return 0.5 * np.vectorize(math.erfc)(-z / _SQRT2)


def bucket_probabilities(bounds: np.ndarray, median: float, sigma: float) -> np.ndarray:
    """P(bucket) for a log-normal latency (per-bucket, not cumulative)."""
    finite = bounds[:-1]
    cdf = _cdf((np.log(finite) - math.log(median)) / sigma)
    p = np.diff(np.concatenate(([0.0], cdf, [1.0])))
    return np.clip(p, 0, None) / max(p.sum(), 1e-300)


# the slow tail: requests beyond the p97 take TAIL_STRETCH times longer past it, so p95
# does not move at all and p99 is 60% higher
TAIL_FROM_Z = 1.8808  # the standard normal's 97th percentile
TAIL_STRETCH = (1.6 * math.exp(TTFT_SIGMA * 2.3263) - math.exp(TTFT_SIGMA * TAIL_FROM_Z)) / (
    math.exp(TTFT_SIGMA * 2.3263) - math.exp(TTFT_SIGMA * TAIL_FROM_Z)
)


def tail_probabilities(bounds: np.ndarray, median: float, sigma: float) -> np.ndarray:
    """P(bucket) for a log-normal whose part beyond its p97 is stretched by TAIL_STRETCH."""
    start = median * math.exp(sigma * TAIL_FROM_Z)
    finite = np.array(
        [b if b <= start else start + (b - start) / TAIL_STRETCH for b in bounds[:-1]]
    )
    cdf = _cdf((np.log(finite) - math.log(median)) / sigma)
    p = np.diff(np.concatenate(([0.0], cdf, [1.0])))
    return np.clip(p, 0, None) / max(p.sum(), 1e-300)


@dataclass(frozen=True)
class Scenario:
    name: str
    ttft_factor: float = 1.0
    error_points: float = 0.0
    slow_tail: bool = False
    pod_offset_sd: float = 0.05
    # "lognormal" (the sigma 0.6), or "mixture": 70% short prompts (median 0.12 s,
    # sigma 0.45) and 30% long ones (0.45 s, sigma 0.5), a shape no interpolation is exact on
    ttft_shape: str = "lognormal"

    @property
    def regressed(self) -> bool:
        return self.ttft_factor != 1.0 or self.error_points > 0 or self.slow_tail


@dataclass
class Pod:
    name: str
    version: str
    offset: float
    drift: float
    # cumulative counters, snapshot per minute: minute -> arrays
    history: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)


class Fleet:
    """One rollout's fleet: stable and canary pods, their counters, and the clock."""

    def __init__(
        self, scenario: Scenario, rate: float, seed: int, *, namespace: str = "bench"
    ) -> None:
        self.scenario = scenario
        self.rate = rate
        self.rng = np.random.default_rng(seed)
        self.namespace = namespace
        self.minute = 0
        self.pods: list[Pod] = []
        self.active: dict[str, int] = {"v1": 0, "v2": 0}
        self.canary_share = 0.0
        self.phase = self.rng.uniform(0, 2 * math.pi)
        self.burst_left = 0
        self._serial = 0
        self._probs: dict[tuple[str, float], np.ndarray] = {}

    # --- shape --------------------------------------------------------------------------

    def scale(self, version: str, replicas: int) -> None:
        """Pods keep their identity (and their offset) while they live."""
        live = [p for p in self.pods if p.version == version]
        while len(live) < replicas:
            self._serial += 1
            pod = Pod(
                name=f"{version}-{self._serial}",
                version=version,
                offset=float(self.rng.normal(0, self.scenario.pod_offset_sd)),
                drift=float(self.rng.normal(0, POD_DRIFT_SD)),
            )
            pod.history[self.minute] = self._zero()
            self.pods.append(pod)
            live.append(pod)
        self.active[version] = replicas

    def route(self, canary_share: float) -> None:
        self.canary_share = canary_share

    # --- time -----------------------------------------------------------------------------

    @staticmethod
    def _zero() -> dict[str, np.ndarray]:
        return {
            "ttft": np.zeros(len(TTFT_B)),
            "itl": np.zeros(len(ITL_B)),
            "e2e": np.zeros(len(E2E_B)),
            "requests": np.zeros(1),
            "errors": np.zeros(1),
        }

    def _p(self, kind: str, median: float) -> np.ndarray:
        key = (kind, round(median, 5))
        p = self._probs.get(key)
        if p is None:
            bounds, sigma = {"ttft": (TTFT_B, TTFT_SIGMA), "e2e": (E2E_B, E2E_SIGMA)}.get(
                kind, (ITL_B, ITL_TOKEN_SIGMA)
            )
            if kind == "ttft" and self.scenario.ttft_shape == "mixture":
                scale = median / TTFT_MEDIAN
                p = 0.7 * bucket_probabilities(bounds, 0.12 * scale, 0.45) + 0.3 * (
                    bucket_probabilities(bounds, 0.45 * scale, 0.5)
                )
            else:
                p = bucket_probabilities(bounds, median, sigma)
            if len(self._probs) < 20000:
                self._probs[key] = p
        return p

    def advance(self) -> None:
        """One minute of traffic on every live pod."""
        rng = self.rng
        t = self.minute
        wave = math.sin(2 * math.pi * t / LOAD_PERIOD + self.phase)
        total_rate = self.rate * (1 + LOAD_RATE * wave) * 60
        if self.burst_left > 0:
            burst = True
            self.burst_left -= 1
        elif rng.random() < BURST_START:
            burst = True
            self.burst_left = int(rng.integers(1, 4)) - 1
        else:
            burst = False
        error_rate = BASE_ERRORS + (BURST_RATE if burst else 0.0)
        for pod in self.pods:
            previous = pod.history[max(pod.history)]
            counters = {k: v.copy() for k, v in previous.items()}
            count = self.active.get(pod.version, 0)
            live = [p for p in self.pods if p.version == pod.version][:count]
            pod.drift = POD_DRIFT_RHO * pod.drift + math.sqrt(1 - POD_DRIFT_RHO**2) * rng.normal(
                0, POD_DRIFT_SD
            )
            if pod in live:
                share = self.canary_share if pod.version == "v2" else 1 - self.canary_share
                n = int(rng.poisson(total_rate * share / count)) if share > 0 else 0
                if n > 0:
                    self._serve(pod, n, counters, wave, error_rate)
            pod.history[t + 1] = counters
        self.minute += 1

    def _serve(
        self,
        pod: Pod,
        n: int,
        counters: dict[str, np.ndarray],
        wave: float,
        error_rate: float,
    ) -> None:
        rng, s = self.rng, self.scenario
        canary = pod.version == "v2"
        speed = math.exp(LOAD_LATENCY * wave + pod.offset + pod.drift)
        ttft_factor = s.ttft_factor if canary else 1.0
        ttft_median = TTFT_MEDIAN * speed * ttft_factor
        if canary and s.slow_tail:
            counters["ttft"] += rng.multinomial(
                n, tail_probabilities(TTFT_B, ttft_median, TTFT_SIGMA)
            )
        else:
            counters["ttft"] += rng.multinomial(n, self._p("ttft", ttft_median))
        ttft_share = TTFT_MEDIAN / E2E_MEDIAN
        e2e_factor = 1 + ttft_share * (ttft_factor - 1)
        counters["e2e"] += rng.multinomial(n, self._p("e2e", E2E_MEDIAN * speed * e2e_factor))
        groups = rng.multinomial(n, np.full(ITL_GROUPS, 1 / ITL_GROUPS))
        for g, requests in enumerate(groups):
            if requests == 0:
                continue
            z = _GROUP_Z[g]
            median = ITL_MEDIAN * speed * math.exp(ITL_REQUEST_SIGMA * z)
            counters["itl"] += rng.multinomial(requests * TOKENS, self._p("itl", median))
        rate = min(1.0, error_rate + (s.error_points if canary else 0.0))
        counters["errors"] += rng.binomial(n, rate)
        counters["requests"] += n

    # --- reading ----------------------------------------------------------------------------

    def now(self) -> datetime:
        return EPOCH + timedelta(minutes=self.minute)

    def delta(self, pod: Pod, key: str, minutes: int) -> np.ndarray:
        end = pod.history[max(k for k in pod.history if k <= self.minute)][key]
        start_minute = self.minute - minutes
        starts = [k for k in pod.history if k <= start_minute]
        if not starts:
            return end.copy()
        return end - pod.history[max(starts)][key]


def _group_z() -> list[float]:
    out = []
    for i in range(ITL_GROUPS):
        p = (2 * i + 1) / (2 * ITL_GROUPS)
        low, high = -6.0, 6.0
        for _ in range(60):
            mid = (low + high) / 2
            low, high = (mid, high) if 0.5 * math.erfc(-mid / _SQRT2) < p else (low, mid)
        out.append(low)
    return out


_GROUP_Z = _group_z()

_HIST = re.compile(r"^sum by \((?:(?P<by>\w+), )?le\) \(increase\((?P<metric>[^{]+)_bucket\{")
_VERSION = re.compile(r'version="([^"]+)"')
_WINDOW = re.compile(r"\[(\d+)s\]")
_KIND = {
    "vllm:time_to_first_token_seconds": "ttft",
    "vllm:inter_token_latency_seconds": "itl",
    "vllm:e2e_request_latency_seconds": "e2e",
}


class FleetSource:
    """A MetricSource over a :class:`Fleet`: the PromQL the built-in templates render."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet

    def instant(self, query: str, at: datetime | None = None) -> list[Sample]:
        fleet = self.fleet
        version_match = _VERSION.search(query)
        window_match = _WINDOW.search(query)
        if version_match is None or window_match is None:
            raise ValueError(f"the fleet cannot answer {query!r}")
        version = version_match.group(1)
        minutes = max(1, round(int(window_match.group(1)) / 60))
        pods = [p for p in fleet.pods if p.version == version]
        hist = _HIST.match(query)
        if hist is not None:
            kind = _KIND[hist.group("metric")]
            bounds = {"ttft": TTFT_B, "itl": ITL_B, "e2e": E2E_B}[kind]
            groups: dict[str, np.ndarray] = {}
            for pod in pods:
                key = pod.name if hist.group("by") else ""
                counts = fleet.delta(pod, kind, minutes)
                groups[key] = groups.get(key, 0) + counts
            samples = []
            for key, counts in groups.items():
                cumulative = np.cumsum(counts)
                for bound, value in zip(bounds, cumulative, strict=True):
                    labels = {"le": "+Inf" if math.isinf(bound) else repr(float(bound))}
                    if key:
                        labels[hist.group("by")] = key
                    samples.append(Sample(labels, float(value)))
            return samples
        if not pods:
            return []
        if "e2e_request_latency_seconds_count" in query:
            total = sum(float(fleet.delta(p, "requests", minutes)[0]) for p in pods)
            return [Sample({}, total)]
        if "http_requests_total" in query:
            key = "errors" if 'status=~"5.."' in query else "requests"
            total = sum(float(fleet.delta(p, key, minutes)[0]) for p in pods)
            return [Sample({}, total)]
        raise ValueError(f"the fleet cannot answer {query!r}")

    def range(self, query: str, start: datetime, end: datetime, step: timedelta) -> list[Series]:
        raise ValueError("the fleet answers no range queries (no scalar checks by default)")
