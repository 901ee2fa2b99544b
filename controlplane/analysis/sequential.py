"""The sequential judge: canary against stable on everything since the weight went into
force, looked at as often as the analysis likes, with one false-rollback budget for the
whole rollout. Pure: numbers in, a verdict with its evidence out.

What a verdict means, for every kind of metric:

- **fail**: the always-valid interval on the canary's effect (canary against stable) lies
  wholly beyond the margin. The chance that a canary whose true effect is within the
  margin ever fails, at any look, is at most the check's ``alpha`` (its share of the
  rollout's budget).
- **pass**: no fail, and the step has had the traffic to catch a regression of ``detect``
  (with probability ``power``): the required sample is derived from the regression to
  catch, not fixed.
- **inconclusive**: says which of ``no_series`` (the canary is not scraped: the selector
  found nothing), ``no_traffic`` (series, but no requests), ``unresolvable`` (the quantile
  is beyond the largest bucket bound) or ``too_few`` (with the canary requests still
  needed and how long they take at the current rate).

Per kind:

- **Latency histograms** test the quantile the check names (p95, p99, ...): the effect is
  the log-ratio of the canary's quantile to stable's, both over the whole step. Its noise
  is the quantiles' sampling noise (:mod:`.stats.quantiles`) plus the pods' own speed
  (a canary on a slower node is not a slower version): half the check's ``alpha`` covers
  every look of the sampling noise (:mod:`.stats.sequential`), half the pods' offsets
  (``z * pod_sd * sqrt(sum of squared pod shares)``, from a prior spread updated by what
  the pods show). Load that both versions share cancels in the ratio, since both are read
  over the same minutes. Histograms with one observation per token are counted by
  request (the independent unit) when the template knows the request count.
- **Ratios** (errors) use exact confidence sequences for each version's rate
  (:mod:`.stats.counts`), half the ``alpha`` each: correct at 0, 1 or 2 events.
- **Scalars** have one value per look interval and version; the effect is the mean of the
  paired per-interval log-ratios, its variance estimated from their spread (at least three
  intervals), with a normal-mixture boundary: approximate, as intervals drift together.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from controlplane.analysis.judge import Check, Histogram, MetricVerdict, PodHistograms, Ratio
from controlplane.analysis.stats import counts, quantiles
from controlplane.analysis.stats.sequential import (
    normal_cdf,
    normal_quantile,
    one_sided_radius,
)
from controlplane.analysis.verdict import Inconclusive, Verdict

# the regression each kind of check must be able to catch before it passes, unless the
# check says otherwise: relative for latencies and scalars, absolute for ratios
DEFAULT_DETECT = {"histogram": 0.5, "ratio": 0.05, "scalar": 0.3}
MIN_TAIL = 5.0  # observations expected beyond the quantile before it is estimated at all
MIN_INTERVALS = 3  # paired intervals before a scalar is judged


@dataclass(frozen=True)
class Look:
    """What one look knows besides the readings: the share of the rollout's
    false-rollback budget this check spends on this step's own test (``alpha``) and on
    the test of the whole rollout's evidence (``rollout_alpha``; None: no such test), and
    how long the weight has been in force (for rates and the time still needed)."""

    alpha: float
    elapsed_seconds: float
    rollout_alpha: float | None = None


def _pct(value: float) -> str:
    return f"{value:+.1%}" if abs(value) < 10 else f"{value:+.3g}x"


def _eta(needed: float | None, have: float, elapsed: float) -> float | None:
    if needed is None or not math.isfinite(needed) or have <= 0 or elapsed <= 0:
        return None
    return needed / (have / elapsed)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown at the current rate"
    if seconds < 90:
        return f"~{seconds:.0f}s"
    if seconds < 5400:
        return f"~{seconds / 60:.0f} min"
    return f"~{seconds / 3600:.1f} h"


class SequentialJudge:
    """Always-valid tests on cumulative readings; the default judge."""

    # --- latency histograms -------------------------------------------------------------

    def histogram(
        self,
        check: Check,
        canary: PodHistograms,
        stable: PodHistograms,
        look: Look,
        history: Sequence[tuple[PodHistograms, PodHistograms]] = (),
    ) -> MetricVerdict:
        """``history``: the readings of the rollout's earlier (passed) analysis steps, each
        a stratum of its own: compared within itself, then combined."""
        q = check.quantile
        label = f"{check.name} p{q * 100:g}"
        detect = DEFAULT_DETECT["histogram"] if check.detect is None else check.detect
        base = _Base(check, label, detect, look)
        if not canary.pods:
            return base.inconclusive(Inconclusive.NO_SERIES, "no series for the canary")
        if not stable.pods:
            return base.inconclusive(Inconclusive.NO_SERIES, "no series for stable")
        current = _latency_stratum(check, canary, stable)
        if isinstance(current, _Problem) and current.kind is None:
            return base.error(current.message)
        if isinstance(current, _Problem) and current.kind is not Inconclusive.TOO_FEW:
            base = base.with_values(*current.values)
            assert current.kind is not None
            return base.inconclusive(current.kind, current.message)
        past = [
            s
            for c, st in history
            if isinstance(s := _latency_stratum(check, c, st), _LatencyStratum)
        ]
        margin, d = math.log1p(check.margin), math.log1p(detect)
        rollout = None
        if past and look.rollout_alpha is not None:
            strata = [*past, current] if isinstance(current, _LatencyStratum) else past
            rollout = _combine(strata, margin, d, look.rollout_alpha, len(past))
        if isinstance(current, _Problem):
            base = base.with_values(*current.values)
            if rollout is None or rollout.lower <= margin:
                return base.too_few(current.message, needed=current.needed, have=current.have)
            return base.with_scope("rollout").decide(
                rollout, relative=True, counts=current.message, have=current.have, extra="",
                bound=None, threshold=None,
            )  # fmt: skip
        base = base.with_values(current.canary_q, current.stable_q, current.n_c, current.n_s)
        base = base.with_pods(current.pods[0], current.pods[1], current.spread)
        # with no earlier step, the rollout's sequence is this step's: its (larger) alpha
        step_alpha = _step_alpha(look, bool(history))
        step = _NormalTest(
            current.theta, current.information, current.pod_sd, margin, d, step_alpha
        )
        bound = None
        if check.max_value is not None:
            own = _NormalTest(
                math.log(current.canary_q), current.canary_information,
                current.canary_pod_sd, 0.0, d, step_alpha,
            )  # fmt: skip
            if math.exp(own.lower) > check.max_value:
                bound = (
                    f"canary {current.canary_q:.4g} is over the bound {check.max_value:.4g} "
                    f"(its lower bound {math.exp(own.lower):.4g})"
                )
        chosen, scope = step, "step"
        if rollout is not None and (rollout.lower > margin or step.lower <= margin):
            chosen, scope = rollout, "rollout"
        return base.with_scope(scope).decide(
            chosen,
            relative=True,
            counts=current.counts,
            have=current.e_c,
            extra=f"pods {current.pods[0]}/{current.pods[1]}, pod spread {current.spread:.1%}",
            bound=bound,
            threshold=current.stable_q * (1 + check.margin),
            step_agrees=scope == "rollout" and step.lower > margin,
        )

    # --- ratios ---------------------------------------------------------------------------

    def ratio(
        self,
        check: Check,
        canary: Ratio,
        stable: Ratio,
        look: Look,
        history: Sequence[tuple[Ratio, Ratio]] = (),
    ) -> MetricVerdict:
        """``history`` as for :meth:`histogram`. Counts of earlier steps are pooled with
        this step's only when the canary had the same share of requests in each (a weight
        change would weigh shared error bursts differently for the two versions)."""
        detect = DEFAULT_DETECT["ratio"] if check.detect is None else check.detect
        base = _Base(check, check.name, detect, look)
        if canary.series == 0:
            return base.inconclusive(Inconclusive.NO_SERIES, "no series for the canary")
        if stable.series == 0:
            return base.inconclusive(Inconclusive.NO_SERIES, "no series for stable")
        base = base.with_values(canary.rate, stable.rate, canary.total, stable.total)
        if canary.total <= 0:
            return base.inconclusive(
                Inconclusive.NO_TRAFFIC,
                "the canary served no requests since the weight went into force: traffic "
                "does not reach it",
            )
        if stable.total <= 0:
            return base.inconclusive(
                Inconclusive.NO_TRAFFIC, "stable served no requests: nothing to compare"
            )
        pooled = _poolable(canary, stable, history) if look.rollout_alpha is not None else None
        step_alpha = _step_alpha(look, bool(history))
        step = _RatioTest(check, detect, canary, stable, step_alpha)
        rollout = None
        if pooled is not None:
            assert look.rollout_alpha is not None
            rollout = _RatioTest(check, detect, pooled[0], pooled[1], look.rollout_alpha)
        bound = None
        if check.max_value is not None and step.c_low > check.max_value:
            bound = (
                f"canary {step.c_rate:.3%} is over the bound {check.max_value:.3%} (its lower "
                f"bound {step.c_low:.3%})"
            )
        chosen, scope = step, "step"
        if rollout is not None and (rollout.lower > check.margin or step.lower <= check.margin):
            chosen, scope = rollout, "rollout"
        return base.with_scope(scope).decide_interval(
            alpha=chosen.half * 2,
            effect=chosen.c_rate - chosen.s_rate,
            lower=chosen.lower,
            upper=chosen.upper,
            power=chosen.power,
            needed=chosen.needed(),
            have=canary.total,
            relative=False,
            counts=f"{chosen.canary.events:.0f}/{chosen.canary.total:.0f} vs "
            f"{chosen.stable.events:.0f}/{chosen.stable.total:.0f}",
            extra="",
            bound=bound,
            threshold=stable.rate + check.margin if stable.rate is not None else None,
            step_agrees=scope == "rollout" and step.lower > check.margin,
        )

    # --- scalars --------------------------------------------------------------------------

    def scalar(
        self,
        check: Check,
        canary: Sequence[tuple[float, float]],
        stable: Sequence[tuple[float, float]],
        look: Look,
        *,
        higher_is_better: bool,
    ) -> MetricVerdict:
        detect = DEFAULT_DETECT["scalar"] if check.detect is None else check.detect
        base = _Base(check, check.name, detect, look)
        if not canary:
            return base.inconclusive(Inconclusive.NO_SERIES, "no values for the canary")
        if not stable:
            return base.inconclusive(Inconclusive.NO_SERIES, "no values for stable")
        stable_at = dict(stable)
        pairs = [
            (c, stable_at[t])
            for t, c in canary
            if t in stable_at and c > 0 and stable_at[t] > 0
            and math.isfinite(c) and math.isfinite(stable_at[t])
        ]  # fmt: skip
        c_mean = sum(c for c, _ in pairs) / len(pairs) if pairs else None
        s_mean = sum(s for _, s in pairs) / len(pairs) if pairs else None
        base = base.with_values(c_mean, s_mean, float(len(pairs)), float(len(pairs)))
        if len(pairs) < MIN_INTERVALS:
            return base.too_few(
                f"{len(pairs)} paired intervals with positive values; needs {MIN_INTERVALS}",
                needed=None,
                have=0.0,
                unit="intervals",
            )
        sign = -1.0 if higher_is_better else 1.0
        diffs = [sign * math.log(c / s) for c, s in pairs]
        k = len(diffs)
        mean = sum(diffs) / k
        var = sum((x - mean) ** 2 for x in diffs) / (k - 1)
        var = max(var, 1e-6)
        test = _NormalTest(
            mean, k / var, 0.0, math.log1p(check.margin), math.log1p(detect), look.alpha * 2
        )
        return base.decide(
            test,
            relative=True,
            counts=f"{k} intervals",
            have=float(k),
            extra="higher is better" if higher_is_better else "",
            bound=None,
            threshold=(
                s_mean * (1 - check.margin) if higher_is_better else s_mean * (1 + check.margin)
            )
            if s_mean is not None
            else None,
            unit="intervals",
        )


# --- helpers ------------------------------------------------------------------------------


def _step_alpha(look: Look, has_history: bool) -> float:
    """The step's own test spends its alpha. In the first analysis step the step's data
    are all the rollout's sequence has, so that sequence's (larger) alpha holds for both;
    it goes on in the later steps with the alpha it was given."""
    if has_history or look.rollout_alpha is None:
        return look.alpha
    return max(look.alpha, look.rollout_alpha)


@dataclass(frozen=True)
class _Problem:
    """Why a stratum cannot be judged: an inconclusive kind (None: an error)."""

    kind: Inconclusive | None
    message: str
    values: tuple[float | None, float | None, float, float] = (None, None, 0.0, 0.0)
    needed: float | None = None
    have: float = 0.0


@dataclass(frozen=True)
class _LatencyStratum:
    """One window's comparison of a quantile: the log-ratio, its sampling information,
    and the pods' share of its noise."""

    theta: float
    information: float
    pod_sd: float
    canary_q: float
    stable_q: float
    canary_information: float
    canary_pod_sd: float
    n_c: float
    n_s: float
    e_c: float
    spread: float
    pods: tuple[int, int]
    counts: str


