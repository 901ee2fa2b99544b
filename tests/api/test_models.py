"""/v1/models against a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlmodel import select

from controlplane.db import Database
from controlplane.models import AuditEvent, ModelVersion, VersionStatus
from tests.factories import model_body, version_body


def test_the_contract_request_creates_a_model(api: TestClient) -> None:
    response = api.post(
        "/v1/models",
        json={
            "name": "chat",
            "namespace": "llm",
            "image": "vllm/vllm-openai:v0.11.0",
            "gpus_per_replica": 1,
            "replicas": 2,
            "port": 8000,
            "gpu_budget": 4,
        },
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["name"] == "chat"
    assert body["gpu_resource"] == "nvidia.com/gpu"
    assert body["created_by"] == "admin"
    assert body["created_at"].endswith("Z") or body["created_at"].endswith("+00:00")
    assert response.headers["location"] == "/v1/models/chat"
    assert api.get("/v1/models/chat").json() == body


def test_duplicate_model_name_is_409(api: TestClient) -> None:
    body = model_body(name="dup")
    assert api.post("/v1/models", json=body).status_code == 201
    response = api.post("/v1/models", json=body)
    assert response.status_code == 409
    assert response.json()["code"] == "model_exists"


def test_list_models_pages_newest_first(api: TestClient) -> None:
    names = [f"m-{i}" for i in range(5)]
    for name in names:
        assert api.post("/v1/models", json=model_body(name=name)).status_code == 201
    first = api.get("/v1/models", params={"limit": 2}).json()
    assert [m["name"] for m in first["items"]] == ["m-4", "m-3"]
    second = api.get("/v1/models", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    third = api.get("/v1/models", params={"limit": 2, "cursor": second["next_cursor"]}).json()
    assert [m["name"] for m in second["items"] + third["items"]] == ["m-2", "m-1", "m-0"]
    assert third["next_cursor"] is None


def test_list_models_filters_by_namespace(api: TestClient) -> None:
    api.post("/v1/models", json=model_body(name="a", namespace="team-a"))
    api.post("/v1/models", json=model_body(name="b", namespace="team-b"))
    items = api.get("/v1/models", params={"namespace": "team-b"}).json()["items"]
    assert [m["name"] for m in items] == ["b"]


def test_patch_changes_only_given_fields_and_records_actor(
    api: TestClient, operator: TestClient
) -> None:
    api.post("/v1/models", json=model_body(name="p", replicas=2, gpu_budget=4))
    response = operator.patch("/v1/models/p", json={"image": "vllm/vllm-openai:v0.12.0"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["image"] == "vllm/vllm-openai:v0.12.0"
    assert body["replicas"] == 2
    assert body["updated_by"].startswith("operator-")
    assert body["created_by"] == "admin"


def test_patch_that_breaks_the_gpu_budget_is_refused_and_changes_nothing(api: TestClient) -> None:
    api.post("/v1/models", json=model_body(name="b", gpus_per_replica=1, replicas=2, gpu_budget=4))
    response = api.patch("/v1/models/b", json={"gpus_per_replica": 4})
    assert response.status_code == 400
    problem = response.json()
    assert problem["code"] == "validation_error"
    assert problem["errors"][0]["field"] == "gpu_budget"
    assert "at least 8" in problem["detail"]
    assert api.get("/v1/models/b").json()["gpus_per_replica"] == 1


def test_patch_rejects_null_for_required_fields(api: TestClient) -> None:
    api.post("/v1/models", json=model_body(name="n"))
    response = api.patch("/v1/models/n", json={"image": None})
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "null_not_allowed"


def test_patch_can_clear_the_gpu_budget(api: TestClient) -> None:
    api.post("/v1/models", json=model_body(name="c", gpu_budget=4))
    assert api.patch("/v1/models/c", json={"gpu_budget": None}).json()["gpu_budget"] is None


def test_create_refuses_a_budget_below_the_stable_footprint(api: TestClient) -> None:
    response = api.post("/v1/models", json=model_body(gpus_per_replica=2, replicas=2, gpu_budget=3))
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "budget_too_small"


def test_delete_removes_model_and_versions(api: TestClient, database: Database) -> None:
    api.post("/v1/models", json=model_body(name="gone"))
    api.post("/v1/models/gone/versions", json=version_body(version="v1"))
    assert api.delete("/v1/models/gone").status_code == 204
    assert api.get("/v1/models/gone").status_code == 404
    with database.session() as session:
        assert session.exec(select(ModelVersion)).all() == []


def test_delete_is_refused_while_a_version_is_live(api: TestClient, database: Database) -> None:
    api.post("/v1/models", json=model_body(name="live"))
    api.post("/v1/models/live/versions", json=version_body(version="v1"))
    with database.session() as session:  # the rollout engine's job; done by hand here
        version = session.exec(select(ModelVersion)).one()
        version.status = VersionStatus.STABLE
        session.add(version)
        session.commit()
    response = api.delete("/v1/models/live")
    assert response.status_code == 409
    assert response.json()["code"] == "model_live"
    assert response.json()["live_versions"] == ["v1"]
    assert api.get("/v1/models/live").status_code == 200


def test_every_write_is_in_the_audit_trail(
    api: TestClient, operator: TestClient, database: Database
) -> None:
    api.post("/v1/models", json=model_body(name="aud"))
    operator.post("/v1/models/aud/versions", json=version_body(version="v1"))
    api.patch("/v1/models/aud", json={"replicas": 1})
    with database.session() as session:
        events = session.exec(select(AuditEvent).order_by(AuditEvent.id)).all()  # type: ignore[arg-type]
    actions = [(e.action, e.actor.split("-")[0], e.model) for e in events]
    assert ("model.created", "admin", "aud") in actions
    assert ("version.registered", "operator", "aud") in actions
    assert ("model.updated", "admin", "aud") in actions
    listed = api.get("/v1/audit", params={"model": "aud"}).json()["items"]
    assert [e["action"] for e in listed] == ["model.updated", "version.registered", "model.created"]


def test_gateway_routing_needs_a_gateway_reference(api: TestClient) -> None:
    missing = api.post("/v1/models", json=model_body(routing_mode="gateway-api"))
    assert missing.status_code == 400
    assert missing.json()["errors"][0]["code"] == "gateway_required"
    bad = api.post("/v1/models", json=model_body(routing_mode="gateway-api", gateway="a/b/C"))
    assert bad.status_code == 422
    good = api.post(
        "/v1/models", json=model_body(routing_mode="gateway-api", gateway="infra/llm-gw")
    )
    assert good.status_code == 201, good.text
    assert good.json()["gateway"] == "infra/llm-gw"


def test_inference_pool_routing_needs_a_gateway_and_an_endpoint_picker(api: TestClient) -> None:
    bare = api.post("/v1/models", json=model_body(name="pooled", routing_mode="inference-pool"))
    assert bare.status_code == 400
    assert {e["code"] for e in bare.json()["errors"]} == {
        "gateway_required",
        "endpoint_picker_required",
    }
    assert api.get("/v1/models/pooled").status_code == 404
    picker = {"service_account": "epp", "config_map": "epp-plugins"}
    bad = api.post(
        "/v1/models",
        json=model_body(
            name="pooled",
            routing_mode="inference-pool",
            gateway="infra/gw",
            endpoint_picker={**picker, "failure_mode": "Sometimes"},
        ),
    )
    assert bad.status_code == 422
    good = api.post(
        "/v1/models",
        json=model_body(
            name="pooled", routing_mode="inference-pool", gateway="infra/gw", endpoint_picker=picker
        ),
    )
    assert good.status_code == 201, good.text
    shown = good.json()["endpoint_picker"]
    assert shown["service_account"] == "epp"
    assert shown["failure_mode"] == "FailClose"
    assert shown["image"].startswith("registry.k8s.io/gateway-api-inference-extension/epp:")
    # a model moved to inference-pool routing by PATCH must bring its picker too
    assert api.post("/v1/models", json=model_body(name="plain")).status_code == 201
    patched = api.patch("/v1/models/plain", json={"routing_mode": "inference-pool"})
    assert patched.status_code == 400
    assert api.get("/v1/models/plain").json()["routing_mode"] == "replicas"
    moved = api.patch(
        "/v1/models/plain",
        json={"routing_mode": "inference-pool", "gateway": "infra/gw", "endpoint_picker": picker},
    )
    assert moved.status_code == 200, moved.text


def test_node_placement_round_trips_and_patches(api: TestClient) -> None:
    body = model_body(
        name="placed",
        node_selector={"nvidia.com/gpu.product": "H100-SXM"},
        tolerations=[
            {"key": "dedicated", "operator": "Equal", "value": "llm", "effect": "NoSchedule"}
        ],
    )
    created = api.post("/v1/models", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["node_selector"] == {"nvidia.com/gpu.product": "H100-SXM"}
    assert created.json()["tolerations"][0]["value"] == "llm"
    patched = api.patch("/v1/models/placed", json={"tolerations": []})
    assert patched.json()["tolerations"] == []
    assert api.get("/v1/models/placed").json()["node_selector"] == {
        "nvidia.com/gpu.product": "H100-SXM"
    }
