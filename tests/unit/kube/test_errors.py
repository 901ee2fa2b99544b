"""The API server's answers, translated into retryable and permanent errors."""

from __future__ import annotations

import json

import pytest

from controlplane.kube.errors import (
    FieldConflictError,
    ForbiddenError,
    InvalidObjectError,
    NotFoundError,
    PermanentKubeError,
    TemporaryKubeError,
    translate,
)


def status(
    code: int, reason: str, message: str, causes: list[dict[str, str]] | None = None
) -> bytes:
    body = {
        "kind": "Status",
        "status": "Failure",
        "code": code,
        "reason": reason,
        "message": message,
    }
    if causes:
        body["details"] = {"causes": causes}
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    ("code", "reason", "kind"),
    [
        (404, "NotFound", NotFoundError),
        (403, "Forbidden", ForbiddenError),
        (422, "Invalid", InvalidObjectError),
        (409, "Conflict", TemporaryKubeError),
        (409, "AlreadyExists", PermanentKubeError),
        (429, "TooManyRequests", TemporaryKubeError),
        (500, "InternalError", TemporaryKubeError),
        (503, "ServiceUnavailable", TemporaryKubeError),
        (504, "Timeout", TemporaryKubeError),
    ],
)
def test_status_codes_map_to_kinds(code: int, reason: str, kind: type[Exception]) -> None:
    error = translate(code, status(code, reason, "the server says why"), action="apply x")
    assert type(error) is kind
    assert "apply x: the server says why" in error.message


def test_field_manager_conflict_is_permanent_and_names_fields() -> None:
    body = status(
        409,
        "Conflict",
        'Apply failed with 1 conflict: conflict with "hpa"',
        [
            {
                # where the API server puts it (tests/kube/test_driver.py captures a real one)
                "reason": "FieldManagerConflict",
                "message": 'conflict with "hpa"',
                "field": ".spec.replicas",
            }
        ],
    )
    error = translate(409, body, action="apply")
    assert isinstance(error, FieldConflictError)
    assert error.fields == [".spec.replicas"]
    assert error.managers == ["hpa"]


def test_retry_after_sets_the_delay() -> None:
    error = translate(429, status(429, "TooManyRequests", "slow down"), action="a", retry_after="7")
    assert isinstance(error, TemporaryKubeError)
    assert error.delay == 7.0


def test_non_json_bodies_and_long_messages_are_kept_but_truncated() -> None:
    error = translate(502, b"<html>" + b"x" * 5000, action="get")
    assert isinstance(error, TemporaryKubeError)
    assert error.message.endswith("(truncated)")
    assert len(error.message) < 1100
