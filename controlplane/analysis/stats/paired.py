"""Paired comparison of two versions on the same eval items: is the canary worse than stable
by more than a margin, item by item?

**Noise model.** Both versions answer the same ``n`` items and each answer is scored pass or
fail. An item is *discordant* when exactly one version passes it: ``b`` items stable passed
and the canary failed, ``c`` the other way round. Items are independent. The effect is
``delta``, stable's expected accuracy minus the canary's, estimated by ``(b - c) / n``. With
``p`` the chance that an item is discordant and ``pi`` the chance that a discordant item is
stable's, ``delta = p (2 pi - 1)``; the discordant count ``d = b + c`` is ``Binomial(n, p)``
and, given ``d``, ``b`` is ``Binomial(d, pi)``. That is exact when the items are
exchangeable (a suite drawn from a pool of items). In a fixed suite whose items differ in
difficulty the counts are sums of unequal Bernoulli trials, which spread less than binomials
with the same means (Hoeffding 1956); the guarantee is stated for the exchangeable model, and
``tests/unit/test_paired.py`` checks by simulation that such a suite fails a canary no more
often.

**Guarantee.** Every pair ``(p, pi)`` is tested with two exact p-values from the data: ``P``
for the discordant count (``P[D >= d]``, or ``P[D <= d]``) and ``Q = P[B >= b | d]``, exact
*given* ``d``. A rule "exclude ``(p, pi)`` when ``Q <= h(P)``", with ``h`` non-increasing and
``integral_0^1 h <= alpha``, excludes the true pair with probability at most ``alpha``
(``E[P(Q <= h(P) | d)] <= E[h(P)] <= integral h``), so the pairs never excluded form a
``1 - alpha`` confidence set. :func:`compare_paired` fails the canary only when every pair
with ``delta <= margin`` is excluded: a level-``alpha`` test of "no worse than the margin",
``delta = margin`` included, at every ``n``, with no normal approximation. The rules:

- where stable is ahead (``theta = 2 pi - 1 > 0``; ``P = P[D >= d]``), a weighted Stouffer
  combination: exclude when ``a z+(P) + sqrt(1 - a^2) z+(Q) >= r``, ``z+(u) = max(0,
  Phi^-1(1 - u))`` (a one-sided p-value above one half is no evidence), or when ``P`` or
  ``Q`` alone is at most ``alpha / 10`` (so no share of discordance or of wins that the data
  rule out on their own survives on a small weight); ``r`` is set so that the integral of
  ``h`` is exactly ``alpha``. The weight ``a`` follows ``theta`` (constant on 16 fixed pieces
  of ``[0, 1]``): by the delta method ``theta^2`` is about the share of the estimate's
  variance that comes from the discordant share, so each pair's test spends its ``alpha``
  where its noise is. In standard errors ``r`` is 1.70-1.76 at ``alpha = 0.05`` (a normal
  test's is 1.645); a Bonferroni split of ``alpha`` between a bound for ``p`` and one for
  ``pi`` puts the bound 2.1-2.8 below the estimate. Computed exactly for ``n = 300`` and a
  margin of two points, the chance of failing a canary four points past the margin is 0.55
  at ``alpha = 0.05`` (Bonferroni: 0.33), and the size stays under ``alpha``.
- where the canary is ahead or even (``pi <= 1/2``, ``t = 1 - 2 pi``; ``P = P[D <= d]``):
  exclude when ``Q <= alpha - e(t)`` or ``P <= e(t)``, with ``e(t) = min(alpha / 2, alpha (1 -
  (1 - t^2)^m))`` and ``m`` the least integer such that ``2^-m <= alpha``. At ``pi = 1/2``
  that is the exact one-sided McNemar test, and when it rejects at ``alpha`` every ``pi <
  1/2`` is excluded too: then ``b >= m`` and ``b > d / 2``, and ``P_pi[B >= b] <=
  P_1/2[B >= b] (4 pi (1 - pi))^b <= alpha (1 - t^2)^m``. So at margin 0 the canary fails
  exactly when the exact McNemar test rejects at ``alpha``.

``delta_high`` is the same construction with ``b`` and ``c`` swapped and the Stouffer rule on
both sides. Each end is an infimum over the set, computed by branch and bound over pieces of
``theta``: a piece gives a lower bound over itself (``Q`` grows with ``pi``; Clopper-Pearson
ends are taken on their safe side) and a value reached in it, and the piece with the lowest
bound is halved until the two are within ``TOLERANCE``. The reported ends err only outward,
by at most that (0.01 points). A call takes a few milliseconds at ``n = 300``.
"""

