"""The paired comparison of the live quality gate: exact tails and bounds, and a gate that
fails a canary no more often than alpha when it is no worse than the margin, whether the
items are exchangeable (exactly) or a fixed suite of items of unequal difficulty (by
simulation)."""

from __future__ import annotations

import functools
import math
from fractions import Fraction

import numpy as np
import pytest

from controlplane.analysis.stats.paired import (
    PairedResult,
    binomial_tail,
    clopper_pearson,
    compare_paired,
    mcnemar_exact,
    verdict_of,
)
from controlplane.analysis.verdict import Verdict

# --- exact tails and bounds -----------------------------------------------------------------


def exact_tail(k: int, n: int, p: Fraction) -> Fraction:
    return sum(
        (Fraction(math.comb(n, x)) * p**x * (1 - p) ** (n - x) for x in range(max(k, 0), n + 1)),
        Fraction(0),
    )


@pytest.mark.parametrize("n", [0, 1, 2, 7, 20, 45])
def test_the_binomial_tail_is_exact(n: int) -> None:
    for p in (0.0, 1e-6, 0.03, 0.3, 0.5, 0.77, 0.999, 1.0):
        for k in range(-1, n + 2):
            exact = float(exact_tail(k, n, Fraction(p)))
            assert binomial_tail(k, n, p) == pytest.approx(exact, rel=1e-12, abs=0), (k, n, p)


def test_the_binomial_tail_keeps_its_precision_far_out() -> None:
    assert binomial_tail(900, 900, 0.5) == pytest.approx(0.5**900, rel=1e-12)
    tiny = float(exact_tail(60, 100, Fraction(0.01)))  # about 1e-96
    assert binomial_tail(60, 100, 0.01) == pytest.approx(tiny, rel=1e-12)
    # below the mean: one minus the other side, summed the same way
    n, p = 5000, Fraction(0.002)
    below = sum(Fraction(math.comb(n, x)) * p**x * (1 - p) ** (n - x) for x in range(3))
    assert binomial_tail(3, n, 0.002) == pytest.approx(float(1 - below), rel=1e-12)


def test_clopper_pearson_matches_known_values() -> None:
    low, high = clopper_pearson(0, 10, 0.05)
    assert low == 0.0
    assert high == pytest.approx(1 - 0.05 ** (1 / 10), rel=1e-9)
    low, high = clopper_pearson(10, 10, 0.05)
    assert (low, high) == (pytest.approx(0.05 ** (1 / 10), rel=1e-9), 1.0)
    # 5 of 20: the textbook 95% two-sided interval is (0.0866, 0.4910)
    low, high = clopper_pearson(5, 20, 0.025)
    assert (round(low, 4), round(high, 4)) == (0.0866, 0.4910)
    assert clopper_pearson(0, 0, 0.05) == (0.0, 1.0)


@pytest.mark.parametrize(("k", "n"), [(1, 1), (3, 50), (14, 300), (290, 300), (2500, 5000)])
@pytest.mark.parametrize("alpha", [1e-9, 0.005, 0.05, 0.4])
def test_clopper_pearson_ends_sit_at_the_level_on_their_safe_side(
    k: int, n: int, alpha: float
) -> None:
    low, high = clopper_pearson(k, n, alpha)
    assert binomial_tail(k, n, low) == pytest.approx(alpha, rel=1e-6)
    assert binomial_tail(k, n, low) <= alpha * (1 + 1e-12)
    at_most = 1 - binomial_tail(k + 1, n, high) if high < 1 else 1.0
    assert at_most == pytest.approx(alpha, rel=1e-6) or high == 1.0
    assert low < k / n < high or k in (0, n)


def test_mcnemar_is_the_one_sided_sign_test_on_the_discordant_items() -> None:
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(5, 0) == 1 / 32
    assert mcnemar_exact(0, 5) == 1.0
    assert mcnemar_exact(12, 2) == pytest.approx((91 + 14 + 1) / 2**14, rel=1e-12)


# --- the comparison -------------------------------------------------------------------------


