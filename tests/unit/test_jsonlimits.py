from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from controlplane.jsonlimits import json_problem, json_type_problem
from controlplane.models import VersionCreate


def nested(levels: int) -> Any:
    value: Any = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


def test_thirty_two_levels_may_be_stored_and_thirty_three_may_not() -> None:
    assert json_problem(nested(32), "metadata") is None
    problem = json_problem(nested(33), "metadata")
    assert problem is not None
    assert problem.code == "too_deep"
    assert "more than 32 levels" in problem.message


def test_a_value_deeper_than_the_recursion_limit_is_reported_not_a_crash() -> None:
    problem = json_problem(nested(100_000), "metadata")
    assert problem is not None
    assert problem.code == "too_deep"
    assert len(problem.message) < 500


def test_the_size_is_counted_as_compact_utf8_json() -> None:
    assert json_problem({"a": "x" * 100}, "m", max_bytes=200) is None
    problem = json_problem({"a": "\u00e9" * 100}, "m", max_bytes=200)  # 2 bytes each
    assert problem is not None
    assert problem.code == "too_large"
    assert "takes 208 bytes as JSON; the limit is 200 bytes" in problem.message
    assert "64 KiB" in str(json_problem("x" * 70_000, "m", max_bytes=64 * 1024))


@pytest.mark.parametrize("number", [float("nan"), float("inf"), float("-inf")])
def test_numbers_must_be_finite(number: float) -> None:
    problem = json_problem({"eval": {"mmlu": [0.5, number]}}, "metadata")
    assert problem is not None
    assert problem.code == "not_finite"
    assert "metadata.eval.mmlu[1]" in problem.message


@pytest.mark.parametrize(
    "value",
    [{"a": "x\x00y"}, {"x\x00": 1}, {"a": ["\ud800"]}, {"\udfff": 1}],
)
def test_text_a_database_cannot_hold_is_refused(value: Any) -> None:
    problem = json_problem(value, "metadata")
    assert problem is not None
    assert problem.code == "invalid_character"


def test_the_first_problem_in_document_order_is_reported() -> None:
    problem = json_problem({"a": float("nan"), "b": "\x00"}, "m")
    assert problem is not None
    assert "m.a" in problem.message


def test_odd_keys_are_quoted_in_the_path() -> None:
    problem = json_problem({"a b": {"c.d": float("nan")}}, "m")
    assert problem is not None
    assert 'm["a b"]["c.d"]' in problem.message


def test_a_version_refuses_metadata_it_could_not_serve_back() -> None:
    body = {"version": "v1", "artifact_uri": "s3://m/v1"}
    assert VersionCreate.model_validate({**body, "metadata": nested(32)}).meta == nested(32)
    for bad in (nested(33), {"x": float("nan")}, {"blob": "x" * 70_000}):
        with pytest.raises(ValidationError, match="metadata"):
            VersionCreate.model_validate({**body, "metadata": bad})


@pytest.mark.parametrize(
    ("annotation", "value", "ok"),
    [
        (bool, True, True),
        (bool, 0, False),
        (bool, "true", False),
        (bool | None, None, True),
        (int, 3, True),
        (int, 3.0, True),
        (int, "3", False),
        (int, True, False),
        (int | None, "3", False),
        (float, 1, True),
        (float, "1.5", False),
        (float, False, False),
        (str, 3, True),  # not this check's business: pydantic refuses it anyway
        (int | str, "3", True),
    ],
)
def test_a_json_type_is_the_documented_one(annotation: Any, value: Any, ok: bool) -> None:
    assert (json_type_problem(annotation, value) is None) == ok
