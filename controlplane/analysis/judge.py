"""Judges: canary vs stable for one metric, with statistical evidence, never on one noisy
sample. Pure functions over the numbers a metric provider read; no I/O.

This module holds what every judge shares (the readings, :class:`Check`,
:class:`MetricVerdict`) and the **fixed-sample judge**, kept selectable as ``judge: fixed``
for comparison; the default is the sequential judge in
:mod:`controlplane.analysis.sequential`. The fixed-sample judge looks at one window at a
time and tests it on its own:

- **latency histograms** (TTFT, inter-token latency, end-to-end latency): the bucket counts
  of canary and stable over the analysis window. The effect is the relative difference of a
  quantile (p95 by default, interpolated within buckets as Prometheus'
  ``histogram_quantile`` does); the evidence is a one-sided Mann-Whitney U test on the
  binned observations (normal approximation with the tie correction, which is exact enough
  at the sample sizes we require). Fail only when the canary is slower by more than the
  margin *and* the test says it is not chance.
- **ratios** (error share, 5xx share): events / total for each side; the effect is the
  difference of the rates, the evidence a one-sided two-proportion z-test.
- **bounds**: optional absolute limits on the canary's value, which fail on their own.

Below ``min_samples`` observations on either side the verdict is ``inconclusive``: a canary
at 1% weight with three requests is not evidence of anything, in either direction.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from controlplane.analysis.stats import quantiles
from controlplane.analysis.verdict import Verdict


@dataclass(frozen=True)
class Histogram:
    """Cumulative bucket counts (``le`` upper bounds ascending, the last may be +Inf)."""

    buckets: tuple[tuple[float, float], ...]

    @property
    def count(self) -> float:
        return self.buckets[-1][1] if self.buckets else 0.0

    def per_bucket(self) -> list[float]:
        counts, previous = [], 0.0
        for _, cumulative in self.buckets:
            counts.append(max(0.0, cumulative - previous))
            previous = max(previous, cumulative)
        return counts

    def quantile_log(self, q: float) -> float | None:
        """Probit-log interpolation within the bucket (see stats.quantiles); None in the
        +Inf bucket. The sequential judge's quantile."""
        return quantiles.quantile(self.buckets, q)

    def quantile(self, q: float) -> float | None:
        """Linear interpolation within the bucket, like PromQL's histogram_quantile."""
        total = self.count
        if total <= 0:
            return None
        rank = q * total
        lower_bound, lower_count = 0.0, 0.0
        for upper, cumulative in self.buckets:
            if cumulative >= rank:
                if math.isinf(upper):
                    return lower_bound  # the quantile is in the +Inf bucket
                width = cumulative - lower_count
                fraction = (rank - lower_count) / width if width > 0 else 1.0
                return lower_bound + (upper - lower_bound) * fraction
            lower_bound, lower_count = upper, cumulative
        return lower_bound


@dataclass(frozen=True)
class Ratio:
    events: float
    total: float
    # how many series the total's query found (None: unknown); not part of the value
    series: int | None = field(default=None, compare=False)

    @property
    def rate(self) -> float | None:
        return self.events / self.total if self.total > 0 else None


@dataclass(frozen=True)
class PodHistograms:
    """One version's histogram over the analysis step, pod by pod (the unit whose speed is
    shared by its requests), and how many independent units (requests) are behind the
    observations when that is fewer than the observations (one per generated token)."""

    pods: tuple[tuple[str, Histogram], ...]
    units: float | None = None

    @property
    def pooled(self) -> Histogram:
        if not self.pods:
            return Histogram(())
        bounds = [b for b, _ in self.pods[0][1].buckets]
        sums = [0.0] * len(bounds)
        for _, histogram in self.pods:
            if [b for b, _ in histogram.buckets] != bounds:
                raise ValueError("the pods' histograms have different buckets")
            for i, (_, count) in enumerate(histogram.buckets):
                sums[i] += count
        return Histogram(tuple(zip(bounds, sums, strict=True)))


@dataclass(frozen=True)
class Check:
    """How to judge one metric. ``margin`` is relative for histograms and scalars (0.10 =
    canary may be 10% slower) and absolute for ratios (0.01 = one percentage point more
    errors). ``detect`` is the regression, in the same units, that an analysis must have
    had the traffic to catch (with probability ``power``) before it may pass.
    ``pod_spread`` is the prior sd of one pod's speed factor over a step (log scale),
    updated by what the pods show. ``alpha`` and ``min_samples`` are the fixed-sample
    judge's; the sequential judge spends the rollout's false-rollback budget instead."""

    name: str
    margin: float
    quantile: float = 0.95
    alpha: float = 0.05
    min_samples: int = 50
    max_value: float | None = None  # absolute bound on the canary's value
    detect: float | None = None  # None: the metric kind's default (see sequential.py)
    power: float = 0.9
    pod_spread: float = 0.03


