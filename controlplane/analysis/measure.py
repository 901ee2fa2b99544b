"""One measurement: read every metric of the canary and of stable over the same window at
the same instant, judge each, and combine them into the verdict the rollout planner acts on.

A metric that cannot be read is an ``error`` verdict with the source's message, never an
exception: the planner counts consecutive errors and fails the rollout after its limit,
and one broken custom query must not hide what the other metrics say. This module never
speaks HTTP: it takes any :class:`~controlplane.analysis.metrics.MetricSource` (the
Prometheus adapter in production) and any :class:`~controlplane.analysis.judge.Judge`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from controlplane.analysis.judge import (
    Check,
    Judge,
    MetricVerdict,
    PodHistograms,
    Ratio,
    combine,
)
from controlplane.analysis.metrics import (
    HistogramTemplate,
    MetricSource,
    MetricSourceError,
    MetricTemplate,
    RatioTemplate,
    Scalar,
    ScalarTemplate,
    promql_duration,
    selector,
)
from controlplane.analysis.sequential import Look, SequentialJudge
from controlplane.analysis.verdict import (
    Inconclusive,
    MeasurementOutcome,
    Verdict,
    Window,
    most_actionable,
)

MAX_SUMMARY_MESSAGE = 1500  # the summary is stored (4000 characters at most) and logged
_SEVERITY = (Verdict.FAIL, Verdict.ERROR, Verdict.INCONCLUSIVE, Verdict.PASS)


@dataclass(frozen=True)
class Measurement:
    at: datetime
    verdict: Verdict
    summary: str
    metrics: tuple[MetricVerdict, ...]

    @property
    def inconclusive(self) -> Inconclusive | None:
        """Why the measurement is inconclusive: the most actionable reason among its
        inconclusive metrics."""
        if self.verdict is not Verdict.INCONCLUSIVE:
            return None
        return most_actionable(m.inconclusive for m in self.metrics)

    def outcome(self) -> MeasurementOutcome:
        return MeasurementOutcome(
            at=self.at, verdict=self.verdict, summary=self.summary, inconclusive=self.inconclusive
        )

    def evidence(self) -> dict[str, Any]:
        """JSON-ready facts for the rollout's event history (non-finite numbers as None)."""

        def clean(value: Any) -> Any:
            return None if isinstance(value, float) and not math.isfinite(value) else value

        return {
            "at": self.at.isoformat(),
            "verdict": self.verdict.value,
            "summary": self.summary,
            "metrics": [
                {key: clean(value) for key, value in asdict(m).items()} for m in self.metrics
            ],
        }


def judge_scalar(
    check: Check, canary: Scalar, stable: Scalar, *, higher_is_better: bool
) -> MetricVerdict:
    """A scalar has no distribution to test: fail when the canary is worse than stable by
    more than the relative margin (or over its bound), inconclusive without data."""
    c, s = canary.value, stable.value
    c_n = canary.samples if canary.samples is not None else math.nan
    s_n = stable.samples if stable.samples is not None else math.nan

    def verdict(v: Verdict, message: str) -> MetricVerdict:
        return MetricVerdict(check.name, v, c, s, c_n, s_n, None, None, message)

    if c is None or s is None:
        return verdict(
            Verdict.INCONCLUSIVE,
            f"{check.name}: no data to judge (canary {_maybe(c)}, stable {_maybe(s)})",
        )
    if c_n < check.min_samples or s_n < check.min_samples:  # NaN (no count) is never less
        return verdict(
            Verdict.INCONCLUSIVE,
            f"{check.name}: too few samples to judge (canary {c_n:.0f}, "
            f"stable {s_n:.0f}, need {check.min_samples} each)",
        )
    if s != 0:
        relative = (c - s) / abs(s)
    elif c == 0:
        relative = 0.0
    else:
        relative = math.copysign(math.inf, c)
    worse_by = -relative if higher_is_better else relative
    direction = "higher" if higher_is_better else "lower"
    counts = f", n={c_n:.0f}/{s_n:.0f}" if math.isfinite(c_n) and math.isfinite(s_n) else ""
    facts = (
        f"{check.name} canary {c:.4g} vs stable {s:.4g} ({relative:+.1%}, margin "
        f"{check.margin:.0%}, {direction} is better{counts})"
    )
    if check.max_value is not None and c > check.max_value:
        return verdict(
            Verdict.FAIL, f"{facts}; canary {c:.4g} is over the bound {check.max_value:.4g}"
        )
    threshold = s - abs(s) * check.margin if higher_is_better else s + abs(s) * check.margin
    return replace(
        verdict(Verdict.FAIL if worse_by > check.margin else Verdict.PASS, facts),
        threshold=threshold,
    )


