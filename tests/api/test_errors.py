"""Bad input gets a clear 4xx problem document, never a 500, and nothing half-written."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from controlplane.db import Database
from controlplane.models import AuditEvent, Model
from tests.factories import model_body, version_body

BAD_MODELS: list[tuple[dict[str, Any], str, str]] = [
    (model_body(name="Chat_Model"), "name", "not a valid Kubernetes name"),
    (model_body(name="9lives"), "name", "starting with a letter"),
    (model_body(name="x" * 64), "name", "at most 63 characters"),
    (model_body(namespace="LLM"), "namespace", "not a valid Kubernetes name"),
    (model_body(gpus_per_replica=-1), "gpus_per_replica", "greater than or equal to 0"),
    (model_body(replicas=0), "replicas", "greater than or equal to 1"),
    (model_body(port=70000), "port", "less than or equal to 65535"),
    (model_body(gpu_budget=-4), "gpu_budget", "greater than or equal to 0"),
    (model_body(image="has space:1"), "image", "not a valid container image"),
    (model_body(gpu_resource="not a resource"), "gpu_resource", "nvidia.com/gpu"),
    (model_body(env={"1BAD": "x"}), "env", "environment variable name"),
    (model_body(labels={"team": "bad value!"}), "labels", "invalid value"),
    (model_body(routing_mode="istio"), "routing_mode", "replicas"),
    (model_body(health_path="health"), "health_path", "must start with '/'"),
    (model_body(surprise=True), "surprise", "unknown field"),
    (model_body(tolerations=[{"key": "x", "operator": "Maybe"}]), "tolerations", "Equal"),
    (model_body(node_selector={"pool": "a b"}), "node_selector", "invalid value"),
    ({"namespace": "llm"}, "name", "required"),
]


@pytest.mark.parametrize(("body", "field", "message"), BAD_MODELS)
def test_bad_model_is_422_with_the_field_named(
    api: TestClient, database: Database, body: dict[str, Any], field: str, message: str
) -> None:
    response = api.post("/v1/models", json=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["code"] == "validation_error"
    assert problem["status"] == 422
    assert any(
        e["field"].startswith(field) and message in e["message"] for e in problem["errors"]
    ), problem
    with database.session() as session:
        assert session.exec(select(Model)).all() == []
        assert session.exec(select(AuditEvent)).all() == []


BAD_VERSIONS: list[tuple[dict[str, Any], str]] = [
    (version_body(version="V1"), "version"),
    (version_body(version="1.2.0"), "version"),
    (version_body(artifact_uri="models/chat"), "artifact_uri"),
    (version_body(artifact_uri="ftp://x/y"), "artifact_uri"),
    (version_body(metadata="not a dict"), "metadata"),
    (version_body(args="--not-a-list"), "args"),
    (version_body(base_model="llama"), ""),
    (version_body(env={"1BAD": "x"}), "env"),
    (version_body(labels={"team": "bad value!"}), "labels"),
    (version_body(image="has space:1"), "image"),
]


@pytest.mark.parametrize(("body", "field"), BAD_VERSIONS)
def test_bad_version_is_422(api: TestClient, body: dict[str, Any], field: str) -> None:
    api.post("/v1/models", json=model_body(name="chat"))
    response = api.post("/v1/models/chat/versions", json=body)
    assert response.status_code == 422, response.text
    assert any(e["field"].startswith(field) for e in response.json()["errors"])
    assert api.get("/v1/models/chat/versions").json()["items"] == []


def test_malformed_json_is_400(api: TestClient) -> None:
    response = api.post(
        "/v1/models", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["code"] == "malformed_json"


def test_oversized_body_is_413_and_nothing_is_written(api: TestClient, database: Database) -> None:
    api.post("/v1/models", json=model_body(name="chat"))
    huge = version_body(metadata={"blob": "x" * 100_000})
    response = api.post("/v1/models/chat/versions", json=huge)
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
    assert api.get("/v1/models/chat/versions").json()["items"] == []


def test_oversized_chunked_body_is_413(api: TestClient) -> None:
    def chunks() -> Any:
        for _ in range(100):
            yield b"x" * 1024

    response = api.post(
        "/v1/models", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413


def test_unknown_route_is_a_problem_document(api: TestClient) -> None:
    response = api.get("/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_bad_cursor_is_400(api: TestClient) -> None:
    response = api.get("/v1/models", params={"cursor": "garbage!"})
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_cursor"


def test_openapi_is_served_and_documents_the_v1_routes(anonymous: TestClient) -> None:
    spec = anonymous.get("/openapi.json").json()
    assert {
        "/v1/models",
        "/v1/models/{model}",
        "/v1/models/{model}/versions",
        "/v1/models/{model}/versions/{version}",
        "/v1/tokens",
        "/healthz",
        "/readyz",
    } <= set(spec["paths"])
    assert "HTTPBearer" in spec["components"]["securitySchemes"]
