"""The OpenAPI document tells the truth: every status an operation can answer, and the
problem document of each error, as the server renders it (``problems.py``).

FastAPI documents the success status of each operation and a 422 in its own shape. Here
every operation's error responses are derived from the route itself, so that a new route
is documented the day it is written:

- 400 on every operation: a NUL in a path or query parameter (``invalid_character``), a
  body that is not strict JSON (``malformed_json``), a cursor this server did not issue
  (``invalid_cursor``), and the rules of the operation's service (``DOMAIN_ERRORS``);
- 401 where a role is required (the bearer token), 403 where that role is above viewer;
- 404 where the path names something (``NOT_FOUND`` gives the code of each thing);
- 409 where the service refuses for the state of things (``DOMAIN_ERRORS``);
- 413 where there is a body (``BodySizeLimit``), 422 where there is any input to validate;
- 503 on every operation: the database unreachable or busy (``database_unavailable``).

Each is ``application/problem+json`` with the ``Problem`` schema. The operations that
create something say where it is (``Location``) and link to what can be done with it
next (``LINKS``), for generated clients and stateful testers alike.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts

from controlplane.api.deps import required_role
from controlplane.api.problems import PROBLEM_MEDIA_TYPE
from controlplane.api.routing import StrictRoute
from controlplane.models import Role

PROBLEM_REF = "#/components/schemas/Problem"

PROBLEM_SCHEMAS: dict[str, dict[str, Any]] = {
    "Problem": {
        "title": "Problem",
        "description": (
            "An RFC 9457 problem document (application/problem+json). `code` is stable and "
            "machine-readable; `detail` says what to fix. Some problems carry more members "
            "about the state that refused the request (e.g. `live_versions` with "
            "`model_live`, `rollout_id` and `phase` with `rollout_in_progress`)."
        ),
        "type": "object",
        "required": ["type", "title", "status", "detail", "code"],
        "properties": {
            "type": {
                "type": "string",
                "pattern": "^urn:controlplane:problem:[a-z][a-z0-9_]*$",
                "description": "urn:controlplane:problem:<code>",
            },
            "title": {"type": "string", "description": "The kind of problem, for people."},
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "detail": {"type": "string", "description": "What went wrong and what to do."},
            "code": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$"},
            "instance": {"type": "string", "description": "The path of the request."},
            "errors": {
                "type": "array",
                "description": "One entry per field in error (validation problems).",
                "items": {"$ref": "#/components/schemas/ProblemFieldIssue"},
            },
        },
        "additionalProperties": True,
    },
    "ProblemFieldIssue": {
        "title": "ProblemFieldIssue",
        "type": "object",
        "required": ["field", "message", "code"],
        "properties": {
            "field": {"type": "string", "description": "e.g. `name`, `query.limit`"},
            "message": {"type": "string"},
            "code": {"type": "string", "description": "e.g. `missing`, `unknown_field`"},
        },
        "additionalProperties": False,
    },
}

# What each path parameter names, by the path up to it: a 404 says which one is missing.
NOT_FOUND: dict[str, str] = {
    "/v1/models/{model}": "model_not_found",
    "/v1/models/{model}/versions/{version}": "version_not_found",
    "/v1/pools/{pool}": "pool_not_found",
    "/v1/rollouts/{rollout_id}": "rollout_not_found",
    "/v1/eval-suites/{name}": "eval_suite_not_found",
    "/v1/eval-suites/{name}/versions/{version}": "eval_suite_not_found",
    "/v1/tokens/{name}": "token_not_found",
    "/v1/webhooks/{name}": "webhook_not_found",
}

# The errors each operation's service raises on purpose beyond the derived ones (read from
# controlplane/registry, rollout/service.py, auth.py and webhooks/service.py): 400 for a
# rule the schema cannot express, 404 for something named in the body, 409 for a state of
# things that forbids the request. tests/unit/test_contract.py keeps it in step.
DOMAIN_ERRORS: dict[str, dict[int, tuple[str, ...]]] = {
    "GET /readyz": {503: ("database_unavailable",)},
    "POST /v1/models": {
        400: ("validation_error", "pool_not_found", "pool_namespace_mismatch"),
        409: ("model_exists",),
    },
    "PATCH /v1/models/{model}": {400: ("validation_error",)},
    "DELETE /v1/models/{model}": {409: ("model_live",)},
    "POST /v1/pools": {409: ("pool_exists",)},
    "PATCH /v1/pools/{pool}": {
        400: ("null_not_allowed", "pods_unnamed"),
        409: ("pool_too_small", "pool_rank_too_small"),
    },
    "DELETE /v1/pools/{pool}": {409: ("pool_in_use",)},
    "POST /v1/models/{model}/versions": {
        400: (
            "name_too_long",
            "adapter_required",
            "base_model_mismatch",
            "lora_rank_required",
            "lora_rank_too_large",
        ),
        409: ("version_exists", "adapter_name_taken"),
    },
    "GET /v1/models/{model}/versions": {400: ("invalid_label_selector",)},
    "POST /v1/eval-suites": {400: ("invalid_eval_items",), 409: ("eval_suite_conflict",)},
    "POST /v1/models/{model}/versions/{version}/eval-scores": {400: ("invalid_eval_results",)},
    "POST /v1/models/{model}/rollouts": {
        400: ("unknown_metric", "evaluation_needs_routing", "eval_suite_not_found"),
        404: ("version_not_found",),
        409: ("rollout_in_progress", "already_stable", "pool_full"),
    },
    "POST /v1/rollouts/{rollout_id}/promote": {409: ("invalid_phase", "abort_pending")},
    "POST /v1/rollouts/{rollout_id}/pause": {409: ("invalid_phase", "abort_pending")},
    "POST /v1/rollouts/{rollout_id}/resume": {409: ("invalid_phase", "abort_pending")},
    "POST /v1/rollouts/{rollout_id}/abort": {409: ("invalid_phase",)},
    "POST /v1/tokens": {400: ("reserved_name",), 409: ("token_exists",)},
    "POST /v1/webhooks": {400: ("webhook_url_forbidden",), 409: ("webhook_exists",)},
}


@dataclass(frozen=True)
class Link:
    """An OpenAPI link from a response to an operation, its parameters taken from the
    response (``$response.body#/name``), and parts of its body too when given."""

    target: str  # "METHOD /path" of the operation it leads to
    parameters: dict[str, str]
    body: dict[str, str] = field(default_factory=dict)


def _each(target_paths: dict[str, str], parameters: dict[str, str]) -> dict[str, Link]:
    return {name: Link(target, parameters) for name, target in target_paths.items()}


_MODEL = {"model": "$response.body#/name"}
_VERSION = {"model": "$response.body#/model", "version": "$response.body#/version"}
_ROLLOUT = {"rollout_id": "$response.body#/id"}
_SUITE = {"name": "$response.body#/name"}
_NAMED = {"name": "$response.body#/name"}

# What a created thing leads to, by the operation that creates it (success statuses).
LINKS: dict[str, dict[str, Link]] = {
    "POST /v1/models": _each(
        {
            "GetModel": "GET /v1/models/{model}",
            "UpdateModel": "PATCH /v1/models/{model}",
            "DeleteModel": "DELETE /v1/models/{model}",
            "RegisterVersion": "POST /v1/models/{model}/versions",
            "ListVersions": "GET /v1/models/{model}/versions",
            "ListRollouts": "GET /v1/models/{model}/rollouts",
        },
        _MODEL,
    ),
    "POST /v1/models/{model}/versions": {
        **_each(
            {
                "GetVersion": "GET /v1/models/{model}/versions/{version}",
                "ImportEvalScores": "POST /v1/models/{model}/versions/{version}/eval-scores",
                "ListEvalScores": "GET /v1/models/{model}/versions/{version}/eval-scores",
            },
            _VERSION,
        ),
        "StartRollout": Link(
            "POST /v1/models/{model}/rollouts",
            {"model": "$response.body#/model"},
            body={"version": "$response.body#/version"},
        ),
    },
    "POST /v1/models/{model}/rollouts": _each(
        {
            "GetRollout": "GET /v1/rollouts/{rollout_id}",
            "ListEvents": "GET /v1/rollouts/{rollout_id}/events",
            "ListMeasurements": "GET /v1/rollouts/{rollout_id}/measurements",
            "ListEvaluations": "GET /v1/rollouts/{rollout_id}/evaluations",
            "Promote": "POST /v1/rollouts/{rollout_id}/promote",
            "Pause": "POST /v1/rollouts/{rollout_id}/pause",
            "Resume": "POST /v1/rollouts/{rollout_id}/resume",
            "Abort": "POST /v1/rollouts/{rollout_id}/abort",
        },
        _ROLLOUT,
    ),
    "POST /v1/pools": _each(
        {
            "GetPool": "GET /v1/pools/{pool}",
            "UpdatePool": "PATCH /v1/pools/{pool}",
            "DeletePool": "DELETE /v1/pools/{pool}",
        },
        {"pool": "$response.body#/name"},
    ),
    "POST /v1/eval-suites": {
        "GetSuite": Link("GET /v1/eval-suites/{name}", _SUITE),
        "GetSuiteVersion": Link(
            "GET /v1/eval-suites/{name}/versions/{version}",
            {**_SUITE, "version": "$response.body#/version"},
        ),
    },
    "POST /v1/tokens": {"RevokeToken": Link("DELETE /v1/tokens/{name}", _NAMED)},
    "POST /v1/webhooks": _each(
        {
            "GetWebhook": "GET /v1/webhooks/{name}",
            "DeleteWebhook": "DELETE /v1/webhooks/{name}",
            "ListDeliveries": "GET /v1/webhooks/{name}/deliveries",
            "TestWebhook": "POST /v1/webhooks/{name}/test",
        },
        _NAMED,
    ),
}

DESCRIPTION = (
    "Everything under /v1 needs `Authorization: Bearer <token>`. Every error is an RFC 9457 "
    "problem document (`application/problem+json`, schema `Problem`) with a stable `code`; "
    "each operation lists the statuses it can answer and their codes. A method a path does "
    "not have is a 405 whose `Allow` header names those it has; `OPTIONS` answers 204 with "
    "the same header, and `HEAD` answers wherever `GET` does, without the body."
)

# The operations whose success answer says where the new thing is.
LOCATION = {
    "POST /v1/models",
    "POST /v1/models/{model}/versions",
    "POST /v1/models/{model}/rollouts",
    "POST /v1/pools",
    "POST /v1/eval-suites",
    "POST /v1/webhooks",
}


@dataclass(frozen=True)
class Operation:
    """What the document needs to know of one route and method."""

    key: str  # "METHOD /path"
    path: str
    strict: bool  # a StrictRoute: parameters and body checked before the handler
    path_params: tuple[str, ...]
    query_params: tuple[str, ...]
    has_body: bool
    role: Role | None


def _walk(dependant: Dependant) -> Iterator[Dependant]:
    yield dependant
    for sub in dependant.dependencies:
        yield from _walk(sub)


def operations(app: FastAPI) -> Iterator[Operation]:
    """Every documented operation of the app, from its routes."""
    for context in iter_route_contexts(app.routes):
        route, path = context.original_route, context.path_format
        if not isinstance(route, APIRoute) or not context.include_in_schema or path is None:
            continue
        dependants = list(_walk(context.dependant))
        roles = [r for d in dependants if (r := required_role(d.call)) is not None]
        for method in sorted(context.methods or ()):
            yield Operation(
                key=f"{method} {path}",
                path=path,
                strict=isinstance(route, StrictRoute),
                path_params=tuple(p.alias for d in dependants for p in d.path_params),
                query_params=tuple(p.alias for d in dependants for p in d.query_params),
                has_body=context.body_field is not None,
                role=max(roles, key=_rank) if roles else None,
            )


def _rank(role: Role) -> int:
    return [Role.VIEWER, Role.OPERATOR, Role.ADMIN].index(role)


def _codes(codes: tuple[str, ...] | list[str]) -> str:
    return ", ".join(f"`{code}`" for code in dict.fromkeys(codes))


def _problem(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": PROBLEM_REF}}},
    }
    if headers:
        response["headers"] = headers
    return response


def _not_found_codes(path: str) -> list[str]:
    codes: list[tuple[int, str]] = []
    for prefix, code in NOT_FOUND.items():
        if path == prefix or path.startswith(prefix + "/"):
            codes.append((len(prefix), code))
    return [code for _, code in sorted(codes)]


def error_responses(operation: Operation) -> dict[str, dict[str, Any]]:
    """The error responses of one operation, by status."""
    domain = DOMAIN_ERRORS.get(operation.key, {})
    responses: dict[str, dict[str, Any]] = {}
    bad = []
    if operation.has_body:
        bad += ["malformed_json", "invalid_character"]
    if operation.strict:
        bad.append("invalid_character")
    if "cursor" in operation.query_params:
        bad.append("invalid_cursor")
    bad += domain.get(400, ())
    if operation.strict or bad:
        responses["400"] = _problem(
            "Bad request: "
            + _codes(bad)
            + ". `malformed_json`: the body is not strict JSON (NaN, Infinity and numbers out "
            "of range are not); `invalid_character`: a NUL (or a lone surrogate) in a body, "
            "path or query; the others are rules the schema cannot express."
        )
    if operation.role is not None:
        responses["401"] = _problem(
            "No bearer token, or one that is invalid, revoked or expired: "
            + _codes(["unauthenticated", "invalid_token", "token_expired"]),
            headers={
                "WWW-Authenticate": {
                    "description": "`Bearer`: send `Authorization: Bearer <token>`.",
                    "required": True,
                    "schema": {"type": "string"},
                }
            },
        )
        if operation.role is not Role.VIEWER:
            responses["403"] = _problem(
                f"The token's role is below {operation.role.value}: `insufficient_role`"
            )
    not_found = _not_found_codes(operation.path) if operation.path_params else []
    not_found += domain.get(404, ())
    if not_found:
        responses["404"] = _problem("Not found: " + _codes(not_found))
    if 409 in domain:
        responses["409"] = _problem(
            "The state of things forbids the request: " + _codes(domain[409])
        )
    if operation.has_body:
        responses["413"] = _problem(
            "The body is larger than the server's limit (CONTROLPLANE_MAX_BODY_BYTES): "
            "`payload_too_large`"
        )
    if operation.has_body or operation.path_params or operation.query_params:
        responses["422"] = _problem(
            "The request does not match the schema: `validation_error`, with one entry in "
            "`errors` per field (`field`, `code`, `message`)."
        )
    # every operation: the database unreachable or busy (a restart, a failover), with a
    # Retry-After; and an operation's own unavailability
    unavailable = {503: ("database_unavailable",)} | {s: c for s, c in domain.items() if s >= 500}
    for status, codes in unavailable.items():
        responses[str(status)] = _problem("Unavailable, retry later: " + _codes(codes))
    return responses


_LOCATION_HEADER = {
    "Location": {
        "description": "The path of what was created (or found).",
        "required": True,
        "schema": {"type": "string"},
    }
}


def complete(document: dict[str, Any], app: FastAPI) -> dict[str, Any]:
    """Add the error responses, the Location headers and the links to a document that
    FastAPI generated for ``app``; FastAPI's own 422 shape is replaced."""
    found = {op.key: op for op in operations(app)}
    operation_ids = {}
    for op in found.values():
        method, path = op.key.split(" ", 1)
        operation_ids[op.key] = document["paths"][path][method.lower()]["operationId"]
    for key, op in found.items():
        method, path = key.split(" ", 1)
        entry = document["paths"][path][method.lower()]
        responses: dict[str, Any] = entry["responses"]
        responses.pop("422", None)
        responses.update(error_responses(op))
        for status, response in responses.items():
            if not status.startswith(("2", "3")):
                continue
            if key in LOCATION:
                response.setdefault("headers", {}).update(_LOCATION_HEADER)
            links = LINKS.get(key)
            if links:
                response["links"] = {
                    name: _link(link, operation_ids) for name, link in links.items()
                }
        entry["responses"] = dict(sorted(responses.items()))
    document["info"].setdefault("description", DESCRIPTION)
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    schemas.update(PROBLEM_SCHEMAS)
    document["components"]["schemas"] = dict(sorted(schemas.items()))
    return document


def _link(link: Link, operation_ids: dict[str, str]) -> dict[str, Any]:
    definition: dict[str, Any] = {
        "operationId": operation_ids[link.target],
        "parameters": dict(link.parameters),
    }
    if link.body:
        definition["requestBody"] = dict(link.body)
    return definition


def install(app: FastAPI) -> None:
    """Serve the completed document at /openapi.json (built once, on first request)."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = complete(generate(), app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
