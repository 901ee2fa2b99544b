"""The Kubernetes API server's errors, translated once into our own tree.

``TemporaryKubeError`` (conflicts on resourceVersion, throttling, timeouts, 5xx, the
server unreachable) tells the reconciler to try again after ``delay`` seconds;
``PermanentKubeError`` (validation, forbidden, not found, a field owned by another
manager) will not go away by retrying. The server's own message is kept, truncated.
"""

from __future__ import annotations

import json
import re
from typing import Any

from controlplane.redaction import mask_text

MAX_MESSAGE = 1000


class KubeError(Exception):
    def __init__(self, message: str, *, status: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.reason = reason


class TemporaryKubeError(KubeError):
    def __init__(
        self, message: str, *, status: int | None = None, reason: str = "", delay: float = 5.0
    ) -> None:
        super().__init__(message, status=status, reason=reason)
        self.delay = delay


class PermanentKubeError(KubeError):
    pass


class NotFoundError(PermanentKubeError):
    pass


class ForbiddenError(PermanentKubeError):
    pass


class InvalidObjectError(PermanentKubeError):
    pass


class FieldConflictError(PermanentKubeError):
    """Server-side apply refused: another field manager owns fields we tried to set.
    ``managers`` names who (``kubectl-patch``, ``kubectl-edit``, an HPA, another
    controller), read from the causes' messages (``conflict with "kubectl-patch" ...``)."""

    def __init__(
        self,
        message: str,
        *,
        fields: list[str],
        managers: list[str] | None = None,
        status: int | None = 409,
    ) -> None:
        super().__init__(message, status=status, reason="Conflict")
        self.fields = fields
        self.managers = managers or []


_MANAGER = re.compile(r'conflict with "([^"]+)"')


def _truncate(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE] + "...(truncated)"


def translate(  # noqa: PLR0911 - one return per kind of answer
    status: int, body: bytes | str | None, *, action: str, retry_after: str | None = None
) -> KubeError:
    """Turn an API server answer (status + Status object) into one of our errors."""
    raw = body.decode("utf-8", "replace") if isinstance(body, bytes) else (body or "")
    payload: dict[str, Any] = {}
    try:
        parsed = json.loads(raw) if raw else {}
        payload = parsed if isinstance(parsed, dict) else {}
    except ValueError:
        pass
    reason = str(payload.get("reason", ""))
    # kept in rollout events and reasons: a credential the server echoes is not
    server_message = mask_text(str(payload.get("message") or raw or f"HTTP {status}"))
    message = _truncate(f"{action}: {server_message}")
    causes = (payload.get("details") or {}).get("causes") or []

    if status == 404:
        return NotFoundError(message, status=status, reason=reason or "NotFound")
    if status in (401, 403):
        return ForbiddenError(message, status=status, reason=reason or "Forbidden")
    if status == 409:
        # the API server names the cause in `reason` (`type` in older clients' docs)
        conflicts = [
            c
            for c in causes
            if isinstance(c, dict) and "FieldManagerConflict" in (c.get("reason"), c.get("type"))
        ]
        if conflicts:
            fields = [str(c.get("field", "")) for c in conflicts]
            managers = _MANAGER.findall(" ".join(str(c.get("message", "")) for c in conflicts))
            return FieldConflictError(
                message, fields=fields, managers=list(dict.fromkeys(managers))
            )
        if reason == "AlreadyExists":
            return PermanentKubeError(message, status=status, reason=reason)
        return TemporaryKubeError(message, status=status, reason=reason or "Conflict", delay=1.0)
    if status in (400, 405, 415, 422):
        return InvalidObjectError(message, status=status, reason=reason or "Invalid")
    if status == 429 or status >= 500:
        delay = 5.0
        if retry_after and retry_after.isdigit():
            delay = float(retry_after)
        return TemporaryKubeError(
            message, status=status, reason=reason or "ServerError", delay=delay
        )
    return PermanentKubeError(message, status=status, reason=reason)