@dataclass(frozen=True)
class MetricVerdict:
    metric: str
    verdict: Verdict
    canary_value: float | None
    stable_value: float | None
    canary_samples: float
    stable_samples: float
    statistic: float | None
    p_value: float | None
    message: str
    # the value the canary's must not pass (above it, or below it for higher-is-better
    # metrics and eval scores) for the verdict's margin rule, when there is one: the line
    # the history page draws
    threshold: float | None = None
    # the sequential judge's evidence: the effect (relative for latencies and scalars,
    # absolute for ratios) with its always-valid interval, the margin it must cross to
    # fail and the regression it must be able to catch to pass, the share of the
    # false-rollback budget it spends, and what it still needs
    judge: str = "fixed"
    scope: str = "step"  # the evidence shown: this step's, or the rollout's analysis steps'
    effect: float | None = None
    effect_lower: float | None = None
    effect_upper: float | None = None
    margin: float | None = None
    detect: float | None = None
    alpha: float | None = None
    power: float | None = None  # the chance, now, of having caught a `detect` regression
    needed: float | None = None  # more canary requests before it can pass
    eta_seconds: float | None = None  # about how long those take at the current rate
    inconclusive: str | None = None  # no_series, no_traffic, unresolvable or too_few
    pod_spread: float | None = None
    pods: tuple[int, int] | None = None  # canary, stable pods that served requests


def _normal_sf(z: float) -> float:
    """P(Z > z) for a standard normal Z."""
    return 0.5 * math.erfc(z / math.sqrt(2))


def mann_whitney_greater(canary: Sequence[float], stable: Sequence[float]) -> tuple[float, float]:
    """One-sided Mann-Whitney U on binned counts (same bins on both sides): is the canary
    stochastically greater than stable? Returns (z, p)."""
    n1, n2 = sum(canary), sum(stable)
    n = n1 + n2
    if n1 <= 0 or n2 <= 0:
        return 0.0, 1.0
    rank_sum, rank_start, tie_term = 0.0, 0.0, 0.0
    for c, s in zip(canary, stable, strict=True):
        t = c + s
        if t <= 0:
            continue
        mid_rank = rank_start + (t + 1) / 2
        rank_sum += c * mid_rank
        tie_term += t**3 - t
        rank_start += t
    u = rank_sum - n1 * (n1 + 1) / 2
    mean = n1 * n2 / 2
    variance = n1 * n2 / 12 * ((n + 1) - tie_term / (n * (n - 1))) if n > 1 else 0.0
    if variance <= 0:
        return 0.0, 1.0
    z = (u - mean - 0.5) / math.sqrt(variance)  # continuity correction
    return z, _normal_sf(z)


def two_proportion_greater(canary: Ratio, stable: Ratio) -> tuple[float, float]:
    """One-sided two-proportion z-test: is the canary's rate greater? Returns (z, p)."""
    if canary.total <= 0 or stable.total <= 0:
        return 0.0, 1.0
    pooled = (canary.events + stable.events) / (canary.total + stable.total)
    se = math.sqrt(pooled * (1 - pooled) * (1 / canary.total + 1 / stable.total))
    if se == 0:
        return 0.0, 1.0
    z = ((canary.events / canary.total) - (stable.events / stable.total)) / se
    return z, _normal_sf(z)


def _too_few(
    check: Check, canary_n: float, stable_n: float, canary_v: float | None, stable_v: float | None
) -> MetricVerdict | None:
    if canary_n >= check.min_samples and stable_n >= check.min_samples:
        return None
    return MetricVerdict(
        check.name,
        Verdict.INCONCLUSIVE,
        canary_v,
        stable_v,
        canary_n,
        stable_n,
        None,
        None,
        f"{check.name}: too few samples to judge (canary {canary_n:.0f}, stable "
        f"{stable_n:.0f}, need {check.min_samples} each)",
    )


def _bound(check: Check, canary_v: float | None, canary_n: float) -> str | None:
    if (
        check.max_value is not None
        and canary_v is not None
        and canary_v > check.max_value
        and (canary_n >= check.min_samples)
    ):
        return f"canary {canary_v:.4g} is over the bound {check.max_value:.4g}"
    return None