from __future__ import annotations

import functools
import heapq
import math
from collections.abc import Callable
from dataclasses import dataclass

from controlplane.analysis.stats.sequential import normal_quantile, normal_sf
from controlplane.analysis.verdict import Verdict

PIECES = 16  # fixed pieces of theta = 2 pi - 1 over (0, 1], each with its own weights
REFINE = 200  # at most this many halvings per bound (tens reach the tolerance)
TOLERANCE = 1e-4  # how far below the infimum a reported bound may lie (0.01 points)
CUTOFF = 0.1  # the share of alpha each p-value spends on its own (see the module)
SPLIT = 0.5  # the most of alpha the McNemar-side rule spends on p

# 8-point Gauss-Legendre nodes and weights on [-1, 1]
_GAUSS_LEGENDRE = (
    (0.1834346424956498, 0.3626837833783620),
    (0.5255324099163290, 0.3137066458778873),
    (0.7966664774136267, 0.2223810344533745),
    (0.9602898564975363, 0.1012285362903763),
)


def _log_pmf(x: int, n: int, p: float) -> float:
    value = math.lgamma(n + 1) - math.lgamma(x + 1) - math.lgamma(n - x + 1)
    if x:
        value += x * math.log(p)
    if n - x:
        value += (n - x) * math.log1p(-p)
    return value


def _run(start: int, n: int, p: float, *, up: bool) -> float:
    """The sum of the pmf from ``start`` outwards (up or down), over the pmf at ``start``:
    the terms fall all the way (``start`` is on the far side of the mode)."""
    odds = p / (1 - p)
    total, term = 1.0, 1.0
    if up:
        for x in range(start, n):
            term *= (n - x) / (x + 1) * odds
            total += term
            if term < 1e-17 * total:
                break
    else:
        for x in range(start, 0, -1):
            term *= x / (n - x + 1) / odds
            total += term
            if term < 1e-17 * total:
                break
    return total


def _log_tail(k: int, n: int, p: float) -> float:
    """``log P[X >= k]`` for ``X ~ Binomial(n, p)`` (``-inf`` when it is 0)."""
    if k <= 0:
        return 0.0
    if k > n or p == 0.0:
        return -math.inf
    if p == 1.0:
        return 0.0
    if k > math.floor((n + 1) * p):  # beyond the mode: the terms fall from k on
        return _log_pmf(k, n, p) + math.log(_run(k, n, p, up=True))
    below = math.exp(_log_pmf(k - 1, n, p) + math.log(_run(k - 1, n, p, up=False)))
    return math.log1p(-below) if below < 1.0 else -math.inf


def binomial_tail(k: int, n: int, p: float) -> float:
    """``P[X >= k]`` for ``X ~ Binomial(n, p)``, exact to about 1e-13 relative: the terms are
    summed from the smaller side as ratios to the first, which is taken in log space, so a
    tail keeps its relative precision down to about 1e-300."""
    if n < 0 or not 0.0 <= p <= 1.0:
        raise ValueError(f"need n >= 0 and p in [0, 1], not n={n}, p={p}")
    return math.exp(_log_tail(k, n, p))


@functools.lru_cache(maxsize=4096)
def _lower_end(k: int, n: int, level: float) -> float:
    """The ``p`` where ``P_p[X >= k] = level`` (one-sided Clopper-Pearson lower end), from
    below: every ``p`` under it has ``P_p[X >= k] <= level``. Newton's method on ``log P``
    against ``log p`` (``d P / d p = n P[Binomial(n - 1, p) = k - 1]``) from the Wilson
    bound, inside a bracket that never loses the root."""
    if k <= 0 or level <= 0.0:
        return 0.0
    if level >= 1.0:
        return 1.0
    target = math.log(level)
    # P[X >= k] <= C(n, k) p^k: below this p the tail is surely under the level
    log_choose = math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
    low = min((target - log_choose) / k, math.log(k / n))
    # the median of Binomial(n, k / n) is k: there the tail is at least 1/2
    high = math.log(k / n) if level <= 0.5 else 0.0
    z = -normal_quantile(level) if 0.0 < level < 1.0 else 0.0
    share, z2 = k / n, z * z / n
    wilson = (share + z2 / 2 - z * math.sqrt(share * (1 - share) / n + z2 / (4 * n))) / (1 + z2)
    x = math.log(wilson) if wilson > 0 else (low + high) / 2
    for _ in range(200):
        if not low < x < high:
            x = (low + high) / 2
        p = math.exp(x)
        log_tail = _log_tail(k, n, p)
        excess = log_tail - target
        if excess > 0:
            high = x
        else:
            low = x
        if high - low <= 1e-10:
            break
        slope = math.exp(x + math.log(n) + _log_pmf(k - 1, n - 1, p) - log_tail) if p < 1 else 0
        step = excess / slope if slope > 0 else math.inf
        if abs(step) < 1e-11:  # converged: test a point just below the root, and stop there
            x -= step + 2e-11
            if x > low and _log_tail(k, n, math.exp(x)) <= target:
                low = x
            break
        x -= step
    return math.exp(low)


