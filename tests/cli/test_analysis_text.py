"""How `rollout status` reads an analysis step in progress (pure: API answers in, text out):
each metric's verdict, effect and interval against the margin, samples and what it still
needs; the looks of this step and the time against the step's maximum."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from controlplane.cli import analysis
from controlplane.strategy import DEFAULT_MAX_ANALYSIS_SECONDS, Analysis

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
STEP = {
    "kind": "analysis",
    "judge": "sequential",
    "count": 5,
    "interval_seconds": 60,
    "max_duration_seconds": None,
}


def iso(seconds_ago: float) -> str:
    return (NOW - timedelta(seconds=seconds_ago)).isoformat()


def rollout(**overrides: Any) -> dict[str, Any]:
    return {
        "id": 7,
        "phase": "progressing",
        "step_index": 1,
        "current_step": STEP,
        "weight": 25,
        **overrides,
    }


def ttft(**overrides: Any) -> dict[str, Any]:
    """A sequential ttft verdict as stored: too few requests yet to pass."""
    return {
        "metric": "ttft",
        "verdict": "inconclusive",
        "canary_value": 0.81,
        "stable_value": 0.78,
        "canary_samples": 812.0,
        "stable_samples": 1604.0,
        "statistic": None,
        "p_value": None,
        "message": "ttft p95: canary 0.81 vs stable 0.78, +4.1% (...); needs about 620 more",
        "threshold": 0.858,
        "judge": "sequential",
        "effect": 0.041,
        "effect_lower": -0.12,
        "effect_upper": 0.223,
        "margin": 0.1,
        "detect": 0.25,
        "alpha": 0.005,
        "power": 0.44,
        "needed": 619.3,
        "eta_seconds": 301.0,
        "inconclusive": "too_few",
        "pod_spread": 0.03,
        "pods": [1, 2],
        **overrides,
    }


def errors(**overrides: Any) -> dict[str, Any]:
    return ttft(
        metric="error_rate",
        message="error_rate: canary 0.250% vs stable 0.375%, -0.12 pts (...); margin 0.50 pts",
        effect=-0.0012,
        effect_lower=-0.0115,
        effect_upper=0.0166,
        margin=0.005,
        pods=None,
        pod_spread=None,
        **overrides,
    )


# an old row, written by the fixed judge before the sequential one existed
FIXED = {
    "metric": "ttft",
    "verdict": "pass",
    "canary_value": 0.4312,
    "stable_value": 0.4201,
    "canary_samples": 600.0,
    "stable_samples": 5000.0,
    "statistic": 0.52,
    "p_value": 0.3016,
    "message": "ttft p95 canary 0.4312 vs stable 0.4201 (+2.6%, margin 10%; ...)",
    "threshold": 0.4621,
}


def measurement(seconds_ago: float, metrics: list[dict[str, Any]], **overrides: Any) -> dict:
    return {
        "id": 1,
        "step_index": 1,
        "at": iso(seconds_ago),
        "weight": 25,
        "verdict": "inconclusive",
        "summary": "inconclusive: ttft p95: ... [2 metrics: 2 inconclusive]",
        "metrics": metrics,
        **overrides,
    }


def entered(seconds_ago: float, step_index: int = 1) -> dict[str, Any]:
    """The planner's event for advancing into ``step_index``."""
    return {
        "kind": "step",
        "step_index": step_index,
        "at": iso(seconds_ago),
        "evidence": {"step": step_index - 1, "weight": 25},
    }


def line_of(row: dict[str, Any]) -> str:
    (line,) = analysis.metric_lines([row])
    return " ".join(line.split())


def test_a_metric_reads_as_verdict_effect_interval_margin_samples_and_what_it_needs() -> None:
    assert line_of(ttft()) == (
        "ttft p95 inconclusive +4.1% [-12.0%, +22.3%] margin 10% n=812/1604 pods 1/2 "
        "needs ~620 more canary requests (~5 min)"
    )


def test_a_ratio_reads_in_percentage_points() -> None:
    assert line_of(errors()) == (
        "error_rate inconclusive -0.12 pts [-1.15 pts, +1.66 pts] margin 0.50 pts "
        "n=812/1604 needs ~620 more canary requests (~5 min)"
    )


def test_an_old_fixed_judge_row_still_reads_with_its_values_and_p() -> None:
    row = analysis.metric_row(FIXED)
    assert row["judge"] == "fixed"
    assert row["effect"] is None
    assert line_of(row) == "ttft pass canary 0.4312 vs stable 0.4201 p=0.302 n=600/5000"


@pytest.mark.parametrize(
    ("reason", "words"),
    [
        ("no_series", "the canary has no series: not scraped (check the selector)"),
        ("no_traffic", "the canary got no requests: check routing"),
        ("unresolvable", "the quantile is beyond the histogram's largest bucket"),
        ("too_few", "too few requests yet"),
    ],
)
def test_each_inconclusive_reason_reads_in_words(reason: str, words: str) -> None:
    row = ttft(inconclusive=reason, effect=None, needed=None, eta_seconds=None)
    assert analysis.needs_text(row) == words


