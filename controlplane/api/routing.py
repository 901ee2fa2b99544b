"""The route class of every endpoint: what reaches a handler is JSON and text that the
database can hold, or the request is a 400 before the handler runs.

Python's ``json`` is lenient where the JSON standard is not: it reads ``NaN``,
``Infinity`` and ``1e400`` (as infinity), which SQLite then stores as null and PostgreSQL
refuses. Here a body is parsed strictly: those are refused, as is a body nested deeper
than the parser can go (``malformed_json``). A string anywhere in a body with a NUL
character or a lone surrogate, and a path or query parameter with a NUL, are refused too
(``invalid_character``): PostgreSQL can neither store nor compare them. The limits on
what each stored field holds (depth, size) are the schemas' (``controlplane.models``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.routing import APIRoute

from controlplane.jsonlimits import json_problem


class RequestRejected(HTTPException):
    """A 400 with its own problem ``code``, raised before the handler runs."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(status_code=400, detail=detail)
        self.code = code


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number: send a finite number, or null")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(
            f"the number {text[:40]} is out of range (a JSON number is a 64-bit float)"
        )
    return number


def loads(body: bytes) -> Any:
    """A request body as JSON, strictly (see the module's docstring)."""
    try:
        value = json.loads(body, parse_constant=_constant, parse_float=_finite)
    except RecursionError:
        raise RequestRejected(
            "malformed_json", "the request body is nested too deeply to be read as JSON"
        ) from None
    except ValueError as error:  # syntax, NaN and Infinity, numbers out of range, not UTF-8
        raise RequestRejected(
            "malformed_json", f"the request body is not valid JSON: {error}"
        ) from None
    problem = json_problem(value, "body", max_depth=None)
    if problem is not None:
        raise RequestRejected(problem.code, f"the request body is refused: {problem.message}")
    return value


class _StrictJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_strict_json"):
            self._strict_json = loads(await self.body())
        return self._strict_json


def _check_parameters(request: Request) -> None:
    params = [
        *(("path", name, value) for name, value in request.path_params.items()),
        *(("query", name, value) for name, value in request.query_params.multi_items()),
    ]
    for where, name, value in params:
        if "\x00" in name or "\x00" in str(value):
            raise RequestRejected(
                "invalid_character",
                f"the {where} parameter {name!r} contains a NUL character (%00): remove it",
            )


class StrictRoute(APIRoute):
    """Every router's ``route_class``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            _check_parameters(request)
            return await handler(_StrictJSONRequest(request.scope, request.receive))

        return strict_handler