def test_a_clear_regression_fails_and_says_so() -> None:
    result = compare_paired(25, 5, 300, margin=0.01, alpha=0.05)
    assert result.worse
    assert result.delta == pytest.approx(20 / 300)
    assert 0.01 < result.delta_low < result.delta < result.delta_high
    assert result.p_value == pytest.approx(mcnemar_exact(25, 5))
    assert result.explain() == (
        "canary failed 25 items stable passed and passed 5 it failed (20 net of 300, "
        "-6.7 points; lower bound 3.2 points > margin 1.0): worse"
    )
    assert verdict_of(result, min_items=100) is Verdict.FAIL


def test_a_canary_within_noise_passes_with_how_much_worse_it_could_be() -> None:
    result = compare_paired(3, 5, 300, margin=0.01, alpha=0.05)
    assert not result.worse
    assert result.delta_low < 0 < result.delta_high < 0.03
    assert result.explain() == (
        "canary failed 3 items stable passed and passed 5 it failed (-2 net of 300, "
        "+0.7 points; lower bound -4.3 points <= margin 1.0, no worse than 1.6 points): "
        "not shown worse"
    )
    assert verdict_of(result, min_items=100) is Verdict.PASS
    assert verdict_of(result, min_items=301) is Verdict.INCONCLUSIVE


def test_significant_but_within_the_margin_is_not_a_failure() -> None:
    worse_by_a_little = compare_paired(40, 20, 300, margin=0.02, alpha=0.05)
    assert worse_by_a_little.p_value < 0.05  # the canary is worse...
    assert worse_by_a_little.delta_low <= 0.02  # ...but not shown worse than the margin
    assert not worse_by_a_little.worse
    assert compare_paired(40, 20, 300, margin=0.0, alpha=0.05).worse


def test_no_items_is_inconclusive_whatever_the_minimum() -> None:
    result = compare_paired(0, 0, 0, margin=0.01, alpha=0.05)
    assert (result.worse, result.delta, result.p_value) == (False, 0.0, 1.0)
    assert (result.delta_low, result.delta_high) == (-1.0, 1.0)
    assert result.explain() == "no items answered by both versions: nothing to compare"
    assert verdict_of(result, min_items=0) is Verdict.INCONCLUSIVE


def test_no_discordant_items_bounds_the_difference_by_the_items_answered() -> None:
    result = compare_paired(0, 0, 300, margin=0.01, alpha=0.05)
    assert not result.worse
    assert result.p_value == 1.0
    # nothing differed in 300 items: neither is more than about log(1/alpha)/n ahead
    assert -0.02 < result.delta_low < 0 < result.delta_high < 0.02
    assert "no worse than 1.2 points)" in result.explain()
    assert verdict_of(result, min_items=300) is Verdict.PASS
    assert verdict_of(result, min_items=500) is Verdict.INCONCLUSIVE


def test_everything_discordant() -> None:
    lost_all = compare_paired(20, 0, 20, margin=0.05, alpha=0.05)
    assert lost_all.worse
    assert lost_all.delta == 1.0
    assert lost_all.delta_high == 1.0
    assert lost_all.explain().startswith(
        "canary failed 20 items stable passed and passed 0 it failed (20 net of 20, "
        "-100.0 points; lower bound "
    )
    # a failure needs no minimum: the test is valid at any number of items
    assert verdict_of(lost_all, min_items=100) is Verdict.FAIL
    won_all = compare_paired(0, 20, 20, margin=0.0, alpha=0.05)
    assert not won_all.worse
    assert won_all.delta_high < 0  # shown better
    assert verdict_of(won_all, min_items=20) is Verdict.PASS
    even = compare_paired(10, 10, 20, margin=0.0, alpha=0.05)
    assert not even.worse
    assert even.delta_low < 0 < even.delta_high
    one = compare_paired(1, 0, 1, margin=0.0, alpha=0.05)
    assert (one.worse, one.p_value, one.explain().split(" (")[0]) == (
        False,
        0.5,
        "canary failed 1 item stable passed and passed 0 it failed",
    )