def _latency_stratum(
    check: Check, canary: PodHistograms, stable: PodHistograms
) -> _LatencyStratum | _Problem:
    q = check.quantile
    if not canary.pods or not stable.pods:
        return _Problem(Inconclusive.NO_SERIES, "no series")
    try:
        c_hist, s_hist = canary.pooled, stable.pooled
    except ValueError:
        return _Problem(None, "the pods of one version have different buckets")
    if [b for b, _ in c_hist.buckets] != [b for b, _ in s_hist.buckets]:
        return _Problem(
            None, "canary and stable histograms have different buckets; check the selectors"
        )
    n_c, n_s = c_hist.count, s_hist.count
    c_q, s_q = c_hist.quantile_log(q), s_hist.quantile_log(q)
    values = (c_q, s_q, n_c, n_s)
    if n_c <= 0:
        return _Problem(
            Inconclusive.NO_TRAFFIC,
            "the canary's series show no requests since the weight went into force: traffic "
            "does not reach it",
            values,
        )
    if n_s <= 0:
        return _Problem(
            Inconclusive.NO_TRAFFIC, "stable's series show no requests: nothing to compare", values
        )
    # independent units behind the observations (requests, when there is one observation
    # per generated token)
    c_unit = min(1.0, canary.units / n_c) if canary.units else 1.0
    s_unit = min(1.0, stable.units / n_s) if stable.units else 1.0
    e_c, e_s = n_c * c_unit, n_s * s_unit
    floor = MIN_TAIL / (1 - q)
    if e_c < floor or e_s < floor:
        short = max(floor - e_c, (floor - e_s) * e_c / e_s if e_s > 0 else 0.0)
        return _Problem(
            Inconclusive.TOO_FEW,
            f"{e_c:.0f} canary and {e_s:.0f} stable requests; a p{q * 100:g} needs "
            f"{floor:.0f} on each side before it is estimated",
            values,
            needed=short,
            have=e_c,
        )
    if c_q is None or s_q is None:
        top = _largest_finite(c_hist)
        return _Problem(
            Inconclusive.UNRESOLVABLE,
            f"the p{q * 100:g} lies beyond the largest finite bucket bound ({top:g}): the "
            "histogram cannot resolve it; judge a lower quantile or add buckets",
            values,
        )
    v_c = quantiles.log_quantile_variance(c_hist.buckets, q, e_c)
    v_s = quantiles.log_quantile_variance(s_hist.buckets, q, e_s)
    if v_c is None or v_s is None:
        return _Problem(
            Inconclusive.UNRESOLVABLE,
            f"the buckets around the p{q * 100:g} are too coarse to tell its noise",
            values,
        )
    spread = quantiles.pod_variance(
        [_pod_quantiles(canary, q, c_unit, floor), _pod_quantiles(stable, q, s_unit, floor)],
        prior_sd=check.pod_spread,
    )
    c_share2, s_share2 = _shares_squared(canary), _shares_squared(stable)
    units = f" ({e_c:.0f}/{e_s:.0f} requests)" if c_unit < 1 or s_unit < 1 else ""
    return _LatencyStratum(
        theta=math.log(c_q / s_q),
        information=1 / (v_c + v_s),
        pod_sd=spread.sd * math.sqrt(c_share2 + s_share2),
        canary_q=c_q,
        stable_q=s_q,
        canary_information=1 / v_c,
        canary_pod_sd=spread.sd * math.sqrt(c_share2),
        n_c=n_c,
        n_s=n_s,
        e_c=e_c,
        spread=spread.sd,
        pods=(_served(canary), _served(stable)),
        counts=f"n={n_c:.0f}/{n_s:.0f}{units}",
    )


