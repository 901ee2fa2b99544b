"""Scores measured by an evaluation harness, read with their provenance: lm-evaluation-
harness's results JSON (0.4 and 0.3 keys) and OpenAI-evals-style JSONL logs."""

from __future__ import annotations

import hashlib
import json

import pytest

from controlplane.evalresults import ResultsError, lm_eval_scores, openai_evals_scores

LM_EVAL = {
    "results": {
        "mmlu": {"acc,none": 0.6213, "acc_stderr,none": 0.0039, "alias": "mmlu"},
        "gsm8k": {
            "alias": "gsm8k",
            "exact_match,strict-match": 0.412,
            "exact_match_stderr,strict-match": 0.0135,
            "exact_match,flexible-extract": 0.455,
        },
        "hellaswag": {"acc,none": 0.57, "acc_norm,none": 0.75},
    },
    "n-shot": {"mmlu": 5, "gsm8k": 5, "hellaswag": 0},
    "n-samples": {"gsm8k": {"original": 1319, "effective": 200}},
    "versions": {"mmlu": 2, "gsm8k": 3, "hellaswag": 1},
    "config": {"model": "hf", "model_args": "pretrained=acme/chat-v2", "limit": 200},
    "lm_eval_version": "0.4.8",
}


def by_name(scores: list) -> dict:  # type: ignore[type-arg]
    return {s.name: s for s in scores}


def test_lm_eval_results_give_each_task_its_preferred_metric_with_provenance() -> None:
    text = json.dumps(LM_EVAL)
    scores = by_name(lm_eval_scores(text))
    assert scores["mmlu"].value == 0.6213
    assert scores["hellaswag"].value == 0.75  # acc_norm before acc
    assert scores["gsm8k"].value == 0.412  # the first filter written
    assert scores["hellaswag:acc"].value == 0.57
    gsm8k = scores["gsm8k"].provenance
    assert gsm8k["sha256"] == hashlib.sha256(text.encode()).hexdigest()  # the file's bytes
    assert (gsm8k["task"], gsm8k["metric"], gsm8k["filter"]) == (
        "gsm8k",
        "exact_match",
        "strict-match",
    )
    assert (gsm8k["limit"], gsm8k["samples"], gsm8k["n_shot"]) == (200, 200, 5)
    assert gsm8k["model"] == "acme/chat-v2"
    assert gsm8k["stderr"] == 0.0135
    assert gsm8k["harness_version"] == "0.4.8"


def test_lm_eval_tasks_and_metric_can_be_chosen() -> None:
    scores = by_name(lm_eval_scores(LM_EVAL, tasks=["hellaswag"], metric="acc"))
    assert set(scores) == {"hellaswag", "hellaswag:acc", "hellaswag:acc_norm"}
    assert scores["hellaswag"].value == 0.57


def test_lm_eval_03_keys_without_filters_are_read() -> None:
    scores = by_name(lm_eval_scores({"results": {"arc_easy": {"acc": 0.8, "acc_stderr": 0.01}}}))
    assert scores["arc_easy"].value == 0.8
    assert scores["arc_easy"].provenance["stderr"] == 0.01


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("{not json", "not JSON"),
        ({"scores": {}}, "'results' object"),
        ({"results": {"mmlu": {"alias": "mmlu"}}}, "no numeric score"),
    ],
)
def test_what_is_not_harness_output_says_why(document: object, message: str) -> None:
    with pytest.raises(ResultsError, match=message):
        lm_eval_scores(document)


def test_an_unknown_task_names_the_tasks_there_are() -> None:
    with pytest.raises(ResultsError, match="gsm8k, hellaswag, mmlu"):
        lm_eval_scores(LM_EVAL, tasks=["arc"])


def test_openai_evals_logs_give_the_final_report_or_the_match_share() -> None:
    spec = {"spec": {"eval_name": "arithmetic.dev.v0", "run_config": {"max_samples": 50}}}
    matches = [{"type": "match", "data": {"correct": i % 4 != 0}} for i in range(40)]
    text = "\n".join(json.dumps(line) for line in [spec, *matches])
    scores = by_name(openai_evals_scores(text))
    assert scores["arithmetic.dev.v0"].value == 0.75
    assert scores["arithmetic.dev.v0"].provenance["samples"] == 40
    assert scores["arithmetic.dev.v0"].provenance["limit"] == 50
    reported = text + "\n" + json.dumps({"final_report": {"accuracy": 0.8, "bootstrap_std": 0.02}})
    assert by_name(openai_evals_scores(reported))["arithmetic.dev.v0"].value == 0.8
    with pytest.raises(ResultsError, match="eval_name"):
        openai_evals_scores(json.dumps({"final_report": {"accuracy": 1}}))
