"""Time-uniform (always-valid) boundaries for an effect estimated again and again as data
accumulate.

**Noise model.** An effect estimate ``theta_hat`` whose sampling error behaves like a
Brownian motion in information time: after information ``I`` (the inverse of the
estimate's sampling variance) the error is ``W(I) / I`` for a standard Brownian motion
``W``. Cumulative estimators of means and quantiles (Bahadur) behave so asymptotically;
counts and proportions are handled exactly in :mod:`.counts` instead.

**Guarantee.** :func:`one_sided_radius` is the crossing point of the one-sided normal
mixture martingale (Robbins; Howard, Ramdas, McAuliffe & Sekhon 2021, "Time-uniform,
nonparametric, nonasymptotic confidence sequences"): with probability at least
``1 - alpha``, ``theta_hat - radius(I) <= theta`` holds at *every* information level at
once, so the estimate may be looked at after every scrape, for as long as the step runs,
without inflating the false-alarm rate. ``tau`` is the scale of the effects the boundary
is tightest for (the mixing distribution is a half-normal with that scale).
"""

from __future__ import annotations

import math


def _log_normal_cdf(x: float) -> float:
    """log Phi(x), accurate in the far left tail."""
    if x > -5:
        return math.log(0.5 * math.erfc(-x / math.sqrt(2)))
    # asymptotic expansion of the Mills ratio
    return -0.5 * x * x - math.log(-x) - 0.5 * math.log(2 * math.pi) + math.log1p(-1 / (x * x))


def log_mixture(score: float, information: float, tau: float) -> float:
    """log of the one-sided (half-normal, scale ``tau``) mixture of exp(theta S - theta^2 I/2)
    over theta >= 0: a nonnegative supermartingale under any drift <= 0."""
    if information <= 0:
        return 0.0
    v = 1 + tau * tau * information
    z = score * tau / math.sqrt(v)
    return math.log(2) - 0.5 * math.log(v) + 0.5 * z * z + _log_normal_cdf(z)


def one_sided_radius(information: float, alpha: float, tau: float) -> float:
    """How far above the truth an estimate with sampling information ``information`` may
    lie, at any of all possible looks, with probability at most ``alpha``."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), not {alpha}")
    if tau <= 0:
        raise ValueError(f"tau must be positive, not {tau}")
    if information <= 0 or not math.isfinite(information):
        return math.inf if information <= 0 else 0.0
    target = math.log(1 / alpha)
    # the one-sided crossing lies between the two-sided mixture's at alpha and at 2 alpha
    # (its mixture is at least the two-sided one and at most twice it): bisect in between
    v = 1 + tau * tau * information
    high = math.sqrt(v * (math.log(v) + 2 * target) / (tau * tau)) * (1 + 1e-9)
    low = math.sqrt(max(0.0, v * (math.log(v) + 2 * (target - math.log(2)))) / (tau * tau))
    for _ in range(40):
        mid = (low + high) / 2
        if log_mixture(mid, information, tau) >= target:
            high = mid
        else:
            low = mid
        if high - low <= 1e-9 * high:
            break
    return high / information


def normal_quantile(p: float) -> float:
    """The standard normal quantile (Acklam's rational approximation, refined once by
    Newton's method: relative error below 1e-12 on (0, 1))."""
    if not 0 < p < 1:
        raise ValueError(f"p must be in (0, 1), not {p}")
    a = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02,
         1.383577518672690e02, -3.066479806614716e01, 2.506628277459239e00)  # fmt: skip
    b = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02,
         6.680131188771972e01, -1.328068155288572e01)  # fmt: skip
    c = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00,
         -2.549732539343734e00, 4.374664141464968e00, 2.938163982698783e00)  # fmt: skip
    d = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00,
         3.754408661907416e00)  # fmt: skip
    low = 0.02425
    if p < low:
        q = math.sqrt(-2 * math.log(p))
        x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / (
            (((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1
        )
    elif p <= 1 - low:
        q = p - 0.5
        r = q * q
        x = (
            (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5])
            * q
            / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)
        )
    else:
        q = math.sqrt(-2 * math.log(1 - p))
        x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / (
            (((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1
        )
    error = 0.5 * math.erfc(-x / math.sqrt(2)) - p
    return x - error * math.sqrt(2 * math.pi) * math.exp(x * x / 2)


def normal_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2))


def normal_sf(x: float) -> float:
    """P(Z > x) for a standard normal Z."""
    return 0.5 * math.erfc(x / math.sqrt(2))
