"""The statistics under the sequential judge, each against simulated data with the noise its
docstring states: the false-alarm rate it promises holds over every look, not one."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks.fleet import TTFT_B, bucket_probabilities
from controlplane.analysis.stats import counts, quantiles
from controlplane.analysis.stats.sequential import (
    normal_cdf,
    normal_quantile,
    one_sided_radius,
)

# --- sequential boundaries ------------------------------------------------------------------


def test_normal_quantile_inverts_the_cdf_in_both_tails() -> None:
    for p in (1e-9, 1e-4, 0.02, 0.3, 0.5, 0.9, 0.999, 1 - 1e-9):
        assert normal_cdf(normal_quantile(p)) == pytest.approx(p, rel=1e-9, abs=1e-15)


def test_the_radius_shrinks_with_information_but_slower_than_a_fixed_test() -> None:
    radii = [one_sided_radius(i, 0.001, 0.3) for i in (10, 100, 1000, 10000)]
    assert radii == sorted(radii, reverse=True)
    fixed = normal_quantile(1 - 0.001) / math.sqrt(10000)
    assert radii[-1] > fixed, "always-valid costs something over one fixed look"
    assert radii[-1] < 2 * fixed, "...but not much"


def test_a_random_walk_crosses_the_boundary_at_any_of_many_looks_at_most_alpha_of_the_time() -> (
    None
):
    rng = np.random.default_rng(7)
    alpha, paths, looks, per_look = 0.05, 4000, 200, 5
    steps = rng.normal(0, 1, size=(paths, looks * per_look)).cumsum(axis=1)[
        :, per_look - 1 :: per_look
    ]
    information = np.arange(1, looks + 1) * per_look  # unit variance per observation
    radius = np.array([one_sided_radius(float(i), alpha, 0.2) for i in information])
    estimate = steps / information
    crossed = (estimate > radius).any(axis=1).mean()
    assert crossed <= alpha, f"crossed on {crossed:.3f} of the paths"
    assert crossed > alpha / 10, "a boundary that is never reached tests nothing"


# --- counts -------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [0.002, 0.01, 0.05])
def test_the_rate_stays_inside_its_sequence_at_every_look(rate: float) -> None:
    rng = np.random.default_rng(int(rate * 1e4))
    alpha, paths, looks, per_look = 0.05, 600, 40, 100
    events = rng.binomial(1, rate, size=(paths, looks * per_look)).cumsum(axis=1)
    missed = 0
    for path in events:
        for k in range(1, looks + 1):
            n = k * per_look
            low, high = counts.bounds(float(path[n - 1]), float(n), alpha)
            if not low <= rate <= high:
                missed += 1
                break
    assert missed / paths <= alpha


def test_bounds_are_exact_at_zero_one_and_two_events() -> None:
    assert counts.bounds(0, 100, 0.01)[0] == 0.0
    low, high = counts.bounds(1, 100, 0.01)
    assert 0 < low < 0.01 < high < 0.2
    # the case: 2/120 against 2/1080 is no evidence of a worse canary
    canary_low, _ = counts.bounds(2, 120, 0.0005)
    _, stable_high = counts.bounds(2, 1080, 0.0005)
    assert canary_low - stable_high < 0
    assert counts.bounds(5, 0, 0.01) == (0.0, 1.0)


# --- quantiles of bucketed histograms ---------------------------------------------------


def cumulative(bounds: np.ndarray, counts_: np.ndarray) -> list[tuple[float, float]]:
    return list(zip(bounds.tolist(), np.cumsum(counts_).astype(float).tolist(), strict=True))


@pytest.mark.parametrize("q", [0.5, 0.95, 0.99])
@pytest.mark.parametrize("median", [0.05, 0.2, 0.4])
def test_probit_interpolation_recovers_a_log_normal_quantile_from_coarse_buckets(
    q: float, median: float
) -> None:
    exact = bucket_probabilities(TTFT_B, median, 0.6) * 1e6
    got = quantiles.quantile(cumulative(TTFT_B, exact), q)
    assert got is not None
    assert got == pytest.approx(median * math.exp(0.6 * normal_quantile(q)), rel=0.01)


def test_probit_interpolation_stays_close_on_a_two_mode_mix_where_linear_is_far_off() -> None:
    mix = 0.7 * bucket_probabilities(TTFT_B, 0.12, 0.45) + 0.3 * bucket_probabilities(
        TTFT_B, 0.45, 0.5
    )
    buckets = cumulative(TTFT_B, mix * 1e6)

    def true_quantile(q: float) -> float:
        low, high = -8.0, 4.0
        for _ in range(100):
            mid = (low + high) / 2
            value = 0.7 * normal_cdf((mid - math.log(0.12)) / 0.45) + 0.3 * normal_cdf(
                (mid - math.log(0.45)) / 0.5
            )
            low, high = (mid, high) if value < q else (low, mid)
        return math.exp(low)

    from controlplane.analysis.judge import Histogram

    for q in (0.95, 0.99):
        probit = quantiles.quantile(buckets, q)
        linear = Histogram(tuple(buckets)).quantile(q)
        assert probit is not None
        assert linear is not None
        assert abs(probit / true_quantile(q) - 1) < 0.03
    assert abs(linear / true_quantile(0.99) - 1) > 0.3, "Prometheus' linear interpolation"


def test_a_quantile_in_the_inf_bucket_is_unresolvable() -> None:
    buckets = [(1.0, 10.0), (2.0, 90.0), (math.inf, 100.0)]
    assert quantiles.quantile(buckets, 0.95) is None
    assert quantiles.quantile(buckets, 0.5) is not None
    assert quantiles.quantile([(1.0, 0.0), (math.inf, 0.0)], 0.5) is None


@pytest.mark.parametrize(("median", "n"), [(0.2, 150), (0.4, 400), (0.2, 3000)])
def test_the_variance_of_a_log_quantile_matches_what_samples_show(median: float, n: int) -> None:
    rng = np.random.default_rng(n)
    p = bucket_probabilities(TTFT_B, median, 0.6)
    logs, estimates = [], []
    for _ in range(400):
        buckets = cumulative(TTFT_B, rng.multinomial(n, p))
        value = quantiles.quantile(buckets, 0.95)
        variance = quantiles.log_quantile_variance(buckets, 0.95, n)
        assert value is not None
        assert variance is not None
        logs.append(math.log(value))
        estimates.append(variance)
    empirical = float(np.var(logs))
    ratio = float(np.mean(estimates)) / empirical
    # never much smaller than the truth (that would be overconfident), at worst cautious
    assert 0.8 < ratio < 1.5, f"estimated / empirical variance {ratio:.2f}"


def test_quantile_never_raises_on_odd_histograms() -> None:
    rng = np.random.default_rng(3)
    for _ in range(2000):
        k = int(rng.integers(1, 8))
        bounds = sorted(rng.choice([0.01, 0.1, 0.5, 1.0, 2.5, 10.0, math.inf], k, replace=False))
        raw = rng.choice([0.0, 0.5, 1.0, 3.0, 1e6, -2.0, math.nan], k)
        buckets = list(zip(bounds, np.cumsum(raw).tolist(), strict=True))
        for q in (0.01, 0.5, 0.95, 0.99):
            value = quantiles.quantile(buckets, q)
            assert value is None or (math.isfinite(value) and value >= 0)
            variance = quantiles.log_quantile_variance(buckets, q, 50.0)
            assert variance is None or variance >= 0


def test_pod_spread_follows_the_pods_when_there_are_many_and_the_prior_when_few() -> None:
    rng = np.random.default_rng(11)
    many = [
        [quantiles.PodQuantile(float(rng.normal(0, 0.10)), 1e-4, 1000) for _ in range(30)]
        for _ in range(2)
    ]
    spread = quantiles.pod_variance(many, prior_sd=0.03)
    assert spread.data_df == 58
    assert spread.sd == pytest.approx(0.10, rel=0.25)
    two = [[quantiles.PodQuantile(0.0, 1e-4, 1000), quantiles.PodQuantile(0.2, 1e-4, 1000)]]
    few = quantiles.pod_variance(two, prior_sd=0.03)
    assert 0.03 < few.sd < 0.1, "one degree of freedom moves the prior, it does not replace it"
    alone = quantiles.pod_variance([[quantiles.PodQuantile(0.0, 1e-4, 1000)]], prior_sd=0.03)
    assert alone.sd == 0.03
    assert alone.data_df == 0
