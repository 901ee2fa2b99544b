"""/v1/models/{model}/versions against a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.factories import model_body, version_body


@pytest.fixture
def model(api: TestClient) -> str:
    response = api.post("/v1/models", json=model_body(name="chat"))
    assert response.status_code == 201, response.text
    return "chat"


def test_the_contract_registration(api: TestClient, model: str) -> None:
    response = api.post(
        f"/v1/models/{model}/versions",
        json={
            "version": "v1",
            "artifact_uri": "s3://models/chat/v1",
            "metadata": {"eval": {"mmlu": 0.61}},
        },
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["version"] == "v1"
    assert body["status"] == "registered"
    assert body["metadata"] == {"eval": {"mmlu": 0.61}}
    assert body["created_by"] == "admin"
    listed = api.get(f"/v1/models/{model}/versions").json()
    assert [v["version"] for v in listed["items"]] == ["v1"]


def test_second_registration_of_a_name_is_409_and_keeps_the_first(
    api: TestClient, model: str
) -> None:
    first = version_body(version="v1", artifact_uri="s3://a/1")
    assert api.post(f"/v1/models/{model}/versions", json=first).status_code == 201
    response = api.post(
        f"/v1/models/{model}/versions", json=version_body(version="v1", artifact_uri="s3://b/2")
    )
    assert response.status_code == 409
    problem = response.json()
    assert problem["code"] == "version_exists"
    assert "already registered" in problem["detail"]
    assert response.headers["content-type"].startswith("application/problem+json")
    assert api.get(f"/v1/models/{model}/versions/v1").json()["artifact_uri"] == "s3://a/1"


def test_same_version_name_on_two_models_is_fine(api: TestClient, model: str) -> None:
    api.post("/v1/models", json=model_body(name="other"))
    assert (
        api.post(f"/v1/models/{model}/versions", json=version_body(version="v1")).status_code == 201
    )
    assert api.post("/v1/models/other/versions", json=version_body(version="v1")).status_code == 201


def test_lora_adapter_records_its_base_model(api: TestClient, model: str) -> None:
    body = version_body(
        version="lora-1",
        artifact_kind="lora_adapter",
        artifact_uri="hf://acme/chat-lora",
        base_model="meta-llama/Llama-3.1-8B",
    )
    response = api.post(f"/v1/models/{model}/versions", json=body)
    assert response.status_code == 201, response.text
    assert response.json()["base_model"] == "meta-llama/Llama-3.1-8B"


def test_lora_adapter_without_base_model_is_refused(api: TestClient, model: str) -> None:
    body = version_body(artifact_kind="lora_adapter", artifact_uri="hf://acme/chat-lora")
    response = api.post(f"/v1/models/{model}/versions", json=body)
    assert response.status_code == 422
    assert "base_model" in response.json()["detail"]


def test_list_is_newest_first_and_paginated(api: TestClient, model: str) -> None:
    for i in range(7):
        api.post(f"/v1/models/{model}/versions", json=version_body(version=f"v{i}"))
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, object] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = api.get(f"/v1/models/{model}/versions", params=params).json()
        seen += [v["version"] for v in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"v{i}" for i in reversed(range(7))]


def test_list_filters_by_label_and_status(api: TestClient, model: str) -> None:
    api.post(f"/v1/models/{model}/versions", json=version_body(version="a", labels={"team": "nlp"}))
    api.post(
        f"/v1/models/{model}/versions",
        json=version_body(version="b", labels={"team": "nlp", "stage": "rc"}),
    )
    api.post(f"/v1/models/{model}/versions", json=version_body(version="c", labels={"team": "cv"}))
    by_team = api.get(f"/v1/models/{model}/versions", params={"label": "team=nlp"}).json()
    assert [v["version"] for v in by_team["items"]] == ["b", "a"]
    both = api.get(f"/v1/models/{model}/versions", params={"label": "team=nlp,stage=rc"}).json()
    assert [v["version"] for v in both["items"]] == ["b"]
    registered = api.get(f"/v1/models/{model}/versions", params={"status": "registered"}).json()
    assert len(registered["items"]) == 3
    stable = api.get(f"/v1/models/{model}/versions", params={"status": "stable"}).json()
    assert stable["items"] == []


def test_bad_label_selector_and_status_are_4xx(api: TestClient, model: str) -> None:
    response = api.get(f"/v1/models/{model}/versions", params={"label": "team"})
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_label_selector"
    response = api.get(f"/v1/models/{model}/versions", params={"status": "bogus"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "query.status"


def test_status_is_read_only(api: TestClient, model: str) -> None:
    response = api.post(f"/v1/models/{model}/versions", json=version_body(status="stable"))
    assert response.status_code == 422
    assert response.json()["errors"][0]["code"] == "unknown_field"


def test_versions_have_no_update_endpoint(api: TestClient, model: str) -> None:
    api.post(f"/v1/models/{model}/versions", json=version_body(version="v1"))
    response = api.patch(f"/v1/models/{model}/versions/v1", json={"artifact_uri": "s3://x/y"})
    assert response.status_code == 405


def test_unknown_model_and_version_are_404_with_codes(api: TestClient, model: str) -> None:
    assert api.get("/v1/models/nope/versions").json()["code"] == "model_not_found"
    response = api.get(f"/v1/models/{model}/versions/nope")
    assert response.status_code == 404
    assert response.json()["code"] == "version_not_found"
    response = api.post("/v1/models/nope/versions", json=version_body())
    assert response.status_code == 404


def test_version_name_too_long_for_kubernetes_is_refused(api: TestClient, model: str) -> None:
    response = api.post(f"/v1/models/{model}/versions", json=version_body(version="v" * 60))
    assert response.status_code == 400
    assert response.json()["code"] == "name_too_long"
    assert api.get(f"/v1/models/{model}/versions").json()["items"] == []
