"""How the CLI names each kind of step in `rollout status` (pure formatting)."""

from __future__ import annotations

from typing import Any

import pytest

from controlplane.cli.app import _step_text
from controlplane.strategy import Strategy

STEPS: list[tuple[dict[str, Any], str]] = [
    ({"kind": "set_weight", "weight": 25}, "set_weight 25%"),
    ({"kind": "pause", "duration_seconds": 30}, "pause 30s"),
    ({"kind": "pause"}, "pause until promoted"),
    ({"kind": "analysis", "count": 3, "interval_seconds": 60}, "analysis x3 every 60s"),
    (
        {
            "kind": "eval_gate",
            "checks": [
                {"score": "mmlu", "max_regression": 0.01},
                {"score": "toxicity", "at_most": 0.05},
            ],
        },
        "eval_gate mmlu, toxicity",
    ),
    ({"kind": "bake", "duration_seconds": 900}, "bake 900s at 100%, old version warm"),
    (
        {"kind": "evaluation", "suite": "starter", "suite_version": 3},
        "evaluation starter@3 (both versions answer it, paired)",
    ),
]


@pytest.mark.parametrize(("step", "text"), STEPS)
def test_each_step_kind_reads_as_one_phrase(step: dict[str, Any], text: str) -> None:
    # as the API returns it: the validated step, dumped
    steps = [{"kind": "set_weight", "weight": 100}, step] if step["kind"] == "bake" else [step]
    dumped = Strategy.model_validate({"steps": steps}).model_dump(mode="json")["steps"][-1]
    assert _step_text(dumped) == text
    assert _step_text(None) == "-"


def test_placement_reads_as_a_table_of_pods_and_the_two_adapters() -> None:
    from controlplane.cli.app import placement_text

    placement = {
        "pool": "llama",
        "stable_adapter": "chat-v1",
        "canary_adapter": "chat-v2",
        "observed_at": "2026-12-01T10:11:12+00:00",
        "pods": [
            {
                "pod": "a",
                "serving": True,
                "ready": True,
                "gated": True,
                "adapters": ["chat-v1", "chat-v2", "other-x"],
                "error": None,
            },
            {
                "pod": "b",
                "serving": True,
                "ready": False,
                "gated": False,
                "adapters": ["chat-v1"],
                "error": None,
            },
            {
                "pod": "c",
                "serving": False,
                "ready": False,
                "gated": False,
                "adapters": None,
                "error": "connection refused",
            },
        ],
    }
    lines = placement_text(placement).splitlines()
    assert lines[0] == "adapters on base pool llama (read at 10:11:12):"
    assert lines[1].split()[:6] == ["POD", "SERVING", "READY", "STABLE", "chat-v1", "CANARY"]
    assert lines[2].split() == ["a", "yes", "yes", "(gated)", "loaded", "loaded", "other-x", "-"]
    assert lines[3].split() == ["b", "yes", "no", "loaded", "no", "-", "-"]
    assert lines[4].split()[:5] == ["c", "no", "no", "?", "?"]
    assert lines[4].endswith("connection refused")
    assert placement_text({**placement, "pods": []}).endswith("no pod of the pool found")


def test_an_evaluation_run_reads_as_its_judgement_then_the_items_side_by_side() -> None:
    from controlplane.cli.evals import runs_text

    run = {
        "id": 4,
        "step_index": 0,
        "suite": "starter@1",
        "canary_version": "v2",
        "stable_version": "v1",
        "status": "done",
        "result": {"summary": "fail: general: canary failed 31 items stable passed"},
        "items": [
            {
                "item_id": "gen-fact-007",
                "tag": "general",
                "prompt": "What is the capital of Australia? One word.",
                "regressed": True,
                "stable": {"answer": "Canberra", "passed": True},
                "canary": {"answer": "Sydney", "passed": False},
            }
        ],
    }
    text = runs_text([run])
    assert text.splitlines() == [
        "run 4 (step 0): suite starter@1, v2 vs v1, done",
        "  fail: general: canary failed 31 items stable passed",
        "  REGRESSED gen-fact-007 [general]: What is the capital of Australia? One word.",
        "      stable pass      Canberra",
        "      canary FAIL      Sydney",
    ]
    assert runs_text([]) == "no evaluation run yet"