def _combine(
    strata: Sequence[_LatencyStratum], margin: float, detect: float, alpha: float, past: int
) -> _NormalTest:
    """The strata's log-ratios weighted by their information (each step compared within
    itself, so a load level or weight that differs between steps cannot pass for an
    effect); the pods' noise taken as the same pods throughout (fully correlated)."""
    total = sum(s.information for s in strata)
    theta = sum(s.theta * s.information for s in strata) / total
    pod_sd = sum(s.pod_sd * s.information for s in strata) / total
    grow = strata[-1].information if len(strata) > past else 0.0
    return _NormalTest(theta, grow, pod_sd, margin, detect, alpha, fixed=total - grow)


class _RatioTest:
    """Exact confidence sequences for both versions' rates, half the alpha each."""

    def __init__(
        self, check: Check, detect: float, canary: Ratio, stable: Ratio, alpha: float
    ) -> None:
        self.check, self.detect, self.canary, self.stable = check, detect, canary, stable
        self.half = alpha / 2
        self.c_low, self.c_high = counts.bounds(canary.events, canary.total, self.half)
        self.s_low, self.s_high = counts.bounds(stable.events, stable.total, self.half)
        self.c_rate = canary.events / canary.total
        self.s_rate = stable.events / stable.total
        self.lower, self.upper = self.c_low - self.s_high, self.c_high - self.s_low
        self.power = self.power_at(1.0)

    def power_at(self, k: float) -> float:
        """The chance of having caught +detect by now (times ``k`` the canary's requests),
        the canary's bound approximated by the normal mixture at the regressed rate (exact
        counts decide a fail)."""
        alt = min(1.0, self.s_rate + self.detect)
        alt_var = max(alt * (1 - alt), 1e-6)
        tau = max(self.detect - self.check.margin, 1e-3)
        n = self.canary.total * k
        radius = one_sided_radius(n / alt_var, self.half, tau)
        gap = alt - radius - self.s_high - self.check.margin
        return normal_cdf(gap / math.sqrt(alt_var / n))

    def needed(self) -> float | None:
        """More canary requests before the power is reached: they all come in the current
        step, whether the counts are this step's alone or pooled with earlier steps'."""
        return _needed(self.power_at, self.check.power, self.canary.total)


