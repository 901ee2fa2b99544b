"""The OpenAPI document's error responses and links (controlplane/api/contract.py): the
tables stay in step with the routes and the services, and the document says what the
server sends. tests/api/test_contract.py checks the same against the running server."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from controlplane.api import contract, create_app
from controlplane.config import Settings

SOURCE = Path(contract.__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Any:
    url = f"sqlite:///{tmp_path_factory.mktemp('contract') / 'unused.db'}"
    return create_app(
        Settings(admin_token="t", database_url=url, reconcile_enabled=False),
        start_reconciler=False,
    )


@pytest.fixture(scope="module")
def document(app: Any) -> dict[str, Any]:
    return dict(app.openapi())


def _operations(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        f"{method.upper()} {path}": operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
    }


def _raised_codes(*kinds: str) -> set[str]:
    """Every ``code=`` given to one of ``kinds`` of error anywhere in the product."""
    codes = set()
    for path in SOURCE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in kinds:
                for keyword in node.keywords:
                    if keyword.arg == "code" and isinstance(keyword.value, ast.Constant):
                        codes.add(str(keyword.value.value))
    return codes


def test_every_table_entry_names_an_operation(document: dict[str, Any]) -> None:
    operations = set(_operations(document))
    named = set(contract.DOMAIN_ERRORS) | set(contract.LINKS) | contract.LOCATION
    named |= {link.target for links in contract.LINKS.values() for link in links.values()}
    assert named - operations == set()
    paths = set(document["paths"])
    assert {p for p in contract.NOT_FOUND if not any(q.startswith(p) for q in paths)} == set()


def test_every_code_in_the_tables_is_one_the_product_raises() -> None:
    raised = _raised_codes(
        "ConflictError",
        "AlreadyExistsError",
        "InvalidRequestError",
        "NotFoundError",
        "problem_response",
    )
    tabled = {c for errors in contract.DOMAIN_ERRORS.values() for cs in errors.values() for c in cs}
    tabled |= set(contract.NOT_FOUND.values())
    assert tabled - raised == set()


def test_every_conflict_a_service_raises_is_documented() -> None:
    documented = {c for errors in contract.DOMAIN_ERRORS.values() for c in errors.get(409, ())}
    raised = _raised_codes("ConflictError", "AlreadyExistsError")
    assert {"model_live", "rollout_in_progress", "abort_pending"} <= raised
    assert raised - documented == set()


def test_every_error_is_a_problem_document(document: dict[str, Any]) -> None:
    for key, operation in _operations(document).items():
        for status, response in operation["responses"].items():
            if int(status) >= 400:
                assert set(response["content"]) == {"application/problem+json"}, (key, status)
                schema = response["content"]["application/problem+json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Problem"}
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert "ValidationError" not in schemas
    assert schemas["Problem"]["required"] == ["type", "title", "status", "detail", "code"]


def test_statuses_follow_from_each_route(document: dict[str, Any]) -> None:
    operations = _operations(document)
    assert "HTTPBearer" in document["components"]["securitySchemes"]
    for key, operation in operations.items():
        statuses = set(operation["responses"])
        path = key.split(" ", 1)[1]
        assert "400" in statuses, key  # a NUL in any query parameter
        assert ("401" in statuses) == path.startswith("/v1/"), key
        assert ("404" in statuses) == ("{" in path), key
        body = "requestBody" in operation
        assert ("413" in statuses) == body, key
        has_input = body or bool(operation.get("parameters"))
        assert ("422" in statuses) == has_input, key
        if path.startswith("/v1/"):
            assert operation["security"] == [{"HTTPBearer": []}], key
            header = operation["responses"]["401"]["headers"]["WWW-Authenticate"]
            assert header["required"] is True
    # 403 only where a viewer is not enough
    assert "403" not in operations["GET /v1/models"]["responses"]
    assert "403" in operations["POST /v1/models"]["responses"]
    assert "403" in operations["GET /v1/tokens"]["responses"]
    assert set(operations["DELETE /v1/models/{model}"]["responses"]) >= {"204", "409"}
    assert set(operations["POST /v1/eval-suites"]["responses"]) >= {"200", "201"}
    assert set(operations["GET /readyz"]["responses"]) == {"200", "400", "503"}


def test_created_things_say_where_they_are_and_link_onwards(document: dict[str, Any]) -> None:
    operations = _operations(document)
    ids = {op["operationId"]: key for key, op in operations.items()}
    created = operations["POST /v1/models"]["responses"]["201"]
    assert created["headers"]["Location"]["required"] is True
    get_model = created["links"]["GetModel"]
    assert ids[get_model["operationId"]] == "GET /v1/models/{model}"
    assert get_model["parameters"] == {"model": "$response.body#/name"}
    rollout = operations["POST /v1/models/{model}/rollouts"]["responses"]["201"]["links"]
    assert ids[rollout["GetRollout"]["operationId"]] == "GET /v1/rollouts/{rollout_id}"
    assert rollout["GetRollout"]["parameters"] == {"rollout_id": "$response.body#/id"}
    version = operations["POST /v1/models/{model}/versions"]["responses"]["201"]["links"]
    assert version["StartRollout"]["requestBody"] == {"version": "$response.body#/version"}
    for links in (created["links"], rollout, version):
        for link in links.values():
            assert link["operationId"] in ids
