"""The domain's exception tree: what went wrong, in words a user can act on.

Services raise these; only the API layer maps them to HTTP (one handler) and the CLI to
exit codes. Nothing here knows about HTTP status codes or transports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FieldIssue:
    """One problem with one input field, for validation errors."""

    field: str
    message: str
    code: str = "invalid"


class DomainError(Exception):
    """Base of every error a service raises on purpose. ``code`` is stable and documented."""

    code: str = "error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        issues: list[FieldIssue] | None = None,
        context: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.issues = issues or []
        self.context = context or {}


class NotFoundError(DomainError):
    code = "not_found"


class AlreadyExistsError(DomainError):
    code = "already_exists"


class ConflictError(DomainError):
    """The request is valid but the current state forbids it (e.g. deleting a live model)."""

    code = "conflict"


class InvalidRequestError(DomainError):
    code = "invalid_request"


class AuthenticationError(DomainError):
    code = "unauthenticated"


class PermissionDeniedError(DomainError):
    code = "forbidden"