@pytest.mark.parametrize(
    "args",
    [
        (-1, 0, 10, 0.0, 0.05),
        (6, 5, 10, 0.0, 0.05),
        (1, 1, 10, -0.01, 0.05),
        (1, 1, 10, 1.0, 0.05),
        (1, 1, 10, 0.0, 0.0),
        (1, 1, 10, 0.0, 0.5),
    ],
)
def test_impossible_inputs_are_refused(args: tuple[int, int, int, float, float]) -> None:
    b, c, n, margin, alpha = args
    with pytest.raises(ValueError, match=r"must|need"):
        compare_paired(b, c, n, margin=margin, alpha=alpha)


def test_a_negative_minimum_is_refused() -> None:
    with pytest.raises(ValueError, match="min_items"):
        verdict_of(compare_paired(1, 1, 10, margin=0.0, alpha=0.05), min_items=-1)


@pytest.mark.parametrize("alpha", [0.05, 0.01])
def test_at_margin_zero_it_is_exactly_mcnemar_and_the_bounds_agree(alpha: float) -> None:
    n = 60
    for b in range(0, 25):
        for c in range(0, 25 - b):
            result = compare_paired(b, c, n, margin=0.0, alpha=alpha)
            rejects = mcnemar_exact(b, c) <= alpha
            assert result.worse is rejects
            assert (result.delta_low >= 0) if rejects else (result.delta_low < 0)
            assert result.delta_low <= result.delta <= result.delta_high
            assert result.delta_low >= -1
            assert result.delta_high <= 1


@pytest.mark.parametrize("margin", [0.0, 0.03])
def test_more_items_lost_never_turns_a_failure_into_a_pass(margin: float) -> None:
    """Failing is monotone: one more item only stable passed, or one fewer only the canary
    passed, never rescues the canary (so a failure is a threshold in b for each c)."""
    n = 200
    worse = {
        (b, c): compare_paired(b, c, n, margin=margin, alpha=0.05)
        for b in range(0, 31)
        for c in range(0, 13)
    }
    for (b, c), result in worse.items():
        if result.worse:
            assert result.p_value <= 0.05  # never without the exact test's rejection
            assert (b + 1, c) not in worse or worse[b + 1, c].worse
            assert (b, c - 1) not in worse or worse[b, c - 1].worse
        if result.delta_low > 0 and (b + 1, c) in worse:
            assert worse[b + 1, c].delta_low >= result.delta_low


# --- calibration: exact, exchangeable items ---------------------------------------------------


def thresholds(n: int, margin: float, alpha: float) -> list[int]:
    """For each number d of discordant items, the fewest of them stable must win for the
    canary to fail (d + 1: never). Failing is monotone in b given d (see above)."""
    out = []
    for d in range(n + 1):
        low, high = -1, d + 1  # fails at high, not at low
        while high - low > 1:
            mid = (low + high) // 2
            if compare_paired(mid, d - mid, n, margin=margin, alpha=alpha).worse:
                high = mid
            else:
                low = mid
        out.append(high)
    return out


def false_failure(ks: list[int], n: int, beta: float, gamma: float) -> float:
    """P[fail] when each item is discordant stable's way with chance beta, the canary's
    with chance gamma, independently: d ~ Binomial(n, beta + gamma), b | d ~ Binomial(d, pi)."""
    p, total = beta + gamma, 0.0
    for d, k in enumerate(ks):
        p_d = math.comb(n, d) * p**d * (1 - p) ** (n - d)
        total += p_d * binomial_tail(k, d, beta / p)
    return total


@pytest.mark.parametrize(("margin", "alpha"), [(0.0, 0.05), (0.05, 0.05), (0.05, 0.01)])
def test_the_false_failure_rate_is_at_most_alpha_exactly_at_the_margin(
    margin: float, alpha: float
) -> None:
    """With exchangeable items the counts are exactly trinomial: the chance of failing a
    canary exactly ``margin`` worse is computed, not sampled, over the nuisance (how many
    items differ at all) from almost none to most."""
    n = 40
    ks = thresholds(n, margin, alpha)
    sizes = [
        false_failure(ks, n, gamma + margin, gamma)
        for gamma in (0.0, 0.005, 0.01, 0.02, 0.04, 0.07, 0.1, 0.15, 0.2, 0.3, 0.4)
        if gamma + margin > 0
    ]
    assert max(sizes) <= alpha
    assert max(sizes) > alpha / 4, "a gate that (almost) never fails tests nothing"