def judge_histogram(check: Check, canary: Histogram, stable: Histogram) -> MetricVerdict:
    canary_q, stable_q = canary.quantile(check.quantile), stable.quantile(check.quantile)
    canary_n, stable_n = canary.count, stable.count
    too_few = _too_few(check, canary_n, stable_n, canary_q, stable_q)
    if too_few:
        return too_few
    if [b for b, _ in canary.buckets] != [b for b, _ in stable.buckets]:
        return MetricVerdict(
            check.name,
            Verdict.ERROR,
            canary_q,
            stable_q,
            canary_n,
            stable_n,
            None,
            None,
            f"{check.name}: canary and stable histograms have "
            "different buckets; check the metric's selectors",
        )
    z, p = mann_whitney_greater(canary.per_bucket(), stable.per_bucket())
    q = f"p{round(check.quantile * 100)}"
    assert canary_q is not None
    assert stable_q is not None
    relative = (
        (canary_q - stable_q) / stable_q if stable_q > 0 else (math.inf if canary_q > 0 else 0.0)
    )
    facts = (
        f"{check.name} {q} canary {canary_q:.4g} vs stable {stable_q:.4g} "
        f"({relative:+.1%}, margin {check.margin:.0%}; Mann-Whitney z={z:.2f}, p={p:.3g}, "
        f"n={canary_n:.0f}/{stable_n:.0f})"
    )
    breach = _bound(check, canary_q, canary_n)
    if breach:
        return MetricVerdict(
            check.name,
            Verdict.FAIL,
            canary_q,
            stable_q,
            canary_n,
            stable_n,
            z,
            p,
            f"{facts}; {breach}",
        )
    verdict = Verdict.FAIL if relative > check.margin and p < check.alpha else Verdict.PASS
    threshold = stable_q * (1 + check.margin)
    return MetricVerdict(
        check.name, verdict, canary_q, stable_q, canary_n, stable_n, z, p, facts, threshold
    )


def judge_ratio(check: Check, canary: Ratio, stable: Ratio) -> MetricVerdict:
    canary_r, stable_r = canary.rate, stable.rate
    too_few = _too_few(check, canary.total, stable.total, canary_r, stable_r)
    if too_few:
        return too_few
    assert canary_r is not None
    assert stable_r is not None
    z, p = two_proportion_greater(canary, stable)
    facts = (
        f"{check.name} canary {canary_r:.3%} vs stable {stable_r:.3%} "
        f"(margin {check.margin:+.2%}; z={z:.2f}, p={p:.3g}, "
        f"n={canary.total:.0f}/{stable.total:.0f})"
    )
    breach = _bound(check, canary_r, canary.total)
    if breach:
        return MetricVerdict(
            check.name,
            Verdict.FAIL,
            canary_r,
            stable_r,
            canary.total,
            stable.total,
            z,
            p,
            f"{facts}; {breach}",
        )
    worse = canary_r - stable_r > check.margin and p < check.alpha
    return MetricVerdict(
        check.name,
        Verdict.FAIL if worse else Verdict.PASS,
        canary_r,
        stable_r,
        canary.total,
        stable.total,
        z,
        p,
        facts,
        stable_r + check.margin,
    )


class Judge(Protocol):
    """The seam for other judges (e.g. sequential, always-valid tests that decide sooner
    at the same false-rollback rate)."""

    def histogram(self, check: Check, canary: Histogram, stable: Histogram) -> MetricVerdict: ...

    def ratio(self, check: Check, canary: Ratio, stable: Ratio) -> MetricVerdict: ...


class FixedSampleJudge:
    """The judge above: a fixed-sample test per measurement."""

    def histogram(self, check: Check, canary: Histogram, stable: Histogram) -> MetricVerdict:
        return judge_histogram(check, canary, stable)

    def ratio(self, check: Check, canary: Ratio, stable: Ratio) -> MetricVerdict:
        return judge_ratio(check, canary, stable)


def combine(verdicts: Sequence[MetricVerdict]) -> Verdict:
    """A measurement is as bad as its worst metric: fail > error > inconclusive > pass."""
    order = [Verdict.FAIL, Verdict.ERROR, Verdict.INCONCLUSIVE, Verdict.PASS]
    if not verdicts:
        return Verdict.INCONCLUSIVE
    return min((v.verdict for v in verdicts), key=order.index)