def _closeness(m: MetricVerdict) -> float:
    """Which metric speaks for a measurement: the smallest p-value (fixed judge); for the
    sequential judge the one furthest over its margin, the one needing the most traffic,
    or the one least able yet to catch its regression."""
    if m.judge != "sequential":
        return 1.0 if m.p_value is None else m.p_value
    if m.verdict is Verdict.FAIL and m.effect_lower is not None and m.margin is not None:
        return -(m.effect_lower - m.margin)
    if m.verdict is Verdict.INCONCLUSIVE:
        if m.inconclusive and m.inconclusive != Inconclusive.TOO_FEW.value:
            return -math.inf
        return -(m.needed if m.needed is not None else math.inf)
    return m.power if m.power is not None else 1.0


def _maybe(value: float | None) -> str:
    return "no value" if value is None else f"{value:.4g}"


def _judge(
    judge: Judge,
    template: MetricTemplate,
    source: MetricSource,
    selectors: tuple[str, str],
    window: str,
    at: datetime,
) -> MetricVerdict:
    canary_selector, stable_selector = selectors
    if isinstance(template, HistogramTemplate):
        return judge.histogram(
            template.check,
            template.read(source, selector=canary_selector, window=window, at=at),
            template.read(source, selector=stable_selector, window=window, at=at),
        )
    if isinstance(template, RatioTemplate):
        return judge.ratio(
            template.check,
            template.read(source, selector=canary_selector, window=window, at=at),
            template.read(source, selector=stable_selector, window=window, at=at),
        )
    assert isinstance(template, ScalarTemplate)
    return judge_scalar(
        template.check,
        template.read(source, selector=canary_selector, window=window, at=at),
        template.read(source, selector=stable_selector, window=window, at=at),
        higher_is_better=template.higher_is_better,
    )


def _error(name: str, message: str) -> MetricVerdict:
    return MetricVerdict(
        name, Verdict.ERROR, None, None, 0.0, 0.0, None, None, f"{name}: {message}"
    )


def summarize(verdict: Verdict, metrics: Sequence[MetricVerdict]) -> str:
    """One line: the combined verdict, the metric that decided it (for a pass, the one
    closest to failing: the smallest p-value), and how many metrics said what."""
    if not metrics:
        return f"{verdict.value}: no metrics to measure"
    deciding = [m for m in metrics if m.verdict is verdict]
    worst = min(deciding, key=_closeness)
    tally = Counter(m.verdict for m in metrics)
    counts = ", ".join(f"{tally[v]} {v.value}" for v in _SEVERITY if tally[v])
    message = " ".join(worst.message.split())
    if len(message) > MAX_SUMMARY_MESSAGE:
        message = message[:MAX_SUMMARY_MESSAGE] + "...(truncated)"
    return f"{verdict.value}: {message} [{len(metrics)} metrics: {counts}]"


