"""The methods a path answers: OPTIONS lists all of them, a 405 names all of them, HEAD
answers like GET without the body, and / leads to the history page."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient

ORDER = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
VALUES = {"model": "chat", "version": "v1", "rollout_id": "1", "name": "x", "pool": "p"}


def methods_by_path(app: Any) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute):
            found.setdefault(route.path, set()).update(route.methods)
    return found


def expected_allow(methods: set[str]) -> str:
    every = {*methods, "OPTIONS", *(["HEAD"] if "GET" in methods else [])}
    return ", ".join(sorted(every, key=ORDER.index))


def test_options_lists_every_method_of_every_path(anonymous: TestClient) -> None:
    paths = methods_by_path(anonymous.app)
    assert paths["/v1/models"] == {"GET", "POST"}
    for template, methods in paths.items():
        response = anonymous.options(template.format(**VALUES))
        assert response.status_code == 204, (template, response.text)
        assert response.headers["allow"] == expected_allow(methods), template
        assert response.content == b""


def test_options_on_a_path_with_get_and_post_lists_both(anonymous: TestClient) -> None:
    response = anonymous.options("/v1/models")
    assert response.headers["allow"] == "GET, HEAD, POST, OPTIONS"


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/v1/models", "GET, HEAD, POST, OPTIONS"),
        ("DELETE", "/v1/models", "GET, HEAD, POST, OPTIONS"),
        ("POST", "/v1/models/chat", "GET, HEAD, PATCH, DELETE, OPTIONS"),
        ("DELETE", "/v1/rollouts/1", "GET, HEAD, OPTIONS"),
        ("GET", "/v1/rollouts/1/abort", "POST, OPTIONS"),
        ("PATCH", "/v1/tokens/ci", "DELETE, OPTIONS"),
    ],
)
def test_a_method_the_path_lacks_is_405_naming_every_method_it_has(
    api: TestClient, method: str, path: str, allow: str
) -> None:
    response = api.request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == allow
    problem = response.json()
    assert problem["code"] == "method_not_allowed"
    assert allow in problem["detail"]


def test_options_on_a_path_that_does_not_exist_is_404(anonymous: TestClient) -> None:
    assert anonymous.options("/v1/nothing-here").status_code == 404


def test_head_answers_like_get_without_the_body(api: TestClient, anonymous: TestClient) -> None:
    for client, path in [
        (anonymous, "/ui"),
        (anonymous, "/ui/app.js"),
        (anonymous, "/healthz"),
        (api, "/v1/models"),
    ]:
        got, head = client.get(path), client.head(path)
        assert head.status_code == got.status_code == 200, path
        assert head.content == b""
        assert head.headers["content-type"] == got.headers["content-type"]
        assert head.headers["content-length"] == str(len(got.content))
    assert anonymous.head("/v1/models").status_code == 401


def test_the_root_redirects_to_the_history_page(anonymous: TestClient) -> None:
    for response in (
        anonymous.get("/", follow_redirects=False),
        anonymous.head("/", follow_redirects=False),
    ):
        assert response.status_code == 307
        assert response.headers["location"] == "/ui"
    assert anonymous.get("/").url.path == "/ui"


def test_the_schema_gains_no_head_or_options_operations(anonymous: TestClient) -> None:
    spec = anonymous.get("/openapi.json").json()
    operations = {method for path in spec["paths"].values() for method in path}
    assert operations <= {"get", "post", "patch", "delete"}
    assert "/" not in spec["paths"]
