"""The judges: statistical evidence, margins, bounds, and never a verdict on thin data."""

from __future__ import annotations

import random

import pytest

from controlplane.analysis.judge import (
    Check,
    Histogram,
    MetricVerdict,
    Ratio,
    combine,
    judge_histogram,
    judge_ratio,
    mann_whitney_greater,
)
from controlplane.analysis.verdict import Verdict

BOUNDS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0, float("inf"))


def histogram(samples: list[float]) -> Histogram:
    return Histogram(tuple((le, float(sum(1 for s in samples if s <= le))) for le in BOUNDS))


def latencies(rng: random.Random, n: int, median: float) -> list[float]:
    return [rng.lognormvariate(0, 0.4) * median for _ in range(n)]


TTFT = Check(name="ttft", margin=0.10)


def test_quantile_interpolates_like_prometheus() -> None:
    h = Histogram(((0.1, 50.0), (0.2, 100.0), (float("inf"), 100.0)))
    assert h.quantile(0.5) == pytest.approx(0.1)
    assert h.quantile(0.75) == pytest.approx(0.15)
    assert Histogram(((1.0, 0.0), (float("inf"), 0.0))).quantile(0.5) is None


def test_same_distribution_passes() -> None:
    rng = random.Random(1)
    v = judge_histogram(
        TTFT, histogram(latencies(rng, 400, 0.2)), histogram(latencies(rng, 4000, 0.2))
    )
    assert v.verdict is Verdict.PASS
    assert v.p_value is not None
    assert v.p_value > 0.05


def test_clearly_slower_canary_fails_with_its_numbers() -> None:
    rng = random.Random(2)
    v = judge_histogram(
        TTFT, histogram(latencies(rng, 400, 0.4)), histogram(latencies(rng, 4000, 0.2))
    )
    assert v.verdict is Verdict.FAIL
    assert v.canary_value is not None
    assert v.stable_value is not None
    assert v.canary_value > v.stable_value * 1.5
    assert "ttft p95 canary" in v.message
    assert "Mann-Whitney" in v.message


def test_slower_within_the_margin_passes() -> None:
    rng = random.Random(3)
    v = judge_histogram(
        Check(name="ttft", margin=0.5),
        histogram(latencies(rng, 2000, 0.22)),
        histogram(latencies(rng, 2000, 0.2)),
    )
    assert v.verdict is Verdict.PASS


def test_faster_canary_passes() -> None:
    rng = random.Random(4)
    v = judge_histogram(
        TTFT, histogram(latencies(rng, 500, 0.1)), histogram(latencies(rng, 500, 0.2))
    )
    assert v.verdict is Verdict.PASS


@pytest.mark.parametrize("canary_n", [0, 3, 49])
def test_too_few_canary_samples_is_inconclusive_even_when_terrible(canary_n: int) -> None:
    v = judge_histogram(TTFT, histogram([9.0] * canary_n), histogram([0.1] * 1000))
    assert v.verdict is Verdict.INCONCLUSIVE
    assert "too few samples" in v.message


def test_absolute_bound_fails_on_its_own() -> None:
    rng = random.Random(5)
    check = Check(name="ttft", margin=1.0, max_value=0.3)
    same = latencies(rng, 500, 0.5)
    v = judge_histogram(check, histogram(same), histogram(same))
    assert v.verdict is Verdict.FAIL
    assert "over the bound" in v.message


def test_mismatched_buckets_are_an_error_not_a_verdict() -> None:
    a = Histogram(((0.1, 100.0), (float("inf"), 100.0)))
    b = Histogram(((0.2, 100.0), (float("inf"), 100.0)))
    assert judge_histogram(TTFT, a, b).verdict is Verdict.ERROR


def test_false_rollback_rate_is_near_alpha() -> None:
    """Under no regression at all, the judge fails about alpha of the time or less."""
    rng = random.Random(6)
    fails = 0
    trials = 200
    for _ in range(trials):
        v = judge_histogram(
            Check(name="ttft", margin=0.0),
            histogram(latencies(rng, 200, 0.2)),
            histogram(latencies(rng, 200, 0.2)),
        )
        fails += v.verdict is Verdict.FAIL
    assert fails / trials < 0.10


def test_mann_whitney_direction() -> None:
    z_up, p_up = mann_whitney_greater([0, 10, 90], [90, 10, 0])
    z_down, p_down = mann_whitney_greater([90, 10, 0], [0, 10, 90])
    assert z_up > 0 > z_down
    assert p_up < 0.001 < p_down


ERRORS = Check(name="error_rate", margin=0.01)


def test_error_rate_regression_fails() -> None:
    v = judge_ratio(ERRORS, Ratio(events=30, total=500), Ratio(events=10, total=5000))
    assert v.verdict is Verdict.FAIL
    assert "error_rate canary 6.000% vs stable 0.200%" in v.message


def test_error_rate_noise_passes() -> None:
    v = judge_ratio(ERRORS, Ratio(events=2, total=500), Ratio(events=15, total=5000))
    assert v.verdict is Verdict.PASS


def test_zero_traffic_canary_is_inconclusive_not_a_pass() -> None:
    v = judge_ratio(ERRORS, Ratio(events=0, total=0), Ratio(events=0, total=5000))
    assert v.verdict is Verdict.INCONCLUSIVE
    assert v.canary_value is None


def test_combine_takes_the_worst() -> None:
    def mv(verdict: Verdict) -> MetricVerdict:
        return MetricVerdict("m", verdict, None, None, 0, 0, None, None, "")

    assert combine([mv(Verdict.PASS), mv(Verdict.INCONCLUSIVE)]) is Verdict.INCONCLUSIVE
    assert combine([mv(Verdict.ERROR), mv(Verdict.FAIL)]) is Verdict.FAIL
    assert combine([mv(Verdict.PASS), mv(Verdict.ERROR)]) is Verdict.ERROR
    assert combine([]) is Verdict.INCONCLUSIVE


def test_each_verdict_records_the_threshold_its_margin_rule_used() -> None:
    rng = random.Random(3)
    stable = histogram(latencies(rng, 400, 0.2))
    canary = histogram(latencies(rng, 400, 0.4))
    result = judge_histogram(TTFT, canary, stable)
    assert result.stable_value is not None
    assert result.threshold == pytest.approx(result.stable_value * 1.10)
    errors = judge_ratio(
        Check(name="error_rate", margin=0.01), Ratio(events=9, total=400), Ratio(4, 400)
    )
    assert errors.threshold == pytest.approx(4 / 400 + 0.01)
    too_few = judge_ratio(Check(name="error_rate", margin=0.01), Ratio(1, 10), Ratio(1, 10))
    assert too_few.threshold is None  # no rule was applied: nothing to draw