def _upper_end(k: int, n: int, level: float) -> float:
    """The ``p`` where ``P_p[X <= k] = level`` (one-sided Clopper-Pearson upper end), from
    above."""
    return 1.0 - _lower_end(n - k, n, level)


def clopper_pearson(k: int, n: int, alpha: float) -> tuple[float, float]:
    """The exact one-sided bounds for a proportion from ``k`` of ``n``, each at level ``1 -
    alpha`` on its own (together, a ``1 - 2 alpha`` interval): ``(0, 1)`` when ``n`` is 0."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), not {alpha}")
    if not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, not k={k}, n={n}")
    if n == 0:
        return 0.0, 1.0
    return _lower_end(k, n, alpha), _upper_end(k, n, alpha)


def mcnemar_exact(b: int, c: int) -> float:
    """One-sided exact McNemar p-value for "the canary is worse": ``P[B >= b]`` for ``B ~
    Binomial(b + c, 1/2)`` (``b`` items only stable passed, ``c`` only the canary); 1.0 with
    no discordant items."""
    if b < 0 or c < 0:
        raise ValueError(f"counts must be non-negative, not b={b}, c={c}")
    return binomial_tail(b, b + c, 0.5)


# --- the weighted Stouffer rule -----------------------------------------------------------


def _phi(z: float) -> float:
    return math.exp(-z * z / 2) / math.sqrt(2 * math.pi)


def _z_plus(u: float) -> float:
    """``max(0, Phi^-1(1 - u))``: the evidence in a one-sided p-value (taken as at most that
    of 1e-300, which only errs towards keeping pairs)."""
    if u >= 0.5:
        return 0.0
    return -normal_quantile(max(u, 1e-300))


def combined_tail(r: float, a: float, cutoff: float = 0.0) -> float:
    """The integral of the rule's ``h`` (see the module): the chance that ``P <= cutoff``,
    or ``Q <= cutoff``, or ``a z+(P) + c z+(Q) >= r``, for independent uniform ``P`` and
    ``Q``, ``c = sqrt(1 - a^2)``, ``0 < a < 1``, ``r > 0``."""
    c = math.sqrt(1 - a * a)
    z0 = _z_plus(cutoff)
    # With Z1 = z+(P) < z0 (P > cutoff) drawn, Q is excluded when Q <= max(cutoff, sf((r -
    # a Z1) / c)), or always once a Z1 >= r; the sf wins from z1 = (r - c z0) / a on.
    top = min(z0, r / a)
    start = min(max(0.0, (r - c * z0) / a), top)
    value = cutoff + 0.5 * max(cutoff, normal_sf(r / c))
    value += cutoff * (normal_sf(-start) - 0.5)  # z1 in (0, start): the cutoff
    value += max(0.0, normal_sf(r / a) - normal_sf(z0))  # z1 in (r / a, z0): always
    # z1 in (start, top): an integral (beyond 9 phi is below 1e-18)
    end = min(top, 9.0)
    if end > start:
        panels = max(1, math.ceil((end - start) / min(0.25, c / a)))
        width = (end - start) / panels
        integral = 0.0
        for i in range(panels):
            mid = start + (i + 0.5) * width
            for x, w in _GAUSS_LEGENDRE:
                for z in (mid - x * width / 2, mid + x * width / 2):
                    integral += w * _phi(z) * normal_sf((r - a * z) / c)
        value += integral * width / 2
    return value


def _radius(alpha: float, a: float, cutoff: float) -> float:
    """The ``r`` with ``combined_tail(r, a, cutoff) = alpha`` (a hair less, so the rule stays
    valid through rounding), from above: regula falsi (Illinois) inside a bracket."""
    target = alpha * (1 - 1e-9)
    # clipping and the cutoffs only add mass: at Phi^-1(1 - alpha) the tail is >= alpha
    low = -normal_quantile(alpha)
    high = low + 4.0
    f_low = combined_tail(low, a, cutoff) - target
    f_high = combined_tail(high, a, cutoff) - target
    side = 0
    while high - low > 1e-12:
        r = (low * f_high - high * f_low) / (f_high - f_low)
        if not low < r < high:
            r = (low + high) / 2
        f = combined_tail(r, a, cutoff) - target
        if f > 0:
            low, f_low = r, f
            if side == 1:
                f_high /= 2
            side = 1
        else:
            high, f_high = r, f
            if side == -1:
                f_low /= 2
            side = -1
        if f <= 0 and f > -1e-15:
            break
    return high


@functools.lru_cache(maxsize=64)
def _design(alpha: float) -> tuple[tuple[float, float, float], ...]:
    """``(a, c, r)`` for each piece of ``theta``: ``a`` the piece's middle."""
    out = []
    for k in range(PIECES):
        a = (k + 0.5) / PIECES
        out.append((a, math.sqrt(1 - a * a), _radius(alpha, a, CUTOFF * alpha)))
    return tuple(out)


