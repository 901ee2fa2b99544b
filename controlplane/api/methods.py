"""The methods a path answers, as a client sees them: every method of every route on the
path (a path's GET and POST are two routes, and a 405 used to name only the first's),
HEAD wherever GET is (RFC 9110: every server answers HEAD like GET, without the body),
and OPTIONS everywhere, answered with the list.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _route_path(scope: Scope) -> str:
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def allowed_methods(app: FastAPI, scope: Scope) -> list[str]:
    """Every method the request's path answers; empty when no route has the path."""
    path = _route_path(scope)
    methods: set[str] = set()
    for route in iter_route_contexts(app.routes):
        regex: Any = getattr(route, "path_regex", None)
        if regex is not None and route.methods and regex.match(path):
            methods |= route.methods
    if not methods:
        return []
    if "GET" in methods:
        methods.add("HEAD")
    methods.add("OPTIONS")
    return sorted(methods, key=lambda m: _ORDER.index(m) if m in _ORDER else len(_ORDER))


class HeadAsGet:
    """Answers HEAD as GET, with the GET's status and headers (its Content-Length too) and
    no body: one handler per path, and no HEAD operations cluttering the OpenAPI schema."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headers_only)