def _poolable(
    canary: Ratio, stable: Ratio, history: Sequence[tuple[Ratio, Ratio]]
) -> tuple[Ratio, Ratio] | None:
    """This step's counts and the earlier steps', pooled, when the canary had the same
    share of requests throughout (within sampling noise); None otherwise."""
    usable = [(c, s) for c, s in history if c.total > 0 and s.total > 0]
    if not usable:
        return None
    share = canary.total / (canary.total + stable.total)
    for c, s in usable:
        n = c.total + s.total
        past = c.total / n
        if abs(past - share) > max(0.03, 3 * math.sqrt(share * (1 - share) / n)):
            return None
    strata = [*usable, (canary, stable)]
    return (
        Ratio(sum(c.events for c, _ in strata), sum(c.total for c, _ in strata), 1),
        Ratio(sum(s.events for _, s in strata), sum(s.total for _, s in strata), 1),
    )


def _largest_finite(histogram: Histogram) -> float:
    finite = [b for b, _ in histogram.buckets if math.isfinite(b)]
    return finite[-1] if finite else math.inf


def _served(version: PodHistograms) -> int:
    return sum(1 for _, h in version.pods if h.count > 0)


def _shares_squared(version: PodHistograms) -> float:
    counts_ = [h.count for _, h in version.pods if h.count > 0]
    total = sum(counts_)
    return sum((c / total) ** 2 for c in counts_) if total > 0 else 1.0