def _smallest_power(alpha: float) -> int:
    """The least ``m`` with ``2^-m <= alpha``: the fewest wins an exact McNemar rejection
    at ``alpha`` needs."""
    m = 0
    while 0.5**m > alpha:
        m += 1
    return m


# --- bounds: the infimum of p (2 pi - 1) over the confidence set ---------------------------


Piece = Callable[[float, float, int], tuple[float, float]]


def _infimum(piece: Piece) -> float:
    """The infimum over ``theta`` in ``[0, 1]`` from pieces that each give a lower bound
    over themselves and a value reached in them (``inf`` for a piece with no pair left):
    the piece holding the smallest lower bound is bisected until that bound is within
    ``TOLERANCE`` of the smallest value reached. A piece's halves are never below it, so
    the answer only tightens, and it is always a lower bound."""
    heap = []
    reached = math.inf
    for k in range(PIECES):
        lo, hi = k / PIECES, (k + 1) / PIECES
        bound, value = piece(lo, hi, k)
        reached = min(reached, value)
        heap.append((bound, lo, hi, k))
    heapq.heapify(heap)
    for _ in range(REFINE):
        bound, lo, hi, k = heap[0]
        if reached - bound <= TOLERANCE or hi - lo < 1e-9:
            break
        heapq.heappop(heap)
        mid = (lo + hi) / 2
        for a, b in ((lo, mid), (mid, hi)):
            bound, value = piece(a, b, k)
            reached = min(reached, value)
            heapq.heappush(heap, (bound, a, b, k))
    return heap[0][0]


def _ahead(w: int, d: int, n: int, alpha: float) -> float:
    """Infimum of ``p theta`` over the pairs with ``theta in [0, 1]`` (``w`` of ``d`` for
    the side ahead) that the Stouffer rule keeps; ``inf`` when it keeps none."""
    design, cutoff = _design(alpha), CUTOFF * alpha

    def piece(lo: float, hi: float, k: int) -> tuple[float, float]:
        a, c, r = design[k]
        # Q grows with pi: at most its value at the top, where a kept pair has p > low
        q = binomial_tail(w, d, (1 + hi) / 2)
        g = r - c * _z_plus(q)
        if q <= cutoff or g <= 0:
            return math.inf, math.inf
        low = _lower_end(d, n, max(cutoff, normal_sf(g / a)))
        return low * lo, low * hi

    return _infimum(piece)


def _behind(w: int, d: int, n: int, alpha: float) -> float:
    """Infimum of ``-p t`` over the pairs with ``t = 1 - 2 pi in [0, 1]`` that the Stouffer
    rule (with ``P = P[D <= d]``) keeps: ``<= 0``, or ``inf`` when it keeps none."""
    design, cutoff = _design(alpha), CUTOFF * alpha

    def piece(lo: float, hi: float, k: int) -> tuple[float, float]:
        a, c, r = design[k]
        q = binomial_tail(w, d, (1 - lo) / 2)  # at most its value at the bottom
        g = r - c * _z_plus(q)
        if q <= cutoff or g <= 0:
            return math.inf, math.inf
        high = _upper_end(d, n, max(cutoff, normal_sf(g / a)))
        return -high * hi, -high * lo

    return _infimum(piece)


