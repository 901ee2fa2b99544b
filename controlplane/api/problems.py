"""Every error leaves the API as an RFC 9457 ``application/problem+json`` document.

One place maps the domain's exception tree (and FastAPI's validation errors) to status
codes, with a stable machine-readable ``code`` and a message that says what to fix.
Unexpected exceptions become a 500 whose body says nothing about internals.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from controlplane.api import methods
from controlplane.api.routing import RequestRejected
from controlplane.errors import (
    AlreadyExistsError,
    AuthenticationError,
    ConflictError,
    DomainError,
    FieldIssue,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
)

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"

_STATUS: list[tuple[type[DomainError], int, str]] = [
    (NotFoundError, 404, "Not found"),
    (AlreadyExistsError, 409, "Already exists"),
    (ConflictError, 409, "Conflict"),
    (InvalidRequestError, 400, "Invalid request"),
    (AuthenticationError, 401, "Unauthenticated"),
    (PermissionDeniedError, 403, "Forbidden"),
]

_HTTP_CODES = {
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    413: ("payload_too_large", "Payload too large"),
    415: ("unsupported_media_type", "Unsupported media type"),
}


def problem_response(
    *,
    status: int,
    code: str,
    title: str,
    detail: str,
    instance: str | None = None,
    errors: list[FieldIssue] | None = None,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"urn:controlplane:problem:{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if instance:
        body["instance"] = instance
    if errors:
        body["errors"] = [
            {"field": issue.field, "message": issue.message, "code": issue.code} for issue in errors
        ]
    if extra:
        body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def _field_path(loc: tuple[Any, ...]) -> str:
    parts = [str(part) for part in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        where, rest = parts[0], parts[1:]
        return ".".join(rest) if where == "body" and rest else ".".join([where, *rest])
    return ".".join(parts)


def _message(error: dict[str, Any]) -> str:
    message = str(error.get("msg", "invalid value"))
    return message.removeprefix("Value error, ")


def validation_issues(exc: RequestValidationError) -> list[FieldIssue]:
    issues = []
    for error in exc.errors():
        loc = tuple(error.get("loc", ()))
        kind = str(error.get("type", "invalid"))
        field = _field_path(loc)
        message = _message(error)
        if kind == "extra_forbidden":
            message = f"unknown field {field!r}: remove it (see the schema in /openapi.json)"
            kind = "unknown_field"
        elif kind == "missing":
            message = f"{field} is required"
        issues.append(FieldIssue(field=field, message=message, code=kind))
    return issues


def install(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> JSONResponse:
        status, title = next(
            ((status, title) for kind, status, title in _STATUS if isinstance(exc, kind)),
            (400, "Invalid request"),
        )
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return problem_response(
            status=status,
            code=exc.code,
            title=title,
            detail=exc.message,
            instance=request.url.path,
            errors=exc.issues,
            extra=exc.context or None,
            headers=headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        issues = validation_issues(exc)
        if any(issue.code == "json_invalid" for issue in issues):
            return problem_response(
                status=400,
                code="malformed_json",
                title="Malformed JSON",
                detail="the request body is not valid JSON: "
                + "; ".join(issue.message for issue in issues),
                instance=request.url.path,
            )
        summary = "; ".join(f"{issue.field}: {issue.message}" for issue in issues)
        return problem_response(
            status=422,
            code="validation_error",
            title="Validation failed",
            detail=f"the request is invalid: {summary}",
            instance=request.url.path,
            errors=issues,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        code, title = _HTTP_CODES.get(exc.status_code, ("http_error", "HTTP error"))
        if isinstance(exc, RequestRejected):  # refused before the handler ran
            code = exc.code
            title = "Malformed JSON" if code == "malformed_json" else "Invalid request"
        detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        headers = dict(exc.headers) if exc.headers else None
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no endpoint at {request.url.path}; see /openapi.json for the API"
        if exc.status_code == 405:  # the path exists: say every method it has
            allowed = methods.allowed_methods(request.app, request.scope)
            headers = {**(headers or {}), "Allow": ", ".join(allowed)}
            if request.method == "OPTIONS":
                return Response(status_code=204, headers=headers)
            detail = (
                f"{request.method} is not a method of {request.url.path}; "
                f"it answers {', '.join(allowed)}"
            )
        return problem_response(
            status=exc.status_code,
            code=code,
            title=title,
            detail=detail,
            instance=request.url.path,
            headers=headers,
        )

    @app.exception_handler(sa.exc.OperationalError)
    @app.exception_handler(sa.exc.InterfaceError)
    async def _database(request: Request, exc: sa.exc.DBAPIError) -> JSONResponse:
        # the database restarting, unreachable or busy: nothing was committed (or the
        # answer of a commit was lost); the client may retry
        log.warning(
            "database unavailable on %s %s: %s",
            request.method,
            request.url.path,
            type(exc.orig).__name__ if exc.orig is not None else type(exc).__name__,
        )
        return problem_response(
            status=503,
            code="database_unavailable",
            title="Database unavailable",
            detail="the database could not be reached or was busy; nothing was changed "
            "unless a retry finds it done: retry after a moment",
            instance=request.url.path,
            headers={"Retry-After": "1"},
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(
            status=500,
            code="internal_error",
            title="Internal error",
            detail="the server failed to handle this request; it has been logged",
            instance=request.url.path,
        )
