"""The sequential judge: fail means beyond the margin with evidence, pass means the traffic
to catch the stated regression, inconclusive says why; pods and looks are noise."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks.fleet import TTFT_B, bucket_probabilities, tail_probabilities
from controlplane.analysis.judge import Check, Histogram, PodHistograms, Ratio
from controlplane.analysis.sequential import Look, SequentialJudge
from controlplane.analysis.verdict import Inconclusive, Verdict

JUDGE = SequentialJudge()
TTFT = Check("ttft", margin=0.10)
P99 = Check("ttft_p99", margin=0.10, quantile=0.99)
ERRORS = Check("error_rate", margin=0.005)
LOOK = Look(alpha=0.001, elapsed_seconds=300)


def histogram(counts: np.ndarray) -> Histogram:
    return Histogram(
        tuple(zip(TTFT_B.tolist(), np.cumsum(counts).astype(float).tolist(), strict=True))
    )


def version(
    rng: np.random.Generator, n_per_pod: int, speeds: list[float], median: float = 0.2
) -> PodHistograms:
    return PodHistograms(
        tuple(
            (
                f"pod-{i}",
                histogram(
                    rng.multinomial(n_per_pod, bucket_probabilities(TTFT_B, median * s, 0.6))
                ),
            )
            for i, s in enumerate(speeds)
        )
    )


def test_a_clearly_slower_canary_fails_with_its_effect_interval_and_margin() -> None:
    rng = np.random.default_rng(1)
    v = JUDGE.histogram(TTFT, version(rng, 2000, [1.5]), version(rng, 2000, [1, 1]), LOOK)
    assert v.verdict is Verdict.FAIL
    assert v.effect is not None
    assert v.effect_lower is not None
    assert v.effect_lower > 0.10
    assert v.effect == pytest.approx(0.5, abs=0.1)
    assert "worse than stable by more than the margin" in v.message
    assert v.threshold is not None


def test_a_canary_on_a_slower_node_is_not_a_worse_version_at_any_traffic() -> None:
    rng = np.random.default_rng(2)
    for n in (2000, 20000, 200000):
        v = JUDGE.histogram(TTFT, version(rng, n, [1.07]), version(rng, n, [1.0, 0.98]), LOOK)
        assert v.verdict is not Verdict.FAIL, v.message


def test_a_canary_exactly_at_the_margin_fails_at_most_alpha_of_the_time_over_many_looks() -> None:
    rng = np.random.default_rng(3)
    look = Look(alpha=0.05, elapsed_seconds=60)
    p_canary = bucket_probabilities(TTFT_B, 0.2 * 1.10, 0.6)
    p_stable = bucket_probabilities(TTFT_B, 0.2, 0.6)
    failed = 0
    runs = 200
    for _ in range(runs):
        canary = np.zeros(len(TTFT_B))
        stable = [np.zeros(len(TTFT_B)), np.zeros(len(TTFT_B))]
        for _look in range(15):
            canary += rng.multinomial(400, p_canary)
            for i in range(len(stable)):
                stable[i] = stable[i] + rng.multinomial(400, p_stable)
            v = JUDGE.histogram(
                Check("ttft", margin=0.10, pod_spread=0.001),
                PodHistograms((("c", histogram(canary)),)),
                PodHistograms(tuple((f"s{i}", histogram(s)) for i, s in enumerate(stable))),
                look,
            )
            if v.verdict is Verdict.FAIL:
                failed += 1
                break
    assert failed / runs <= 0.05


def test_a_tail_only_regression_is_caught_by_the_check_that_names_the_tail() -> None:
    rng = np.random.default_rng(4)
    base = bucket_probabilities(TTFT_B, 0.2, 0.6)
    # the slowest 3% stretched beyond the p97: p99 +60%, p95 unchanged
    tail = tail_probabilities(TTFT_B, 0.2, 0.6)
    canary = PodHistograms((("c", histogram(rng.multinomial(40000, tail / tail.sum()))),))
    stable = PodHistograms((("s", histogram(rng.multinomial(80000, base))),))
    p95 = JUDGE.histogram(TTFT, canary, stable, LOOK)
    p99 = JUDGE.histogram(P99, canary, stable, LOOK)
    assert p95.verdict is not Verdict.FAIL
    assert p99.verdict is Verdict.FAIL, p99.message


def test_thin_traffic_is_inconclusive_with_what_is_still_needed_and_how_long() -> None:
    rng = np.random.default_rng(5)
    v = JUDGE.histogram(TTFT, version(rng, 150, [1.0]), version(rng, 300, [1, 1]), LOOK)
    assert v.verdict is Verdict.INCONCLUSIVE
    assert v.inconclusive == Inconclusive.TOO_FEW.value
    assert v.needed is not None
    assert v.needed > 0
    assert v.eta_seconds is not None
    assert v.eta_seconds == pytest.approx(v.needed / (150 / 300), rel=0.01)
    assert "more canary requests" in v.message


def test_enough_traffic_for_the_stated_regression_passes() -> None:
    rng = np.random.default_rng(6)
    v = JUDGE.histogram(TTFT, version(rng, 3000, [1.0]), version(rng, 3000, [1, 1]), LOOK)
    assert v.verdict is Verdict.PASS, v.message
    assert v.power is not None
    assert v.power >= 0.8


@pytest.mark.parametrize(
    ("canary", "stable", "kind"),
    [
        (
            PodHistograms(()),
            PodHistograms((("s", Histogram(((1.0, 5.0), (math.inf, 5.0)))),)),
            "no_series",
        ),
        (
            PodHistograms((("c", Histogram(((1.0, 0.0), (math.inf, 0.0)))),)),
            PodHistograms((("s", Histogram(((1.0, 5.0), (math.inf, 5.0)))),)),
            "no_traffic",
        ),
        (
            PodHistograms((("c", Histogram(((0.1, 10.0), (math.inf, 1000.0)))),)),
            PodHistograms((("s", Histogram(((0.1, 10.0), (math.inf, 1000.0)))),)),
            "unresolvable",
        ),
    ],
)
def test_inconclusive_says_which_kind(
    canary: PodHistograms, stable: PodHistograms, kind: str
) -> None:
    v = JUDGE.histogram(TTFT, canary, stable, LOOK)
    assert v.verdict is Verdict.INCONCLUSIVE
    assert v.inconclusive == kind


def test_per_token_observations_are_counted_by_request() -> None:
    rng = np.random.default_rng(7)
    canary, stable = version(rng, 6400, [1.0]), version(rng, 6400, [1, 1])
    by_token = JUDGE.histogram(TTFT, canary, stable, LOOK)
    by_request = JUDGE.histogram(
        TTFT,
        PodHistograms(canary.pods, units=100),
        PodHistograms(stable.pods, units=200),
        LOOK,
    )
    assert by_token.effect_upper is not None
    assert by_request.effect_upper is not None
    assert by_request.effect_upper > by_token.effect_upper
    assert "(100/200 requests)" in by_request.message


# --- ratios ---------------------------------------------------------------------------------


def test_two_errors_in_120_against_two_in_1080_is_not_a_failure() -> None:
    v = JUDGE.ratio(ERRORS, Ratio(2, 120, 1), Ratio(2, 1080, 1), LOOK)
    assert v.verdict is Verdict.INCONCLUSIVE
    assert v.effect_lower is not None
    assert v.effect_lower < 0.005


def test_zero_errors_are_handled_exactly() -> None:
    v = JUDGE.ratio(ERRORS, Ratio(0, 5000, 1), Ratio(0, 10000, 1), LOOK)
    assert v.verdict is Verdict.PASS, v.message
    assert v.effect == 0


def test_many_more_errors_fail_with_the_points_over_the_margin() -> None:
    v = JUDGE.ratio(ERRORS, Ratio(120, 3000, 1), Ratio(30, 6000, 1), LOOK)
    assert v.verdict is Verdict.FAIL
    assert "pts" in v.message
    assert v.effect == pytest.approx(0.035)


def test_an_error_check_without_series_or_traffic_says_so() -> None:
    assert JUDGE.ratio(ERRORS, Ratio(0, 0, 0), Ratio(3, 100, 1), LOOK).inconclusive == "no_series"
    assert JUDGE.ratio(ERRORS, Ratio(0, 0, 1), Ratio(3, 100, 1), LOOK).inconclusive == "no_traffic"


# --- scalars --------------------------------------------------------------------------------


def test_a_scalar_needs_three_paired_intervals_then_judges_their_ratio() -> None:
    stable = [(float(t), 100.0 + t % 3) for t in range(10)]
    few = JUDGE.scalar(
        Check("tps", margin=0.1), stable[:2], stable[:2], LOOK, higher_is_better=True
    )
    assert few.inconclusive == "too_few"
    worse = [(t, v * 0.5) for t, v in stable]
    v = JUDGE.scalar(Check("tps", margin=0.1), worse, stable, LOOK, higher_is_better=True)
    assert v.verdict is Verdict.FAIL, v.message
    same = JUDGE.scalar(Check("tps", margin=0.1), stable, stable, LOOK, higher_is_better=True)
    assert same.verdict is not Verdict.FAIL