# --- calibration and power: a fixed suite of items of unequal difficulty --------------------

ITEMS = 300


def suite(rng: np.random.Generator) -> np.ndarray:
    """Stable's chance to pass each item: most items always pass or always fail, a few are
    flaky (Beta, U-shaped): mean 0.85, and 3% of the items flip each way between two
    versions that are equally good."""
    mean, flips = 0.85, 0.03
    spread = mean * (1 - mean) / (mean * (1 - mean) - flips) - 1  # E[s (1 - s)] = flips
    return rng.beta(mean * spread, (1 - mean) * spread, size=ITEMS)


def counts(
    rng: np.random.Generator, stable: np.ndarray, canary: np.ndarray, trials: int
) -> list[tuple[int, int]]:
    """(b, c) for each trial: both versions answer every item once, independently."""
    s = rng.random((trials, ITEMS)) < stable
    c = rng.random((trials, ITEMS)) < canary
    return list(zip((s & ~c).sum(axis=1).tolist(), (~s & c).sum(axis=1).tolist(), strict=True))


def failure_rate(pairs: list[tuple[int, int]], margin: float, alpha: float) -> float:
    @functools.cache
    def fails(b: int, c: int) -> bool:
        # compare_paired fails only where the exact McNemar test rejects (tested above):
        # the other pairs need no call
        if mcnemar_exact(b, c) > alpha:
            return False
        result = compare_paired(b, c, ITEMS, margin=margin, alpha=alpha)
        return verdict_of(result, min_items=ITEMS) is Verdict.FAIL

    return sum(fails(b, c) for b, c in pairs) / len(pairs)


@pytest.mark.parametrize("alpha", [0.05, 0.01])
def test_a_canary_as_good_as_stable_or_exactly_margin_worse_fails_at_most_alpha(
    alpha: float,
) -> None:
    rng = np.random.default_rng(7)
    stable = suite(rng)
    trials = 4000
    slack = 3 * math.sqrt(alpha * (1 - alpha) / trials)
    same = counts(rng, stable, stable, trials)
    for margin in (0.0, 0.02):
        assert failure_rate(same, margin, alpha) <= alpha + slack
    # exactly two points worse: the canary's chance on each item shrunk in proportion
    margin = 0.02
    canary = stable * (1 - margin / stable.mean())
    assert stable.mean() - canary.mean() == pytest.approx(margin)
    at_margin = failure_rate(counts(rng, stable, canary, trials), margin, alpha)
    assert at_margin <= alpha + slack
    same_at_zero = failure_rate(same, 0.0, alpha)
    assert same_at_zero > alpha / 5, "a gate that (almost) never fails tests nothing"


def test_a_canary_that_forgot_a_tenth_of_what_stable_knows_fails_nearly_always() -> None:
    rng = np.random.default_rng(11)
    stable = suite(rng)
    known = np.flatnonzero(stable > 0.5)
    forgot = rng.choice(known, size=round(0.1 * len(known)), replace=False)
    canary = stable.copy()
    canary[forgot] = 0.0
    pairs = counts(rng, stable, canary, 2000)
    extra = np.mean([b - c for b, c in pairs])
    assert 20 < extra < 30  # about 25 more items lost than won
    assert failure_rate(pairs, 0.0, 0.01) > 0.95


def test_results_are_plain_values() -> None:
    result = compare_paired(12, 2, 300, margin=0.01, alpha=0.05)
    assert isinstance(result, PairedResult)
    assert result == compare_paired(12, 2, 300, margin=0.01, alpha=0.05)
    with pytest.raises(AttributeError):
        result.b = 3  # type: ignore[misc]