def _pod_quantiles(
    version: PodHistograms, q: float, unit: float, floor: float
) -> list[quantiles.PodQuantile]:
    out = []
    for _, histogram in version.pods:
        n = histogram.count * unit
        if n < floor:
            continue
        value = histogram.quantile_log(q)
        variance = quantiles.log_quantile_variance(histogram.buckets, q, n)
        if value is None or variance is None or value <= 0:
            continue
        out.append(quantiles.PodQuantile(math.log(value), variance, n))
    return out


def _needed(power_at: Callable[[float], float], target: float, have: float) -> float | None:
    """More canary units (requests) before ``power_at`` reaches ``target``; None if it
    never can (the margin and the pods' spread leave no room for the regression)."""
    if power_at(1.0) >= target:
        return 0.0
    if power_at(1e6) < target:
        return None
    low, high = 1.0, 2.0
    while power_at(high) < target:
        low, high = high, high * 2
    while high - low > 0.005 * low:  # half a percent of the traffic is precise enough
        mid = (low + high) / 2
        if power_at(mid) >= target:
            high = mid
        else:
            low = mid
    return have * (high - 1)


@dataclass(frozen=True)
class _NormalTest:
    """An effect estimate with sampling information and a pod noise sd, against a margin,
    for a regression ``detect`` to catch, with ``alpha`` split between the sampling noise
    (every look) and the pods (once)."""

    estimate: float
    information: float  # what grows with more traffic (this step's)
    pod_sd: float
    margin: float
    detect: float
    alpha: float
    fixed: float = 0.0  # information that does not grow any more (earlier steps')

    @property
    def tau(self) -> float:
        return max(self.detect - self.margin, 0.05)

    def total(self, k: float = 1.0) -> float:
        return self.fixed + self.information * k

    @property
    def spent(self) -> float:
        """The alpha this test really spends: half of it covers the pods, when it has any."""
        return self.alpha if self.pod_sd > 0 else self.alpha / 2

    def radius(self, k: float = 1.0) -> float:
        sampling = one_sided_radius(self.total(k), self.alpha / 2, self.tau)
        pods = normal_quantile(1 - self.alpha / 2) * self.pod_sd if self.pod_sd > 0 else 0.0
        return sampling + pods

    @property
    def lower(self) -> float:
        return self.estimate - self.radius()

    @property
    def upper(self) -> float:
        return self.estimate + self.radius()

    def power_at(self, k: float) -> float:
        """The chance the traffic so far (times ``k``) would have caught a regression of
        ``detect`` if the pods were alike: what more traffic can buy. The pods' spread
        widens what counts as a failure (:meth:`radius`), and it does not shrink with
        traffic, so it is reported, not waited for."""
        information = self.total(k)
        sampling = one_sided_radius(information, self.alpha / 2, self.tau)
        return normal_cdf((self.detect - self.margin - sampling) * math.sqrt(information))