def measure(
    prometheus: MetricSource,
    judge: Judge | SequentialJudge,
    checks: Sequence[MetricTemplate],
    *,
    namespace: str,
    model: str,
    canary_version: str,
    stable_version: str,
    window: timedelta,
    at: datetime,
    alpha: float | None = None,
    rollout_alpha: float | None = None,
    history: Sequence[Window] = (),
    interval: timedelta | None = None,
    unit_label: str = "pod",
    baseline: tuple[datetime, timedelta] | None = None,
    selectors: tuple[str, str] | None = None,
) -> Measurement:
    """Judge the canary against stable on every metric over ``window`` ending at ``at``.

    For the sequential judge, ``window`` is everything since the weight went into force,
    ``alpha`` and ``rollout_alpha`` the step's shares of the rollout's false-rollback budget
    for this step's evidence and for the rollout's (split equally over the metrics here),
    ``history`` the windows of the rollout's earlier passed analysis steps (read again, each
    compared within itself) and ``interval`` the look interval (scalars pair one value per
    interval). ``baseline`` (end, length) reads stable over another window than the
    canary: the old version before the rollout, for the watch after promotion. After a
    temporary error (the source down or overloaded) the remaining
    metrics are not queried, so that an unreachable Prometheus costs one timeout per tick,
    not one per query; they are ``error`` with the same cause.
    """
    if at.tzinfo is None:
        raise ValueError("measure() needs an aware datetime (UTC): naive times are ambiguous")
    selectors = selectors or (
        selector(namespace=namespace, model=model, version=canary_version),
        selector(namespace=namespace, model=model, version=stable_version),
    )
    duration = promql_duration(window)
    verdicts: list[MetricVerdict] = []
    source_down: MetricSourceError | None = None
    look = None
    if isinstance(judge, SequentialJudge):
        if alpha is None:
            raise ValueError("the sequential judge needs the step's alpha")
        metrics = max(1, len(checks))
        look = Look(
            alpha=alpha / metrics,
            elapsed_seconds=window.total_seconds(),
            rollout_alpha=rollout_alpha / metrics if rollout_alpha is not None else None,
        )
    for template in checks:
        if source_down is not None:
            verdicts.append(_error(template.name, f"not measured: {source_down.message}"))
            continue
        try:
            if isinstance(judge, SequentialJudge):
                assert look is not None
                judged = _judge_sequential(
                    judge,
                    template,
                    prometheus,
                    selectors,
                    look,
                    at=at,
                    window=window,
                    interval=interval or window,
                    unit_label=unit_label,
                    history=history if rollout_alpha is not None else (),
                    baseline=baseline,
                )
            else:
                judged = _judge(judge, template, prometheus, selectors, duration, at)
            verdicts.append(judged)
        except MetricSourceError as error:
            verdicts.append(_error(template.name, error.message))
            if error.temporary:
                source_down = error
    verdict = combine(verdicts)
    return Measurement(at, verdict, summarize(verdict, verdicts), tuple(verdicts))


def _judge_sequential(
    judge: SequentialJudge,
    template: MetricTemplate,
    source: MetricSource,
    selectors: tuple[str, str],
    look: Look,
    *,
    at: datetime,
    window: timedelta,
    interval: timedelta,
    unit_label: str,
    history: Sequence[Window],
    baseline: tuple[datetime, timedelta] | None = None,
) -> MetricVerdict:
    duration = promql_duration(window)
    canary_selector, stable_selector = selectors
    stable_at, stable_span = at, duration
    if baseline is not None:
        stable_at, stable_span = baseline[0], promql_duration(baseline[1])
    # each earlier analysis step read over its own window, at its end
    past = [(promql_duration(w.end - w.start), w.end) for w in history if w.end > w.start]
    if isinstance(template, HistogramTemplate):
        histogram = template

        def pods(sel: str, span: str, end: datetime) -> PodHistograms:
            return histogram.read_pods(
                source, selector=sel, window=span, at=end, unit_label=unit_label
            )

        verdict = judge.histogram(
            template.check,
            pods(canary_selector, duration, at),
            pods(stable_selector, stable_span, stable_at),
            look,
            [(pods(canary_selector, s, e), pods(stable_selector, s, e)) for s, e in past],
        )
    elif isinstance(template, RatioTemplate):
        counts = template

        def ratio(sel: str, span: str, end: datetime) -> Ratio:
            return counts.read(source, selector=sel, window=span, at=end)

        verdict = judge.ratio(
            template.check,
            ratio(canary_selector, duration, at),
            ratio(stable_selector, stable_span, stable_at),
            look,
            [(ratio(canary_selector, s, e), ratio(stable_selector, s, e)) for s, e in past],
        )
    else:
        assert isinstance(template, ScalarTemplate)
        start = at - window
        canary_points, stable_points = (
            template.read_series(source, selector=sel, interval=interval, start=start, end=at)
            for sel in selectors
        )
        verdict = judge.scalar(
            template.check,
            canary_points,
            stable_points,
            look,
            higher_is_better=template.higher_is_better,
        )
    if verdict.inconclusive == Inconclusive.NO_SERIES.value:
        side = canary_selector if "canary" in verdict.message else stable_selector
        verdict = replace(verdict, message=f"{verdict.message} (selector {{{side}}})")
    return verdict
