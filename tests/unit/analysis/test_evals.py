"""The eval gate's judge and its step's validation: pure rules, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from controlplane.analysis.evals import judge_check, judge_evals, scores_of
from controlplane.analysis.judge import MetricVerdict
from controlplane.analysis.verdict import Verdict
from controlplane.strategy import EvalCheck, EvalGate, Strategy, first_deploy_strategy

AT = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
STABLE = {"mmlu": 0.62, "toxicity": 0.03, "helpfulness": 8.1}


def check(**fields: Any) -> EvalCheck:
    return EvalCheck.model_validate(fields)


def verdict_of(
    c: EvalCheck, canary: dict[str, Any], stable: dict[str, Any] | None = STABLE
) -> MetricVerdict:
    return judge_check(c, canary, stable, canary_version="v2", stable_version="v1")


def test_a_drop_beyond_the_allowed_regression_fails_with_the_numbers() -> None:
    result = verdict_of(check(score="mmlu", max_regression=0.01), {"mmlu": 0.55})
    assert result.verdict is Verdict.FAIL
    assert (result.canary_value, result.stable_value) == (0.55, 0.62)
    assert result.message == (
        "mmlu v2 0.55 vs v1 0.62 (-0.07; higher is better, at most 0.01 worse)"
    )
    assert result.threshold == pytest.approx(0.61)
    rise = verdict_of(
        check(score="toxicity", max_regression=0.01, higher_is_better=False), {"toxicity": 0.02}
    )
    assert rise.threshold == pytest.approx(0.04)
    assert verdict_of(check(score="mmlu", at_least=0.5), {"mmlu": 0.55}).threshold is None


@pytest.mark.parametrize(("canary", "expected"), [(0.61, Verdict.PASS), (0.609, Verdict.FAIL)])
def test_the_allowed_regression_is_inclusive(canary: float, expected: Verdict) -> None:
    # 0.62 - 0.61 is 0.010000000000000009 in floating point: still "at most 0.01 worse"
    assert verdict_of(check(score="mmlu", max_regression=0.01), {"mmlu": canary}).verdict is (
        expected
    )


def test_lower_is_better_scores_fail_when_they_rise() -> None:
    c = check(score="toxicity", max_regression=0.0, higher_is_better=False)
    assert verdict_of(c, {"toxicity": 0.04}).verdict is Verdict.FAIL
    assert verdict_of(c, {"toxicity": 0.01}).verdict is Verdict.PASS  # better is fine


def test_bounds_need_no_stable_version() -> None:
    c = check(score="helpfulness", at_least=7.5, at_most=10)
    assert verdict_of(c, {"helpfulness": 7.9}, None).verdict is Verdict.PASS
    below = verdict_of(c, {"helpfulness": 7.0}, None)
    assert below.verdict is Verdict.FAIL
    assert "below the floor 7.5" in below.message
    assert verdict_of(c, {"helpfulness": 11}, None).verdict is Verdict.FAIL


@pytest.mark.parametrize(
    "canary",
    [
        {},
        {"mmlu": "0.7"},
        {"mmlu": True},
        {"mmlu": None},
        {"mmlu": float("nan")},
        {"mmlu": float("inf")},
        {"mmlu": 10**400},  # valid JSON, too large for a float
    ],
)
def test_a_missing_or_non_numeric_score_is_inconclusive_never_a_pass(
    canary: dict[str, Any],
) -> None:
    result = verdict_of(check(score="mmlu", at_least=0.1), canary)
    assert result.verdict is Verdict.INCONCLUSIVE
    assert "v2 has no eval score 'mmlu' (a finite number under metadata.eval)" in result.message


def test_a_regression_check_without_a_stable_score_is_inconclusive() -> None:
    result = verdict_of(check(score="bleu", max_regression=1), {"bleu": 30.0})
    assert result.verdict is Verdict.INCONCLUSIVE
    assert "v1 has no eval score 'bleu'" in result.message
    first = judge_check(
        check(score="bleu", max_regression=1),
        {"bleu": 30.0},
        None,
        canary_version="v1",
        stable_version=None,
    )
    assert "no stable version" in first.message


def test_the_gate_is_as_bad_as_its_worst_score_and_says_so_first() -> None:
    gate = [
        check(score="mmlu", max_regression=0.01),
        check(score="toxicity", max_regression=0.0, higher_is_better=False),
        check(score="helpfulness", at_least=7.5),
    ]
    canary = {"mmlu": 0.63, "toxicity": 0.09, "helpfulness": 8.0}
    result = judge_evals(gate, canary, STABLE, canary_version="v2", stable_version="v1", at=AT)
    assert result.verdict is Verdict.FAIL
    assert result.summary.startswith("fail: toxicity v2 0.09 vs v1 0.03 (+0.06;")
    assert result.summary.endswith("[3 scores: 1 fail, 2 pass]")
    evidence = result.evidence()["metrics"]
    assert [m["metric"] for m in evidence] == ["mmlu", "toxicity", "helpfulness"]
    assert evidence[1]["canary_samples"] is None  # no samples: not NaN in JSON


def test_scores_are_read_from_the_eval_key_of_the_metadata() -> None:
    assert scores_of({"eval": {"mmlu": 0.6}, "run": "abc"}) == {"mmlu": 0.6}
    assert scores_of({"eval": [0.6]}) == {}
    assert scores_of(None) == {}
    assert scores_of("eval") == {}
    assert scores_of(["eval"]) == {}


def test_messages_show_the_digits_that_decided() -> None:
    floor = verdict_of(check(score="m", at_least=0.615), {"m": 0.6149995})
    assert floor.verdict is Verdict.FAIL
    assert floor.message == "m v2 0.6149995, below the floor 0.615"


def test_rounding_is_forgiven_at_any_magnitude_but_a_real_regression_is_not() -> None:
    c = check(score="elo", max_regression=0.01)
    big = {"elo": 100000.02}
    assert verdict_of(c, {"elo": 100000.01}, big).verdict is Verdict.PASS
    worse = verdict_of(c, {"elo": 100000.0}, big)
    assert worse.verdict is Verdict.FAIL
    assert "elo v2 100000 vs v1 100000.02 (-0.02" in worse.message


@pytest.mark.parametrize(
    ("gate", "message"),
    [
        ({"checks": [{"score": "mmlu"}]}, "sets no bound"),
        ({"checks": [{"score": "x", "at_least": 2, "at_most": 1}]}, "at_least 2.0 is above"),
        ({"checks": []}, "at least 1 item"),
        (
            {"checks": [{"score": "x", "at_least": 1}, {"score": "x", "at_most": 2}]},
            "checks x more than once",
        ),
        ({"checks": [{"score": "a b", "at_least": 1}]}, "should match pattern"),
        ({"checks": [{"score": "x", "max_regression": -1}]}, "greater than or equal to 0"),
        ({"checks": [{"score": "x", "at_least": float("nan")}]}, "finite number"),
        ({"checks": [{"score": "x", "at_most": float("inf")}]}, "finite number"),
        ({"checks": [{"score": "x", "max_regression": float("inf")}]}, "finite number"),
    ],
)
def test_a_gate_that_cannot_run_is_refused_when_requested(
    gate: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        Strategy.model_validate({"steps": [{"kind": "eval_gate", **gate}]})


def test_a_gate_in_a_strategy() -> None:
    strategy = Strategy.model_validate(
        {
            "steps": [
                {"kind": "eval_gate", "checks": [{"score": "mmlu", "max_regression": 0.01}]},
                {"kind": "set_weight", "weight": 100},
            ]
        }
    )
    assert isinstance(strategy.steps[0], EvalGate)


def test_a_first_deployment_keeps_the_gates_floors_and_ceilings() -> None:
    requested = Strategy.model_validate(
        {
            "steps": [
                {
                    "kind": "eval_gate",
                    "checks": [
                        {"score": "mmlu", "max_regression": 0.01, "at_least": 0.5},
                        {"score": "bleu", "max_regression": 1},  # needs stable: dropped
                    ],
                },
                {"kind": "set_weight", "weight": 10},
                {"kind": "analysis"},
            ]
        }
    )
    first = first_deploy_strategy(requested)
    assert first.model_dump(mode="json", exclude_none=True)["steps"] == [
        {
            "kind": "eval_gate",
            "checks": [
                {"score": "mmlu", "higher_is_better": True, "at_least": 0.5, "measured": False}
            ],
        },
        {"kind": "set_weight", "weight": 100},
    ]
    regression_only = Strategy.model_validate(
        {"steps": [{"kind": "eval_gate", "checks": [{"score": "bleu", "max_regression": 1}]}]}
    )
    assert first_deploy_strategy(regression_only) == first_deploy_strategy()
    assert [s.kind for s in first_deploy_strategy().steps] == ["set_weight"]


def test_a_check_that_asks_for_measured_scores_refuses_typed_ones() -> None:
    check = EvalCheck(score="mmlu", max_regression=0.01, measured=True)
    typed = judge_check(
        check, {"mmlu": 0.62}, {"mmlu": 0.61}, canary_version="v2", stable_version="v1"
    )
    assert typed.verdict is Verdict.INCONCLUSIVE
    assert "v2 and v1 only has a typed score" in typed.message
    source = {"mmlu": "measured: lm-eval-harness, sha256 0123456789ab, metric acc"}
    measured = judge_check(
        check,
        {"mmlu": 0.62},
        {"mmlu": 0.61},
        canary_version="v2",
        stable_version="v1",
        measured={"v2": source, "v1": source},
    )
    assert measured.verdict is Verdict.PASS
    assert "lm-eval-harness, sha256 0123456789ab" in measured.message
    floor_only = EvalCheck(score="mmlu", at_least=0.5, measured=True)
    stable_typed = judge_check(
        floor_only,
        {"mmlu": 0.62},
        {"mmlu": 0.61},
        canary_version="v2",
        stable_version="v1",
        measured={"v2": source},
    )
    assert stable_typed.verdict is Verdict.PASS  # a floor does not read stable's score