@dataclass(frozen=True)
class _Base:
    """The parts of a verdict every outcome shares, and the outcomes."""

    check: Check
    label: str
    detect: float
    look: Look
    canary_value: float | None = None
    stable_value: float | None = None
    canary_n: float = 0.0
    stable_n: float = 0.0
    pods: tuple[int, int] | None = None
    pod_spread: float | None = None
    scope: str = "step"

    def with_scope(self, scope: str) -> _Base:
        return replace(self, scope=scope)

    def with_values(
        self, canary: float | None, stable: float | None, canary_n: float, stable_n: float
    ) -> _Base:
        return replace(
            self, canary_value=canary, stable_value=stable, canary_n=canary_n, stable_n=stable_n
        )

    def with_pods(self, canary: int, stable: int, spread: float) -> _Base:
        return replace(self, pods=(canary, stable), pod_spread=spread)

    def _verdict(self, verdict: Verdict, message: str, **fields: object) -> MetricVerdict:
        fields.setdefault("alpha", self.look.alpha)
        return MetricVerdict(
            metric=self.check.name,
            verdict=verdict,
            canary_value=self.canary_value,
            stable_value=self.stable_value,
            canary_samples=self.canary_n,
            stable_samples=self.stable_n,
            statistic=None,
            p_value=None,
            message=f"{self.label}: {message}",
            judge="sequential",
            scope=self.scope,
            margin=self.check.margin,
            detect=self.detect,
            pods=self.pods,
            pod_spread=self.pod_spread,
            **fields,  # type: ignore[arg-type]
        )

    def error(self, message: str) -> MetricVerdict:
        return self._verdict(Verdict.ERROR, message)

    def inconclusive(self, kind: Inconclusive, message: str) -> MetricVerdict:
        return self._verdict(Verdict.INCONCLUSIVE, message, inconclusive=kind.value)

    def too_few(
        self, message: str, *, needed: float | None, have: float, unit: str = "requests"
    ) -> MetricVerdict:
        eta = _eta(needed, have, self.look.elapsed_seconds)
        more = (
            f"; needs about {math.ceil(needed)} more canary {unit} ({_duration(eta)})"
            if needed is not None
            else ""
        )
        return self._verdict(
            Verdict.INCONCLUSIVE,
            message + more,
            inconclusive=Inconclusive.TOO_FEW.value,
            needed=needed,
            eta_seconds=eta,
        )

    def decide(
        self,
        test: _NormalTest,
        *,
        relative: bool,
        counts: str,
        have: float,
        extra: str,
        bound: str | None,
        threshold: float | None,
        unit: str = "requests",
        step_agrees: bool = False,
    ) -> MetricVerdict:
        power = test.power_at(1.0)
        needed = _needed(test.power_at, self.check.power, have) if test.information > 0 else None
        to_effect = math.expm1 if relative else (lambda x: x)
        return self.decide_interval(
            alpha=test.spent,
            effect=to_effect(test.estimate),
            lower=to_effect(test.lower),
            upper=to_effect(test.upper),
            power=power,
            needed=needed,
            have=have,
            relative=relative,
            counts=counts,
            extra=extra,
            bound=bound,
            threshold=threshold,
            unit=unit,
            step_agrees=step_agrees,
        )

    def decide_interval(
        self,
        *,
        alpha: float,
        effect: float,
        lower: float,
        upper: float,
        power: float,
        needed: float | None,
        have: float,
        relative: bool,
        counts: str,
        extra: str,
        bound: str | None,
        threshold: float | None,
        unit: str = "requests",
        step_agrees: bool = False,
    ) -> MetricVerdict:
        """The verdict from an effect's always-valid interval. ``step_agrees``: the rollout's
        evidence failed, and this step's own evidence alone fails too (said, not decisive)."""
        show = _pct if relative else (lambda x: f"{x * 100:+.2f} pts")
        margin = _pct(self.check.margin) if relative else f"{self.check.margin * 100:.2f} pts"
        catch = _pct(self.detect) if relative else f"+{self.detect * 100:.2f} pts"
        values = ""
        if self.canary_value is not None and self.stable_value is not None:
            fmt = "{:.4g}" if relative else "{:.3%}"
            values = (
                f"canary {fmt.format(self.canary_value)} vs stable "
                f"{fmt.format(self.stable_value)}, "
            )
        where = "over the rollout's analysis steps, " if self.scope == "rollout" else ""
        facts = (
            f"{values}{where}{show(effect)} (always-valid interval {show(lower)} to "
            f"{show(upper)}, "
            f"alpha {alpha:.2g}); margin {margin}; {counts}" + (f"; {extra}" if extra else "")
        )
        evidence = {
            "alpha": alpha,
            "effect": effect,
            "effect_lower": lower,
            "effect_upper": upper,
            "power": power,
            "threshold": threshold,
        }
        if bound is not None:
            return self._verdict(Verdict.FAIL, f"{facts}; {bound}", **evidence)
        if lower > self.check.margin:
            return self._verdict(
                Verdict.FAIL,
                f"worse than stable by more than the margin: {facts}"
                + ("; this step's own evidence agrees" if step_agrees else ""),
                **evidence,
            )
        if power >= self.check.power:
            return self._verdict(
                Verdict.PASS,
                f"{facts}; {power:.0%} chance to have caught {catch}",
                needed=0.0,
                **evidence,
            )
        eta = _eta(needed, have, self.look.elapsed_seconds)
        if needed is None:
            more = (
                f"can never reach a {self.check.power:.0%} chance to catch {catch}: the "
                "margin and the pods' spread leave no room; raise detect or lower the margin"
            )
        else:
            more = (
                f"needs about {math.ceil(needed)} more canary {unit} ({_duration(eta)}) for "
                f"a {self.check.power:.0%} chance to catch {catch} (now {power:.0%})"
            )
        return self._verdict(
            Verdict.INCONCLUSIVE,
            f"{facts}; {more}",
            inconclusive=Inconclusive.TOO_FEW.value,
            needed=needed,
            eta_seconds=eta,
            **evidence,
        )
