"""Inputs found by fuzzing the API: each gets a clear 4xx problem document naming what to
fix, never a 500, and nothing of the request is stored."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from sqlmodel import SQLModel

from controlplane.api import create_app
from controlplane.api.routing import StrictRoute
from controlplane.config import Settings
from controlplane.db import Database
from tests.conftest import ADMIN_TOKEN
from tests.factories import adapter_body, model_body, pool_body, version_body


def row_counts(database: Database) -> dict[str, int]:
    """How many rows each table holds: equal before and after means nothing was written."""
    with database.session() as session:
        return {
            name: int(session.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
            for name, table in SQLModel.metadata.tables.items()
        }


@pytest.fixture
def raw(api: TestClient) -> Iterator[TestClient]:
    """The admin client, answering a server error with its 500 instead of raising it."""
    with TestClient(api.app, headers=dict(api.headers), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def chat(api: TestClient) -> str:
    assert api.post("/v1/models", json=model_body(name="chat")).status_code == 201
    assert api.post("/v1/models/chat/versions", json=version_body(version="v1")).status_code == 201
    return "chat"


def assert_refused(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem: dict[str, Any] = response.json()
    assert problem["code"] == code, problem
    assert problem["status"] == status
    return problem


# --- a trailing newline passes no name check ---------------------------------------------

NL = "\n"
EVAL_ITEM = {"id": "q1", "prompt": "2+2?", "scorer": "number", "expected": 4, "tags": ["general"]}

NEWLINE_BODIES: list[tuple[str, dict[str, Any], str]] = [
    ("/v1/models", model_body(name="chat2" + NL), "name"),
    ("/v1/models", model_body(namespace="llm" + NL), "namespace"),
    ("/v1/models", model_body(image="vllm/vllm-openai:v1" + NL), "image"),
    ("/v1/models", model_body(gpu_resource="nvidia.com/gpu" + NL), "gpu_resource"),
    ("/v1/models", model_body(health_path="/health" + NL), "health_path"),
    ("/v1/models", model_body(labels={"team" + NL: "nlp"}), "labels"),
    ("/v1/models", model_body(labels={"team": "nlp" + NL}), "labels"),
    ("/v1/models", model_body(env={"HF_HOME" + NL: "/x"}), "env"),
    ("/v1/models", model_body(node_selector={"pool": "a100" + NL}), "node_selector"),
    ("/v1/models", model_body(tolerations=[{"key": "gpu" + NL}]), "tolerations"),
    (
        "/v1/models",
        model_body(routing_mode="gateway-api", gateway="infra/gw" + NL),
        "gateway",
    ),
    (
        "/v1/models",
        model_body(
            routing_mode="inference-pool",
            gateway="gw",
            endpoint_picker={"service_account": "epp" + NL},
        ),
        "endpoint_picker",
    ),
    (
        "/v1/models",
        model_body(
            routing_mode="inference-pool",
            gateway="gw",
            endpoint_picker={"service_account": "epp", "config_file": "p.yaml" + NL},
        ),
        "endpoint_picker",
    ),
    ("/v1/models/chat/versions", version_body(version="v2" + NL), "version"),
    ("/v1/models/chat/versions", version_body(artifact_uri="s3://m/v2" + NL), "artifact_uri"),
    ("/v1/models/chat/versions", version_body(labels={"stage": "prod" + NL}), "labels"),
    (
        "/v1/models/chat/versions",
        adapter_body(base_model="meta-llama/Llama-3.1-8B" + NL),
        "base_model",
    ),
    ("/v1/pools", pool_body(name="llama" + NL), "name"),
    ("/v1/pools", pool_body(deployment="llama-base" + NL), "deployment"),
    ("/v1/tokens", {"name": "ci" + NL, "role": "viewer"}, "name"),
    (
        "/v1/webhooks",
        {"name": "ops" + NL, "url": "https://hooks.example.com/x", "events": ["promoted"]},
        "name",
    ),
    ("/v1/eval-suites", {"name": "starter" + NL, "items": [EVAL_ITEM]}, "name"),
    ("/v1/models/chat/rollouts", {"version": "v1" + NL}, "version"),
    (
        "/v1/models/chat/rollouts",
        {
            "version": "v1",
            "strategy": {
                "steps": [{"kind": "eval_gate", "checks": [{"score": "mmlu" + NL, "at_least": 0}]}]
            },
        },
        "strategy",
    ),
    (
        "/v1/models/chat/rollouts",
        {"version": "v1", "strategy": {"steps": [{"kind": "evaluation", "suite": "s" + NL}]}},
        "strategy",
    ),
]


@pytest.mark.parametrize(("path", "body", "field"), NEWLINE_BODIES)
def test_a_trailing_newline_fails_every_name_check(
    api: TestClient, database: Database, chat: str, path: str, body: dict[str, Any], field: str
) -> None:
    before = row_counts(database)
    problem = assert_refused(api.post(path, json=body), 422, "validation_error")
    assert any(e["field"].startswith(field) for e in problem["errors"]), problem
    assert row_counts(database) == before


@pytest.mark.parametrize(
    "item",
    [{**EVAL_ITEM, "id": "q1" + NL}, {**EVAL_ITEM, "tags": ["general" + NL]}],
)
def test_a_trailing_newline_fails_an_eval_items_id_and_tags(
    api: TestClient, database: Database, item: dict[str, Any]
) -> None:
    before = row_counts(database)
    response = api.post("/v1/eval-suites", json={"name": "starter", "items": [item]})
    assert "item 1" in assert_refused(response, 400, "invalid_eval_items")["detail"]
    assert row_counts(database) == before


def test_a_model_named_with_a_newline_is_refused_before_its_location_is_built(
    raw: TestClient, database: Database
) -> None:
    before = row_counts(database)
    response = raw.post("/v1/models", json=model_body(name="chat" + NL))
    assert_refused(response, 422, "validation_error")
    assert "location" not in response.headers
    assert row_counts(database) == before


# --- ids: in a path, in a cursor -----------------------------------------------------------


def api_routes(app: Any) -> list[APIRoute]:
    """Every endpoint of the app, through the routers it includes."""
    return [
        context.original_route
        for context in iter_route_contexts(app.routes)
        if isinstance(context.original_route, APIRoute)
    ]


def id_routes(app: Any) -> list[tuple[str, str, str]]:
    """(method, path template, id parameter) of every route with an integer path parameter."""
    found = []
    for route in api_routes(app):
        for param in route.dependant.path_params:
            if param.field_info.annotation is int:
                found.extend((method, route.path, param.name) for method in route.methods)
    return found


@pytest.fixture
def live(api: TestClient, chat: str) -> dict[str, str]:
    """Values for every path parameter: an existing model, rollout, suite and webhook."""
    rollout = api.post("/v1/models/chat/rollouts", json={"version": "v1"})
    assert rollout.status_code == 201, rollout.text
    suite = {"name": "starter", "items": [EVAL_ITEM]}
    assert api.post("/v1/eval-suites", json=suite).status_code == 201
    hook = {"name": "ops", "url": "https://hooks.example.com/x", "events": ["promoted"]}
    assert api.post("/v1/webhooks", json=hook).status_code == 201, "webhook"
    return {
        "model": "chat",
        "version": "v1",
        "rollout_id": str(rollout.json()["id"]),
        "name": "ops",
        "pool": "none",
    }


def test_every_integer_path_parameter_is_found(api: TestClient) -> None:
    paths = {path for _, path, _ in id_routes(api.app)}
    assert "/v1/rollouts/{rollout_id}" in paths
    assert "/v1/rollouts/{rollout_id}/abort" in paths
    assert "/v1/eval-suites/{name}/versions/{version}" in paths
    assert len(paths) >= 8


@pytest.mark.parametrize(
    "bad", [str(2**63), str(2**63 - 1), str(2**31), "0", "-1", "1.0", "1e3", "+1", "1_0", "x"]
)
def test_an_id_out_of_range_or_not_an_integer_is_422_on_every_route(
    raw: TestClient, database: Database, live: dict[str, str], bad: str
) -> None:
    routes = id_routes(raw.app)
    before = row_counts(database)
    for method, template, param in routes:
        path = template.format(**{**live, param: bad})
        response = raw.request(method, path, json={} if method == "POST" else None)
        problem = assert_refused(response, 422, "validation_error")
        assert problem["errors"][0]["field"] == f"path.{param}", (method, path, problem)
    assert row_counts(database) == before


def test_an_id_in_range_still_answers(api: TestClient, live: dict[str, str]) -> None:
    rollout_id = live["rollout_id"]
    assert api.get(f"/v1/rollouts/{rollout_id}").status_code == 200
    assert api.get(f"/v1/rollouts/0{rollout_id}").status_code == 200  # leading zeros: digits
    assert api.get("/v1/rollouts/2147483647").json()["code"] == "rollout_not_found"


def cursor_of(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "decoded",
    [f"id:{2**63}", f"id:{2**63 - 1}", f"id:{2**31}", "id:0", "id:-1", "id:1.0", "id: 1", "id:"],
)
def test_a_cursor_outside_the_id_range_is_400_on_every_list(
    raw: TestClient, live: dict[str, str], decoded: str
) -> None:
    lists = [
        route.path
        for route in api_routes(raw.app)
        if "GET" in route.methods and any(p.name == "cursor" for p in route.dependant.query_params)
    ]
    assert len(lists) >= 10
    for template in lists:
        response = raw.get(template.format(**live), params={"cursor": cursor_of(decoded)})
        assert_refused(response, 400, "invalid_cursor")


def test_a_limit_is_a_whole_number(api: TestClient) -> None:
    problem = assert_refused(
        api.get("/v1/models", params={"limit": "1.0"}), 422, "validation_error"
    )
    assert problem["errors"][0]["field"] == "query.limit"


# --- every count has an upper bound --------------------------------------------------------

HUGE = 10**30


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (model_body(gpu_budget=HUGE), "gpu_budget"),
        (model_body(gpu_budget=1_000_001), "gpu_budget"),
        (model_body(replicas=HUGE), "replicas"),
        (model_body(gpus_per_replica=HUGE), "gpus_per_replica"),
        (model_body(port=HUGE), "port"),
        (model_body(labels={f"k{i}": "v" for i in range(65)}), "labels"),
        (model_body(node_selector={f"k{i}": "v" for i in range(65)}), "node_selector"),
        (model_body(env={f"E{i}": "v" for i in range(257)}), "env"),
        (model_body(env={"BIG": "x" * (32 * 1024 + 1)}), "env"),
        (model_body(env={"E" * 257: "v"}), "env"),
        (model_body(args=["--x"] * 257), "args"),
        (model_body(args=["x" * 4097]), "args"),
        (model_body(tolerations=[{"key": "gpu", "operator": "Exists"}] * 65), "tolerations"),
        (
            model_body(
                routing_mode="inference-pool",
                gateway="gw",
                endpoint_picker={"service_account": "epp", "args": ["--v"] * 257},
            ),
            "endpoint_picker",
        ),
        (
            model_body(
                default_strategy={"steps": [{"kind": "analysis", "inconclusive_limit": HUGE}]}
            ),
            "default_strategy",
        ),
        (
            model_body(
                default_strategy={"steps": [{"kind": "analysis", "consecutive_error_limit": HUGE}]}
            ),
            "default_strategy",
        ),
        (
            model_body(default_strategy={"steps": [{"kind": "analysis", "metrics": ["m"] * 51}]}),
            "default_strategy",
        ),
    ],
)
def test_a_count_past_its_bound_is_422_on_create(
    raw: TestClient, database: Database, body: dict[str, Any], field: str
) -> None:
    before = row_counts(database)
    problem = assert_refused(raw.post("/v1/models", json=body), 422, "validation_error")
    assert any(e["field"].startswith(field) for e in problem["errors"]), problem
    assert row_counts(database) == before


@pytest.mark.parametrize(
    "change",
    [
        {"gpu_budget": HUGE},
        {"gpu_budget": 1_000_001},
        {"replicas": HUGE},
        {"labels": {f"k{i}": "v" for i in range(65)}},
        {"args": ["--x"] * 257},
    ],
)
def test_a_count_past_its_bound_is_422_on_patch_and_the_model_is_unchanged(
    raw: TestClient, database: Database, chat: str, change: dict[str, Any]
) -> None:
    model = raw.get("/v1/models/chat").json()
    before = row_counts(database)
    problem = assert_refused(raw.patch("/v1/models/chat", json=change), 422, "validation_error")
    assert problem["errors"][0]["field"].startswith(next(iter(change)))
    assert raw.get("/v1/models/chat").json() == model
    assert row_counts(database) == before


def test_a_gpu_budget_of_a_million_is_accepted(api: TestClient, chat: str) -> None:
    assert api.patch("/v1/models/chat", json={"gpu_budget": 1_000_000}).status_code == 200
    created = api.post("/v1/models", json=model_body(name="big", gpu_budget=1_000_000))
    assert created.status_code == 201, created.text


@pytest.mark.parametrize(
    "body",
    [
        version_body(labels={f"k{i}": "v" for i in range(65)}),
        version_body(env={f"E{i}": "v" for i in range(257)}),
        version_body(args=["--x"] * 257),
    ],
)
def test_a_versions_collections_are_bounded(
    api: TestClient, database: Database, chat: str, body: dict[str, Any]
) -> None:
    before = row_counts(database)
    assert_refused(api.post("/v1/models/chat/versions", json=body), 422, "validation_error")
    assert row_counts(database) == before


# --- JSON that is stored: depth, size, numbers, text -----------------------------------------


def nested(levels: int) -> Any:
    value: Any = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


def post_raw(client: TestClient, path: str, body: str) -> Any:
    """A body as written, for what json= cannot send (NaN, deep nesting, odd escapes)."""
    return client.post(path, content=body.encode(), headers={"content-type": "application/json"})


def test_every_endpoint_reads_its_input_strictly(api: TestClient) -> None:
    routes = api_routes(api.app)
    assert len(routes) > 40
    assert [r.path for r in routes if not isinstance(r, StrictRoute)] == []


@pytest.mark.parametrize("levels", [33, 256, 300, 900])
def test_deep_version_metadata_is_422_and_the_versions_still_list(
    raw: TestClient, database: Database, chat: str, levels: int
) -> None:
    before = row_counts(database)
    body = version_body(version="v2", metadata=nested(levels))
    problem = assert_refused(
        raw.post("/v1/models/chat/versions", json=body), 422, "validation_error"
    )
    assert problem["errors"][0]["field"] == "metadata"
    assert "more than 32 levels deep" in problem["detail"]
    assert row_counts(database) == before
    assert raw.get("/v1/models/chat/versions").status_code == 200
    assert raw.get("/v1/models/chat/versions/v2").status_code == 404


def test_metadata_thirty_two_levels_deep_is_stored_and_read_back(
    api: TestClient, chat: str
) -> None:
    body = version_body(version="v2", metadata=nested(32))
    assert api.post("/v1/models/chat/versions", json=body).status_code == 201
    assert api.get("/v1/models/chat/versions/v2").json()["metadata"] == nested(32)
    assert api.get("/v1/models/chat/versions").status_code == 200


def test_a_body_nested_deeper_than_the_parser_goes_is_400(
    raw: TestClient, database: Database, chat: str
) -> None:
    before = row_counts(database)
    deep = "[" * 5000 + "]" * 5000
    body = f'{{"version": "v2", "artifact_uri": "s3://m/v2", "metadata": {{"a": {deep}}}}}'
    problem = assert_refused(post_raw(raw, "/v1/models/chat/versions", body), 400, "malformed_json")
    assert "nested too deeply" in problem["detail"]
    assert row_counts(database) == before


@pytest.fixture
def roomy(settings: Settings, database: Database) -> Iterator[TestClient]:
    """The API with a 1 MiB body limit (the default), above the limits on stored JSON."""
    roomy = settings.model_copy(update={"max_body_bytes": 1024 * 1024})
    app = create_app(roomy, database, start_reconciler=False)
    with TestClient(app, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as client:
        yield client


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/models/chat/versions", version_body(metadata={"blob": "x" * 65_536}), "metadata"),
        (
            "/v1/models/chat/versions",
            version_body(env={f"E{i}": "x" * 300 for i in range(250)}),
            "env",
        ),
        ("/v1/models", model_body(args=["x" * 4000] * 20), "args"),
    ],
)
def test_stored_json_past_64_kib_is_422_naming_the_field(
    roomy: TestClient, database: Database, chat: str, path: str, body: dict[str, Any], field: str
) -> None:
    before = row_counts(database)
    problem = assert_refused(roomy.post(path, json=body), 422, "validation_error")
    assert problem["errors"][0]["field"] == field
    assert "the limit is 64 KiB" in problem["detail"]
    assert row_counts(database) == before


def test_metadata_just_under_64_kib_is_stored(roomy: TestClient, chat: str) -> None:
    body = version_body(version="v2", metadata={"blob": "x" * 65_000})
    assert roomy.post("/v1/models/chat/versions", json=body).status_code == 201


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400", "-1e400"])
def test_non_finite_numbers_are_400_and_never_stored_as_null(
    raw: TestClient, database: Database, chat: str, number: str
) -> None:
    before = row_counts(database)
    body = f'{{"version": "v2", "artifact_uri": "s3://m/v2", "metadata": {{"x": {number}}}}}'
    problem = assert_refused(post_raw(raw, "/v1/models/chat/versions", body), 400, "malformed_json")
    assert "not valid JSON" in problem["detail"]
    assert row_counts(database) == before


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (
            "/v1/models/chat/rollouts",
            '{"version": "v1", "strategy": {"steps": [{"kind": "analysis",'
            ' "checks": {"ttft": {"max_value": NaN}}}]}}',
        ),
        (
            "/v1/eval-suites",
            '{"name": "s", "items": [{"id": "q", "prompt": "1?", "scorer": "number",'
            ' "expected": Infinity}]}',
        ),
        ("/v1/models", '{"name": "m2", "image": "a:b", "gpu_budget": 1e400}'),
        (
            "/v1/models/chat/versions",
            '{"version": "v2", "artifact_uri": "s3://m/v2", "metadata": {"n": ' + "9" * 5000 + "}}",
        ),
    ],
)
def test_numbers_json_does_not_have_are_400_on_every_body(
    raw: TestClient, database: Database, chat: str, path: str, body: str
) -> None:
    before = row_counts(database)
    assert_refused(post_raw(raw, path, body), 400, "malformed_json")
    assert row_counts(database) == before


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/models", model_body(name="m2", description="a\x00b")),
        ("/v1/models", model_body(name="m2", env={"A": "\x00"})),
        ("/v1/models", model_body(name="m2", args=["--x=\x00"])),
        ("/v1/models/chat/versions", version_body(metadata={"a": "x\x00"})),
        ("/v1/models/chat/versions", version_body(metadata={"a\x00": "x"})),
        ("/v1/models/chat/versions", version_body(description="\x00")),
        (
            "/v1/models/chat/rollouts",
            {
                "version": "v1",
                "strategy": {"steps": [{"kind": "analysis", "metrics": ["ttft\x00"]}]},
            },
        ),
        ("/v1/eval-suites", {"name": "s", "items": [{**EVAL_ITEM, "prompt": "2+2?\x00"}]}),
        ("/v1/tokens", {"name": "ci", "role": "viewer", "description": "\x00"}),
    ],
)
def test_a_nul_character_in_any_body_is_400_on_both_databases(
    raw: TestClient, database: Database, chat: str, path: str, body: dict[str, Any]
) -> None:
    before = row_counts(database)
    problem = assert_refused(raw.post(path, json=body), 400, "invalid_character")
    assert "NUL character" in problem["detail"]
    assert row_counts(database) == before


def test_a_lone_surrogate_in_metadata_is_400(
    raw: TestClient, database: Database, chat: str
) -> None:
    before = row_counts(database)
    body = '{"version": "v2", "artifact_uri": "s3://m/v2", "metadata": {"a": "\\ud800"}}'
    problem = assert_refused(
        post_raw(raw, "/v1/models/chat/versions", body), 400, "invalid_character"
    )
    assert "body.metadata.a" in problem["detail"]
    assert row_counts(database) == before


@pytest.mark.parametrize(
    ("method", "path", "params"),
    [
        ("GET", "/v1/models/%00", None),
        ("GET", "/v1/models/chat/versions/v%00", None),
        ("DELETE", "/v1/models/%00", None),
        ("PATCH", "/v1/pools/%00", None),
        ("GET", "/v1/audit", {"actor": "\x00"}),
        ("GET", "/v1/models", {"namespace": "llm\x00"}),
        ("GET", "/v1/eval-suites", {"name": "\x00"}),
        ("GET", "/v1/models/chat/versions", {"label": "team=\x00"}),
    ],
)
def test_a_nul_character_in_a_path_or_query_parameter_is_400(
    raw: TestClient, chat: str, method: str, path: str, params: dict[str, str] | None
) -> None:
    response = raw.request(method, path, params=params, json={} if method == "PATCH" else None)
    problem = assert_refused(response, 400, "invalid_character")
    assert "NUL character" in problem["detail"]


# --- label selectors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "selector",
    [
        '"=x',
        'a"b=x',
        "a'b=x",
        "$.a=x",
        "a.b[0]=x",
        "te am=x",
        "a/b/c=x",
        "team=nlp!",
        "k" * 64 + "=x",
    ],
)
def test_a_label_selector_that_names_no_possible_label_is_400(
    raw: TestClient, chat: str, selector: str
) -> None:
    response = raw.get("/v1/models/chat/versions", params={"label": selector})
    problem = assert_refused(response, 400, "invalid_label_selector")
    assert "label selector term" in problem["detail"]


def test_a_nul_in_a_label_selector_key_is_400(raw: TestClient, chat: str) -> None:
    response = raw.get("/v1/models/chat/versions?label=%00%3Dx")
    assert response.status_code == 400
    assert response.json()["code"] in ("invalid_character", "invalid_label_selector")


def test_a_label_selector_on_a_prefixed_key_matches(api: TestClient, chat: str) -> None:
    labels = {"app.kubernetes.io/part-of": "chat", "team": "nlp"}
    api.post("/v1/models/chat/versions", json=version_body(version="v2", labels=labels))
    selector = "app.kubernetes.io/part-of=chat, team==nlp"
    found = api.get("/v1/models/chat/versions", params={"label": selector}).json()["items"]
    assert [v["version"] for v in found] == ["v2"]


# --- a boolean or a number is the JSON type the document gives it (found by schemathesis) --


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/models", model_body(name="m2", replicas="2"), "replicas"),
        ("/v1/models", model_body(name="m2", gpus_per_replica=True), "gpus_per_replica"),
        ("/v1/models/chat/versions", version_body(version="v2", lora_rank="8"), "lora_rank"),
        ("/v1/pools", pool_body(max_loras="4"), "max_loras"),
        ("/v1/tokens", {"name": "t", "role": "viewer", "expires_in_days": "30"}, "expires_in_days"),
        (
            "/v1/webhooks",
            {"name": "w", "url": "https://hooks.example.com/x", "events": ["failed"], "active": 0},
            "active",
        ),
        (
            "/v1/models/chat/rollouts",
            {"version": "v1", "strategy": {"steps": [{"kind": "set_weight", "weight": "10"}]}},
            "weight",
        ),
    ],
)
def test_a_boolean_or_a_number_sent_as_another_type_is_422(
    api: TestClient, database: Database, chat: str, path: str, body: dict[str, Any], field: str
) -> None:
    before = row_counts(database)
    problem = assert_refused(api.post(path, json=body), 422, "validation_error")
    assert f"{field} must be" in problem["detail"]
    assert row_counts(database) == before


def test_a_whole_float_is_still_a_whole_number(api: TestClient) -> None:
    # JSON Schema counts 2.0 as an integer, and so does the server
    response = api.post("/v1/models", json=model_body(name="m2", replicas=2.0))
    assert response.status_code == 201, response.text
    assert response.json()["replicas"] == 2
