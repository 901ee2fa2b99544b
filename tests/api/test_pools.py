"""/v1/pools and adapter models against a real database (SQLite and PostgreSQL): what a
base pool promises is checked on the way in, and a rollout that needs a slot the pool does
not have is refused before it starts."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from controlplane.db import Database
from controlplane.models import AuditEvent, BasePool, Model, ModelVersion, VersionStatus
from tests.factories import adapter_body, adapter_model_body, model_body, pool_body


def create(api: TestClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = api.post(path, json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def test_a_pool_is_recorded_read_and_listed(api: TestClient) -> None:
    pool = create(api, "/v1/pools", pool_body(name="llama"))
    assert pool["max_loras"] == 4
    assert pool["created_by"] == "admin"
    assert api.get("/v1/pools/llama").json() == pool
    assert [p["name"] for p in api.get("/v1/pools").json()["items"]] == ["llama"]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"deployment": None, "inference_pool": None}, "body"),
        ({"max_loras": 0}, "max_loras"),
        ({"name": "Not_A_Name"}, "name"),
        ({"deployment": "bad name"}, "deployment"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_a_bad_pool_is_a_422_that_names_the_field(
    api: TestClient, changes: dict[str, Any], field: str
) -> None:
    response = api.post("/v1/pools", json=pool_body(**changes))
    assert response.status_code == 422, response.text
    assert field in response.text


def test_an_adapter_model_lives_beside_its_pool_and_routes_by_rewrite(api: TestClient) -> None:
    create(api, "/v1/pools", pool_body(name="llama", namespace="team-a"))
    model = create(api, "/v1/models", adapter_model_body("llama", name="chat"))
    assert model["namespace"] == "team-a"
    assert model["routing_mode"] == "model-rewrite"
    assert model["base_pool"] == "llama"
    assert model["gpus_per_replica"] == 0
    elsewhere = api.post("/v1/models", json=adapter_model_body("llama", namespace="team-b"))
    assert elsewhere.status_code == 400
    assert elsewhere.json()["code"] == "pool_namespace_mismatch"
    missing = api.post("/v1/models", json=adapter_model_body("nope"))
    assert missing.status_code == 400
    assert missing.json()["code"] == "pool_not_found"
    other_route = api.post(
        "/v1/models", json=adapter_model_body("llama", routing_mode="gateway-api")
    )
    assert other_route.status_code == 422
    assert "model-rewrite" in other_route.text
    moved = api.patch("/v1/models/chat", json={"routing_mode": "replicas"})
    assert moved.status_code == 400
    assert moved.json()["code"] == "validation_error"


def test_a_pod_model_still_needs_an_image_and_cannot_route_by_rewrite(api: TestClient) -> None:
    no_image = model_body()
    del no_image["image"]
    response = api.post("/v1/models", json=no_image)
    assert response.status_code == 422
    assert "image is required" in response.text
    rewrite = api.post("/v1/models", json=model_body(routing_mode="model-rewrite"))
    assert rewrite.status_code == 422
    assert "base_pool" in rewrite.text


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"artifact_kind": "weights", "base_model": None, "lora_rank": None}, "adapter_required"),
        ({"base_model": "mistralai/Mistral-7B-v0.3"}, "base_model_mismatch"),
        ({"lora_rank": None}, "lora_rank_required"),
        ({"lora_rank": 32}, "lora_rank_too_large"),
    ],
)
def test_an_adapter_that_cannot_run_on_the_pool_is_refused_at_registration(
    api: TestClient, database: Database, changes: dict[str, Any], code: str
) -> None:
    create(api, "/v1/pools", pool_body(name="llama"))
    create(api, "/v1/models", adapter_model_body("llama", name="chat"))
    response = api.post("/v1/models/chat/versions", json=adapter_body(**changes))
    assert response.status_code == 400, response.text
    assert response.json()["code"] == code
    with database.session() as session:
        assert session.exec(select(ModelVersion)).all() == []


def test_a_rollout_that_needs_a_slot_the_pool_lacks_is_a_409_before_it_starts(
    api: TestClient, database: Database
) -> None:
    create(api, "/v1/pools", pool_body(name="llama", max_loras=2))
    for model in ("chat", "code"):
        create(api, "/v1/models", adapter_model_body("llama", name=model))
        create(api, f"/v1/models/{model}/versions", adapter_body(version="v1"))
    create(api, "/v1/models/chat/versions", adapter_body(version="v2"))
    with database.session() as session:  # both first versions are stable on the pool
        for row in session.exec(select(ModelVersion).where(ModelVersion.version == "v1")):
            row.status = VersionStatus.STABLE
            session.add(row)
        session.commit()
    response = api.post("/v1/models/chat/rollouts", json={"version": "v2"})
    assert response.status_code == 409, response.text
    problem = response.json()
    assert problem["code"] == "pool_full"
    assert "chat-v1" in problem["detail"]
    assert "code-v1" in problem["detail"]
    assert api.get("/v1/models/chat/versions/v2").json()["status"] == "registered"
    # with room for one more, the same rollout starts; a second on the pool does not
    assert api.patch("/v1/pools/llama", json={"max_loras": 3}).status_code == 200
    assert api.post("/v1/models/chat/rollouts", json={"version": "v2"}).status_code == 201
    create(api, "/v1/models/code/versions", adapter_body(version="v2"))
    second = api.post("/v1/models/code/rollouts", json={"version": "v2"})
    assert second.status_code == 409
    assert second.json()["code"] == "pool_full"


def test_what_the_pods_still_hold_beside_the_live_adapters_takes_a_slot_too(
    api: TestClient, database: Database
) -> None:
    # a promotion just ended: chat-v1 still drains on the pods, as the keeper last read them
    create(api, "/v1/pools", pool_body(name="llama", max_loras=3))
    create(api, "/v1/models", adapter_model_body("llama", name="chat"))
    create(api, "/v1/models", adapter_model_body("llama", name="code"))
    create(api, "/v1/models/chat/versions", adapter_body(version="v2"))
    create(api, "/v1/models/code/versions", adapter_body(version="v1"))
    create(api, "/v1/models/code/versions", adapter_body(version="v2"))
    create(api, "/v1/models/chat/versions", adapter_body(version="v1"))
    with database.session() as session:  # chat: v2 promoted over v1; code: v1 stable
        status = {
            ("chat", "v1"): VersionStatus.RETIRED,
            ("chat", "v2"): VersionStatus.STABLE,
            ("code", "v1"): VersionStatus.STABLE,
        }
        for row in session.exec(select(ModelVersion)):
            model = session.get(Model, row.model_id)
            assert model is not None
            row.status = status.get((model.name, row.version), row.status)
            session.add(row)
        pool = session.exec(select(BasePool)).one()
        held = ["chat-v2", "chat-v1", "code-v1"]
        pool.pods = [
            {"pod": "a", "serving": True, "ready": True, "gated": False, "adapters": held},
            {"pod": "b", "serving": False, "ready": False, "gated": False, "adapters": None},
        ]
        session.add(pool)
        session.commit()
    refused = api.post("/v1/models/code/rollouts", json={"version": "v2"})
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "pool_full"
    assert "a pod still holds chat-v1" in refused.json()["detail"]
    with database.session() as session:  # the keeper unloaded it
        pool = session.exec(select(BasePool)).one()
        pool.pods = [{**pool.pods[0], "adapters": ["chat-v2", "code-v1"]}, pool.pods[1]]
        session.add(pool)
        session.commit()
    assert api.post("/v1/models/code/rollouts", json={"version": "v2"}).status_code == 201


def test_two_models_on_a_pool_cannot_load_under_one_name(api: TestClient) -> None:
    create(api, "/v1/pools", pool_body(name="llama"))
    create(api, "/v1/models", adapter_model_body("llama", name="chat"))
    create(api, "/v1/models", adapter_model_body("llama", name="chat-fr"))
    create(api, "/v1/models/chat-fr/versions", adapter_body(version="v1"))
    clash = api.post("/v1/models/chat/versions", json=adapter_body(version="fr-v1"))
    assert clash.status_code == 409
    assert clash.json()["code"] == "adapter_name_taken"
    assert "'chat-fr-v1'" in clash.json()["detail"]
    assert api.post("/v1/models/chat/versions", json=adapter_body(version="fr-v2")).is_success


def test_a_pool_cannot_shrink_below_what_its_pods_hold(api: TestClient, database: Database) -> None:
    create(api, "/v1/pools", pool_body(name="llama", max_loras=2))
    create(api, "/v1/models", adapter_model_body("llama", name="chat"))
    create(api, "/v1/models/chat/versions", adapter_body(version="v1", lora_rank=16))
    create(api, "/v1/models/chat/versions", adapter_body(version="v2"))
    with database.session() as session:
        row = session.exec(select(ModelVersion).where(ModelVersion.version == "v1")).one()
        row.status = VersionStatus.STABLE
        session.add(row)
        session.commit()
    assert api.post("/v1/models/chat/rollouts", json={"version": "v2"}).status_code == 201
    smaller = api.patch("/v1/pools/llama", json={"max_loras": 1})
    assert smaller.status_code == 409
    assert smaller.json()["code"] == "pool_too_small"
    lower_rank = api.patch("/v1/pools/llama", json={"max_lora_rank": 8})
    assert lower_rank.status_code == 409
    assert lower_rank.json()["code"] == "pool_rank_too_small"
    assert api.get("/v1/pools/llama").json()["max_loras"] == 2


def test_a_pool_in_use_cannot_be_deleted_and_writes_are_audited(
    api: TestClient, viewer: TestClient, database: Database
) -> None:
    create(api, "/v1/pools", pool_body(name="llama"))
    create(api, "/v1/models", adapter_model_body("llama", name="chat"))
    assert viewer.post("/v1/pools", json=pool_body()).status_code == 403
    in_use = api.delete("/v1/pools/llama")
    assert in_use.status_code == 409
    assert in_use.json()["code"] == "pool_in_use"
    assert api.delete("/v1/models/chat").status_code == 204
    assert api.delete("/v1/pools/llama").status_code == 204
    assert api.get("/v1/pools/llama").status_code == 404
    with database.session() as session:
        actions = [e.action for e in session.exec(select(AuditEvent)).all()]
    assert actions.count("pool.created") == 1
    assert "pool.deleted" in actions