def test_a_pass_says_it_had_the_traffic_and_a_fail_gives_the_judges_words() -> None:
    assert analysis.needs_text(ttft(verdict="pass", inconclusive=None, power=0.91)) == (
        "enough traffic (91% chance to have caught it)"
    )
    failed = ttft(
        verdict="fail",
        inconclusive=None,
        message="ttft p95: worse than stable by more than the margin: canary 1.2 vs 0.8",
    )
    assert analysis.needs_text(failed) == (
        "worse than stable by more than the margin: canary 1.2 vs 0.8"
    )
    assert analysis.needs_text(ttft(needed=None)) == (
        "can never pass: the margin and the pods' spread leave no room"
    )
    assert "(time unknown at the current rate)" in analysis.needs_text(ttft(eta_seconds=None))


def test_looks_count_since_the_step_restarted_and_errors_do_not_count() -> None:
    measurements = [  # newest first, as the API lists them
        measurement(10, [ttft()]),
        measurement(70, [], verdict="error", summary="error: prometheus down"),
        measurement(130, [ttft()]),
        measurement(400, [ttft()]),  # before the resume: the step started over
        measurement(900, [FIXED], step_index=0),
    ]
    events = [
        {"kind": "transition", "step_index": 1, "at": iso(200), "evidence": {"to": "progressing"}},
        {"kind": "transition", "step_index": 1, "at": iso(300), "evidence": {"to": "paused"}},
        entered(600),
    ]
    so_far = analysis.assess(rollout(), measurements, events, NOW)
    assert so_far is not None
    assert (so_far.looks, so_far.errors) == (2, 1)
    assert so_far.elapsed_seconds == 200
    assert so_far.latest is not None
    assert so_far.latest["at"] == iso(10)
    assert so_far.latest["metrics"][0]["judge"] == "sequential"
    text = analysis.text(so_far)
    assert text.splitlines()[0] == (
        "analysis, step 1 (sequential judge, every 60s): look 2 of at least 5 (1 could not be "
        "taken), 3m20s of at most 1h00m"
    )
    assert "latest look 11:59:50 UTC at 25%: inconclusive" in text
    assert "deciding" not in text, "an inconclusive look decides nothing"


def test_a_fixed_step_with_an_old_measurement_and_the_deciding_line() -> None:
    step = {**STEP, "judge": "fixed", "count": 3}
    summary = "pass: ttft p95 canary 0.4312 vs stable 0.4201 [2 metrics: 2 pass]"
    so_far = analysis.assess(
        rollout(current_step=step),
        [measurement(5, [FIXED], verdict="pass", summary=summary)],
        [entered(65)],
        NOW,
    )
    assert so_far is not None
    lines = analysis.text(so_far).splitlines()
    assert lines[0] == (
        "analysis, step 1 (fixed judge, every 60s): look 1 of 3, 1m05s of about 3m00s"
    )
    assert lines[-1] == f"deciding: {summary}"


def test_without_a_look_or_an_event_it_says_so() -> None:
    so_far = analysis.assess(rollout(), [], [], NOW)
    assert so_far is not None
    assert so_far.elapsed_seconds is None
    assert analysis.text(so_far).splitlines()[1:] == ["  no look taken yet in this step"]
    assert so_far.as_json()["latest"] is None


@pytest.mark.parametrize(
    "shown",
    [
        rollout(phase="succeeded"),
        rollout(phase="rolled_back"),
        rollout(phase="aborted"),
        rollout(current_step={"kind": "set_weight", "weight": 25}),
        rollout(current_step=None),
    ],
)
def test_nothing_to_add_when_not_live_or_not_at_an_analysis(shown: dict[str, Any]) -> None:
    assert analysis.assess(shown, [measurement(5, [ttft()])], [], NOW) is None


def test_the_maximum_duration_is_the_steps_or_the_judges_default() -> None:
    assert analysis.DEFAULT_MAX_ANALYSIS_SECONDS == DEFAULT_MAX_ANALYSIS_SECONDS
    for fields in ({}, {"count": 90}, {"count": 90, "max_duration_seconds": 7200}):
        step = Analysis.model_validate(fields)
        assert analysis.max_duration(step.model_dump(mode="json")) == step.max_duration


class Pages:
    """A fake API: each list as pages of two, newest first; records what was asked."""

    def __init__(self, lists: dict[str, list[dict[str, Any]]]) -> None:
        self.lists = lists
        self.asked: list[tuple[str, str | None]] = []

    def get(self, path: str, **params: Any) -> Any:
        self.asked.append((path, params.get("cursor")))
        start = int(params.get("cursor") or 0)
        items = self.lists[path][start : start + 2]
        more = start + 2 < len(self.lists[path])
        return {"items": items, "next_cursor": str(start + 2) if more else None}


def test_it_reads_back_only_to_the_start_of_the_step() -> None:
    old = [measurement(1000 + i, [FIXED], step_index=0) for i in range(6)]
    events = [
        {"kind": "hold", "step_index": 1, "at": iso(30), "evidence": {}},
        entered(130),
        *[entered(2000 + i, step_index=0) for i in range(6)],
    ]
    api = Pages(
        {
            "/v1/rollouts/7/measurements": [measurement(10, [ttft()]), *old],
            "/v1/rollouts/7/events": events,
        }
    )
    so_far = analysis.fetch(api, rollout(), NOW)
    assert so_far is not None
    assert (so_far.looks, so_far.elapsed_seconds) == (1, 130)
    assert api.asked == [
        ("/v1/rollouts/7/measurements", None),
        ("/v1/rollouts/7/events", None),
    ]
