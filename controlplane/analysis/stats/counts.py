"""Exact, always-valid confidence sequences for a proportion (error share, failure share).

**Noise model.** Each request of a version fails or not; given the past, the chance that
the next one fails is that version's rate. Nothing is assumed about the number of events:
0, 1 or 2 errors are handled exactly, with no normal approximation.

**Guarantee.** :func:`bounds` inverts the beta-binomial mixture martingale (Robbins 1970;
the conjugate mixture of Howard et al. 2021): for a rate ``p``, ``B(x+a, n-x+b) / B(a, b) /
(p^x (1-p)^(n-x))`` is a nonnegative martingale with mean one, so by Ville's inequality
the set of ``p`` where it stays below ``1/alpha`` holds the true rate at every look at
once with probability at least ``1 - alpha``. Each end of the interval, alone, is a valid
one-sided bound at ``alpha``. The prior ``Beta(a, b)`` only sets where the sequence is
tightest (here around a 1% error share); it never affects validity.
"""

from __future__ import annotations

import math

PRIOR_A = 0.5
PRIOR_B = 40.0


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def log_mixture_ratio(p: float, events: float, total: float) -> float:
    """log of the mixture likelihood ratio against the rate ``p``."""
    x, n = events, total
    value = _log_beta(x + PRIOR_A, n - x + PRIOR_B) - _log_beta(PRIOR_A, PRIOR_B)
    if x > 0:
        value -= x * math.log(p) if p > 0 else -math.inf
    if n - x > 0:
        value -= (n - x) * math.log1p(-p) if p < 1 else -math.inf
    return value


def bounds(events: float, total: float, alpha: float) -> tuple[float, float]:
    """(lower, upper) ends of the level-``alpha`` confidence sequence for the rate."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), not {alpha}")
    if total <= 0:
        return 0.0, 1.0
    x = min(max(events, 0.0), total)
    target = math.log(1 / alpha)
    center = x / total

    def outside(p: float) -> bool:
        return log_mixture_ratio(p, x, total) >= target

    lower = 0.0
    if x > 0 and outside(1e-12):
        low, high = 1e-12, center
        for _ in range(60):
            mid = math.sqrt(low * high) if low > 0 else high / 2
            if outside(mid):
                low = mid
            else:
                high = mid
        lower = low
    upper = 1.0
    if x < total and outside(1 - 1e-12):
        low, high = center, 1 - 1e-12
        for _ in range(60):
            mid = (low + high) / 2
            if outside(mid):
                high = mid
            else:
                low = mid
        upper = high
    return lower, upper
