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


def test_a_credential_the_server_echoes_is_masked_in_the_message() -> None:
    """Messages end up in rollout events and reasons, which every viewer reads."""
    echoed = "Deployment is invalid: value https://deploy:pw-1a2b@models.example.com/chat"
    error = translate(422, status(422, "Invalid", echoed), action="apply deployments/chat-v2")
    assert "pw-1a2b" not in error.message
    assert "https://deploy:***redacted***@models.example.com/chat" in error.message


def test_vllm_error_bodies_are_masked_too() -> None:
    import httpx

    from controlplane.kube.adapters import AdapterError
    from controlplane.kube.vllm import VllmAdmin

    def answer(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        message = (
            f"Loading lora {body['lora_name']} failed: No adapter found for {body['lora_path']}"
        )
        return httpx.Response(
            500, json={"error": {"message": message, "type": "BadRequestError", "code": 500}}
        )

    admin = VllmAdmin(client=httpx.Client(transport=httpx.MockTransport(answer)))
    try:
        with pytest.raises(AdapterError) as failed:
            admin.load("http://pod:8000", "chat-v2", "https://deploy:pw-3c4d@models.example.com/a")
    finally:
        admin.close()
    assert failed.value.permanent
    assert "pw-3c4d" not in failed.value.message
    assert "No adapter found for https://deploy:***redacted***@models" in failed.value.message
