"""The eval gate's judge: the canary version's recorded eval scores against stable's (or
against fixed bounds), check by check. Pure: the scores come in as the versions' metadata.

Offline evals are a different kind of evidence from live metrics: one number per version,
measured once, no samples to test. So a check is a plain comparison with the bound the
team chose (``max_regression`` in the score's own units, ``at_least``, ``at_most``); a score
that is missing or not a number is ``inconclusive`` (the gate pauses for a person), never a
pass.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from controlplane.analysis.judge import MetricVerdict, combine
from controlplane.analysis.measure import Measurement
from controlplane.analysis.verdict import Verdict
from controlplane.strategy import EvalCheck

EVAL_KEY = "eval"  # versions record scores as metadata.eval.<score>
# scores are decimals typed by people: 0.62 - 0.61 is not above 0.01, at any magnitude
_REL_TOLERANCE = 1e-9


def scores_of(metadata: Any) -> Mapping[str, Any]:
    evals = metadata.get(EVAL_KEY) if isinstance(metadata, Mapping) else None
    return evals if isinstance(evals, Mapping) else {}


def _number(scores: Mapping[str, Any], name: str) -> float | None:
    value = scores.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)  # an int too large for a float raises
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _beyond(value: float, bound: float, *scale: float) -> bool:
    """``value`` exceeds ``bound`` by more than rounding (relative to the numbers' size)."""
    size = max(abs(value), abs(bound), *(abs(x) for x in scale), 1.0)
    return value - bound > _REL_TOLERANCE * size


def _n(value: float) -> str:
    """Enough digits to show what decided (0.6149995 is not 0.615), none to spare."""
    return f"{value:.10g}"


def _typed_only(
    check: EvalCheck,
    c: float | None,
    s: float | None,
    canary_version: str,
    stable_version: str | None,
    measured: Mapping[str, Mapping[str, str]],
) -> MetricVerdict | None:
    """A check that asks for measured scores, given a typed one: inconclusive."""
    if not check.measured:
        return None
    typed = [
        v
        for v, value in ((canary_version, c), (stable_version, s))
        if v is not None
        and value is not None
        and check.score not in measured.get(v, {})
        and (v == canary_version or check.max_regression is not None)
    ]
    if not typed:
        return None
    return MetricVerdict(
        check.score,
        Verdict.INCONCLUSIVE,
        c,
        s,
        math.nan,
        math.nan,
        None,
        None,
        f"{check.score}: {' and '.join(typed)} only has a typed score (the check asks "
        "for a measured one: import the harness's results with POST "
        "/v1/models/<model>/versions/<version>/eval-scores)",
    )


def judge_check(
    check: EvalCheck,
    canary: Mapping[str, Any],
    stable: Mapping[str, Any] | None,
    *,
    canary_version: str,
    stable_version: str | None,
    measured: Mapping[str, Mapping[str, str]] | None = None,
) -> MetricVerdict:
    """``measured``: per version, the scores imported from a harness (name -> where they
    came from); the others were typed into the version's metadata."""
    measured = measured or {}
    c = _number(canary, check.score)
    s = _number(stable, check.score) if stable is not None else None
    unjudged = _typed_only(check, c, s, canary_version, stable_version, measured)
    if unjudged is not None or c is None:
        return unjudged or MetricVerdict(
            check.score,
            Verdict.INCONCLUSIVE,
            c,
            s,
            math.nan,
            math.nan,
            None,
            None,
            f"{check.score}: {canary_version} has no eval score {check.score!r} "
            f"(a finite number under metadata.{EVAL_KEY}); or import a harness's results: "
            "POST .../eval-scores",
        )

    def verdict(v: Verdict, message: str) -> MetricVerdict:
        return MetricVerdict(check.score, v, c, s, math.nan, math.nan, None, None, message)

    source = measured.get(canary_version, {}).get(check.score)
    shown = f"{check.score} {canary_version} {_n(c)}" + (f" ({source})" if source else "")
    if check.at_least is not None and _beyond(check.at_least, c):
        return verdict(Verdict.FAIL, f"{shown}, below the floor {_n(check.at_least)}")
    if check.at_most is not None and _beyond(c, check.at_most):
        return verdict(Verdict.FAIL, f"{shown}, above the ceiling {_n(check.at_most)}")
    if check.max_regression is None:
        return verdict(Verdict.PASS, f"{shown}, within bounds")
    if s is None:
        whose = stable_version or "no stable version"
        return verdict(
            Verdict.INCONCLUSIVE,
            f"{check.score}: nothing to compare with ({whose} has no eval score {check.score!r})",
        )
    worse_by = (s - c) if check.higher_is_better else (c - s)
    detail = (
        f"{shown} vs {stable_version} {_n(s)} ({c - s:+.10g}; "
        f"{'higher' if check.higher_is_better else 'lower'} is better, "
        f"at most {_n(check.max_regression)} worse)"
    )
    threshold = s - check.max_regression if check.higher_is_better else s + check.max_regression
    failed = _beyond(worse_by, check.max_regression, c, s)
    return replace(verdict(Verdict.FAIL if failed else Verdict.PASS, detail), threshold=threshold)


def judge_evals(
    checks: Sequence[EvalCheck],
    canary: Mapping[str, Any],
    stable: Mapping[str, Any] | None,
    *,
    canary_version: str,
    stable_version: str | None,
    at: Any,
    measured: Mapping[str, Mapping[str, str]] | None = None,
) -> Measurement:
    """One measurement of the gate: every check, the worst verdict, a summary that leads
    with what failed (or was missing)."""
    verdicts = tuple(
        judge_check(
            c,
            canary,
            stable,
            canary_version=canary_version,
            stable_version=stable_version,
            measured=measured,
        )
        for c in checks
    )
    overall = combine(verdicts)
    notable = [v.message for v in verdicts if v.verdict is overall] or [v.message for v in verdicts]
    counts = ", ".join(
        f"{n} {name}"
        for name in ("fail", "inconclusive", "pass")
        if (n := sum(v.verdict.value == name for v in verdicts))
    )
    summary = f"{overall.value}: {'; '.join(notable)} [{len(verdicts)} scores: {counts}]"
    return Measurement(at=at, verdict=overall, summary=summary, metrics=verdicts)