def _behind_mcnemar(w: int, d: int, n: int, alpha: float) -> float:
    """As :func:`_behind`, with the rule that agrees with the exact McNemar test."""
    m = _smallest_power(alpha)

    def on_p(t: float) -> float:  # the share of alpha the rule spends on p, rising with t
        return min(SPLIT * alpha, alpha - alpha * (1 - t * t) ** m)

    def piece(lo: float, hi: float, k: int) -> tuple[float, float]:
        q = binomial_tail(w, d, (1 - lo) / 2)
        if q <= alpha - on_p(hi):
            return math.inf, math.inf
        high = _upper_end(d, n, on_p(lo))
        # at t = lo itself the pair is kept when q clears that t's own level
        return -high * hi, (-high * lo if q > alpha - on_p(lo) else math.inf)

    return _infimum(piece)


# --- the comparison -----------------------------------------------------------------------


@dataclass(frozen=True)
class PairedResult:
    """Stable against the canary on the same items. ``delta`` is stable's accuracy minus
    the canary's (0.02: the canary is two points worse); ``delta_low`` and ``delta_high``
    are one-sided ``1 - alpha`` bounds for it; ``p_value`` is the exact one-sided McNemar
    test of "the canary is worse"; ``worse`` says the canary is worse than stable by more
    than ``margin``, with evidence."""

    b: int  # items stable passed and the canary failed
    c: int  # items the canary passed and stable failed
    n: int  # items both versions answered
    margin: float
    alpha: float
    delta: float
    delta_low: float
    delta_high: float
    p_value: float
    worse: bool

    def explain(self) -> str:
        if self.n == 0:
            return "no items answered by both versions: nothing to compare"
        facts = (
            f"canary failed {self.b} item{'' if self.b == 1 else 's'} stable passed and "
            f"passed {self.c} it failed ({self.b - self.c} net of {self.n}, "
            f"{_points(-self.delta, sign=True)} points; lower bound "
            f"{_points(self.delta_low)} points"
        )
        if self.worse:
            return f"{facts} > margin {_points(self.margin)}): worse"
        return (
            f"{facts} <= margin {_points(self.margin)}, no worse than "
            f"{_points(self.delta_high)} points): not shown worse"
        )


def _points(share: float, *, sign: bool = False) -> str:
    """Accuracy points, one decimal (two significant digits below 0.05 points)."""
    value = share * 100 + 0.0  # no "-0.0"
    spec = "+" if sign else ""
    if value != 0 and abs(value) < 0.05:
        return f"{value:{spec}.2g}"
    return f"{value:{spec}.1f}"


def compare_paired(b: int, c: int, n: int, *, margin: float, alpha: float) -> PairedResult:
    """Is the canary worse than stable by more than ``margin`` (accuracy as a share: 0.02
    is two points)? ``b`` items only stable passed, ``c`` only the canary, of ``n`` both
    answered. ``worse`` is a level-``alpha`` test (see the module): at margin 0, exactly
    the exact McNemar test; ``delta_low`` and ``delta_high`` are its confidence set's ends,
    ``delta_low >= 0`` exactly when that test rejects."""
    if min(b, c, n) < 0 or b + c > n:
        raise ValueError(f"need 0 <= b, c and b + c <= n, not b={b}, c={c}, n={n}")
    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha must be in (0, 0.5), not {alpha}")
    if not 0 <= margin < 1:
        raise ValueError(f"margin must be in [0, 1), not {margin}")
    p_value = mcnemar_exact(b, c)
    if n == 0:
        return PairedResult(b, c, n, margin, alpha, 0.0, -1.0, 1.0, p_value, False)
    d = b + c
    rejects = p_value <= alpha
    # the lower end: when McNemar rejects, no pair with pi <= 1/2 is left (see the module)
    low = _ahead(b, d, n, alpha) if rejects else _behind_mcnemar(b, d, n, alpha)
    # the upper end, mirrored: the canary's lead, whose "behind" side is stable's lead
    canary_behind = _behind(c, d, n, alpha)
    high = -canary_behind if not math.isinf(canary_behind) else -_ahead(c, d, n, alpha)
    worse = rejects and (margin == 0 or low > margin)
    return PairedResult(b, c, n, margin, alpha, (b - c) / n, low, high, p_value, worse)


def verdict_of(result: PairedResult, *, min_items: int) -> Verdict:
    """``fail`` when the canary is shown worse beyond the margin (valid at any number of
    items); otherwise ``pass`` once at least ``min_items`` items (and at least one) were
    answered, ``inconclusive`` before: too few to say it is not worse."""
    if min_items < 0:
        raise ValueError(f"min_items must be >= 0, not {min_items}")
    if result.worse:
        return Verdict.FAIL
    if result.n < max(min_items, 1):
        return Verdict.INCONCLUSIVE
    return Verdict.PASS
