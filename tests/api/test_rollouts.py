"""/v1 rollouts as records (no cluster here): start, one live per model, commands, history."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from controlplane.db import Database
from controlplane.kube.observe import VersionState
from controlplane.models import ModelVersion, Phase, Rollout, VersionStatus
from controlplane.rollout.reconciler import Reconciler
from tests.factories import model_body, version_body


@pytest.fixture
def chat(api: TestClient, database: Database) -> str:
    api.post("/v1/models", json=model_body(name="chat"))
    for version in ("v1", "v2", "v3"):
        api.post("/v1/models/chat/versions", json=version_body(version=version))
    with database.session() as session:  # v1 is stable, as a finished first rollout leaves it
        v1 = session.exec(select(ModelVersion).where(ModelVersion.version == "v1")).one()
        v1.status = VersionStatus.STABLE
        session.add(v1)
        session.commit()
    return "chat"


def test_start_a_rollout_with_the_default_strategy(
    api: TestClient, operator: TestClient, chat: str
) -> None:
    response = operator.post("/v1/models/chat/rollouts", json={"version": "v2"})
    assert response.status_code == 201, response.text
    rollout = response.json()
    assert rollout["phase"] == "pending"
    assert rollout["stable_version"] == "v1"
    assert rollout["canary_version"] == "v2"
    assert [s["kind"] for s in rollout["steps"]][:2] == ["set_weight", "analysis"]
    assert rollout["created_by"].startswith("operator-")
    assert response.headers["location"] == f"/v1/rollouts/{rollout['id']}"
    assert api.get("/v1/models/chat/versions/v2").json()["status"] == "canary"
    events = api.get(f"/v1/rollouts/{rollout['id']}/events").json()["items"]
    assert events[0]["kind"] == "created"
    assert events[0]["actor"] == rollout["created_by"]


def test_a_second_live_rollout_is_409_naming_the_live_one(api: TestClient, chat: str) -> None:
    first = api.post("/v1/models/chat/rollouts", json={"version": "v2"}).json()
    second = api.post("/v1/models/chat/rollouts", json={"version": "v3"})
    assert second.status_code == 409
    problem = second.json()
    assert problem["code"] == "rollout_in_progress"
    assert problem["rollout_id"] == first["id"]
    assert f"#{first['id']}" in problem["detail"]


def test_custom_strategy_is_validated(api: TestClient, chat: str) -> None:
    ok = api.post(
        "/v1/models/chat/rollouts",
        json={
            "version": "v2",
            "strategy": {
                "steps": [
                    {
                        "kind": "eval_gate",
                        "checks": [
                            {"score": "mmlu", "max_regression": 0.01},
                            {"score": "toxicity", "higher_is_better": False, "at_most": 0.05},
                        ],
                    },
                    {"kind": "set_weight", "weight": 20},
                    {"kind": "pause", "duration_seconds": 30},
                    {"kind": "analysis", "count": 3, "interval_seconds": 30},
                    {"kind": "set_weight", "weight": 100},
                ]
            },
        },
    )
    assert ok.status_code == 201, ok.text
    assert [s["kind"] for s in ok.json()["steps"]] == [
        "eval_gate",
        "set_weight",
        "pause",
        "analysis",
        "set_weight",
    ]


@pytest.mark.parametrize(
    "steps",
    [
        [],
        [{"kind": "set_weight", "weight": 120}],
        [{"kind": "jump"}],
        [{"kind": "set_weight", "weight": 50}, {"kind": "set_weight", "weight": 10}],
        [{"kind": "analysis", "count": 2, "failure_limit": 2}],
        [{"kind": "eval_gate", "checks": [{"score": "mmlu"}]}],  # no bound
        [{"kind": "eval_gate", "checks": [{"score": "mmlu", "max_drop": 0.1}]}],  # misspelt
    ],
)
def test_bad_strategies_are_422(api: TestClient, chat: str, steps: list[object]) -> None:
    response = api.post(
        "/v1/models/chat/rollouts", json={"version": "v2", "strategy": {"steps": steps}}
    )
    assert response.status_code == 422, response.text
    assert api.get("/v1/models/chat/rollouts").json()["items"] == []


def test_rolling_out_the_stable_version_or_an_unknown_one(api: TestClient, chat: str) -> None:
    assert api.post("/v1/models/chat/rollouts", json={"version": "v1"}).json()["code"] == (
        "already_stable"
    )
    assert api.post("/v1/models/chat/rollouts", json={"version": "v9"}).status_code == 404


def test_the_first_version_goes_straight_to_stable(api: TestClient) -> None:
    api.post("/v1/models", json=model_body(name="fresh"))
    api.post("/v1/models/fresh/versions", json=version_body(version="v1"))
    rollout = api.post("/v1/models/fresh/rollouts", json={"version": "v1"}).json()
    assert rollout["stable_version"] is None
    assert rollout["steps"] == [{"kind": "set_weight", "weight": 100}]


def test_commands_are_recorded_with_their_actor(
    api: TestClient, operator: TestClient, chat: str
) -> None:
    rollout = api.post("/v1/models/chat/rollouts", json={"version": "v2"}).json()
    paused = operator.post(f"/v1/rollouts/{rollout['id']}/pause", json={"reason": "lunch"})
    assert paused.status_code == 202
    assert paused.json()["pending_command"] == "pause"
    abort = operator.post(f"/v1/rollouts/{rollout['id']}/abort", json={"reason": "bad eval"})
    assert abort.json()["pending_command"] == "abort"
    events = api.get(f"/v1/rollouts/{rollout['id']}/events").json()["items"]
    assert events[0]["message"].endswith("bad eval")
    assert events[0]["actor"].startswith("operator-")
    audit = api.get("/v1/audit", params={"action": "rollout.abort"}).json()["items"]
    assert len(audit) == 1


@pytest.mark.parametrize(
    ("path", "body"),
    [("pause", None), ("promote", None), ("promote", {"full": True}), ("resume", None)],
)
def test_an_accepted_abort_is_never_replaced_by_a_later_command(
    api: TestClient, operator: TestClient, chat: str, path: str, body: dict[str, bool] | None
) -> None:
    rollout = api.post("/v1/models/chat/rollouts", json={"version": "v2"}).json()
    url = f"/v1/rollouts/{rollout['id']}"
    abort = operator.post(f"{url}/abort", json={"reason": "bad eval"})
    assert abort.status_code == 202
    later = api.post(f"{url}/{path}", json=body)
    assert later.status_code == 409, later.text
    problem = later.json()
    assert problem["code"] == "abort_pending"
    assert problem["pending_command"] == "abort"
    assert problem["command_by"].startswith("operator-")
    assert "abort requested by operator-" in problem["detail"]
    assert api.get(url).json()["pending_command"] == "abort"
    events = api.get(f"{url}/events").json()["items"]
    assert [e["kind"] for e in events] == ["command", "created"]
    assert events[0]["message"].endswith("bad eval")
    audit = api.get("/v1/audit", params={"model": "chat"}).json()["items"]
    assert [a["action"] for a in audit if a["action"].startswith("rollout.")] == [
        "rollout.abort",
        "rollout.started",
    ]


class CommandMidPass:
    """A cluster where every version is up, and whose first look lets a person's command
    in while the reconcile pass runs (after the pass read the rollout)."""

    def __init__(self, during: Callable[[], None] | None = None) -> None:
        self.during = during

    def observe_version(self, namespace: str, model: str, version: str, **_: Any) -> Any:
        if self.during is not None:
            during, self.during = self.during, None
            during()
        return VersionState(name=f"{model}-{version}", exists=True, desired=1, ready=1)


def progressing_with_a_pause(api: TestClient, database: Database) -> int:
    rollout_id: int = api.post("/v1/models/chat/rollouts", json={"version": "v2"}).json()["id"]
    with database.session() as session:
        row = session.get(Rollout, rollout_id)
        assert row is not None
        row.phase = Phase.PROGRESSING
        session.add(row)
        session.commit()
    assert api.post(f"/v1/rollouts/{rollout_id}/pause").status_code == 202
    return rollout_id


def test_an_abort_given_while_a_pass_carries_out_a_pause_outlives_the_pass(
    api: TestClient, database: Database, chat: str
) -> None:
    rollout_id = progressing_with_a_pause(api, database)

    def abort() -> None:
        assert api.post(f"/v1/rollouts/{rollout_id}/abort").status_code == 202

    reconciler = Reconciler(database, cast(Any, CommandMidPass(abort)))
    assert reconciler.reconcile(rollout_id, max_moves=1)
    rollout = api.get(f"/v1/rollouts/{rollout_id}").json()
    assert rollout["phase"] == "paused"  # the pause the pass read was carried out
    assert rollout["pending_command"] == "abort"  # and the abort given meanwhile is kept
    assert reconciler.due() == [rollout_id]  # for the next pass, at once


def test_a_pass_clears_the_command_it_carried_out(
    api: TestClient, database: Database, chat: str
) -> None:
    rollout_id = progressing_with_a_pause(api, database)
    assert Reconciler(database, cast(Any, CommandMidPass())).reconcile(rollout_id, max_moves=1)
    rollout = api.get(f"/v1/rollouts/{rollout_id}").json()
    assert rollout["phase"] == "paused"
    assert rollout["pending_command"] is None


def test_an_abort_may_be_asked_for_again(api: TestClient, chat: str) -> None:
    rollout = api.post("/v1/models/chat/rollouts", json={"version": "v2"}).json()
    api.post(f"/v1/rollouts/{rollout['id']}/abort")
    again = api.post(f"/v1/rollouts/{rollout['id']}/abort", json={"reason": "really"})
    assert again.status_code == 202
    assert again.json()["pending_command"] == "abort"


def test_commands_need_an_operator_and_a_live_phase(
    api: TestClient, viewer: TestClient, chat: str
) -> None:
    rollout = api.post("/v1/models/chat/rollouts", json={"version": "v2"}).json()
    assert viewer.post(f"/v1/rollouts/{rollout['id']}/abort").status_code == 403
    assert viewer.get(f"/v1/rollouts/{rollout['id']}").status_code == 200
    resume = api.post(f"/v1/rollouts/{rollout['id']}/resume")
    assert resume.status_code == 409
    assert resume.json()["code"] == "invalid_phase"
    assert api.post("/v1/rollouts/999/abort").status_code == 404


def test_history_lists_rollouts_newest_first(
    api: TestClient, chat: str, database: Database
) -> None:
    from controlplane.models import Phase, Rollout

    first = api.post("/v1/models/chat/rollouts", json={"version": "v2"}).json()
    with database.session() as session:  # end it, as the reconciler would
        row = session.get(Rollout, first["id"])
        assert row is not None
        row.phase, row.live_model_id = Phase.ROLLED_BACK, None
        session.add(row)
        session.commit()
    second = api.post("/v1/models/chat/rollouts", json={"version": "v3"})
    assert second.status_code == 201
    history = api.get("/v1/models/chat/rollouts").json()["items"]
    assert [r["canary_version"] for r in history] == ["v3", "v2"]


def test_metrics_show_rollouts_by_phase(api: TestClient, anonymous: TestClient, chat: str) -> None:
    api.post("/v1/models/chat/rollouts", json={"version": "v2"})
    response = anonymous.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert 'controlplane_rollouts{phase="pending"} 1.0' in response.text
    assert 'controlplane_rollouts{phase="succeeded"} 0.0' in response.text
    assert "controlplane_reconcile_duration_seconds_bucket" in response.text
    assert "test-admin-token" not in response.text


def test_unknown_metric_names_are_refused_up_front(api: TestClient, chat: str) -> None:
    response = api.post(
        "/v1/models/chat/rollouts",
        json={
            "version": "v2",
            "strategy": {
                "steps": [
                    {"kind": "set_weight", "weight": 10},
                    {"kind": "analysis", "metrics": ["ttft", "vibes"]},
                ]
            },
        },
    )
    assert response.status_code == 400
    problem = response.json()
    assert problem["code"] == "unknown_metric"
    assert "vibes" in problem["detail"]
    assert problem["errors"][0]["field"] == "strategy.steps.1.metrics"


def test_contract_fields_of_rollouts_and_events(api: TestClient, chat: str) -> None:
    rollout = api.post("/v1/models/chat/rollouts", json={"version": "v2"}).json()
    got = api.get(f"/v1/rollouts/{rollout['id']}").json()
    assert {"id", "model", "version", "state", "current_step"} <= set(got)
    assert got["version"] == "v2"
    assert got["state"] == "pending"
    assert got["current_step"] == {"kind": "set_weight", "weight": 10}
    events = api.get(f"/v1/rollouts/{rollout['id']}/events").json()["items"]
    assert {"type", "actor", "at", "message"} <= set(events[0])
    assert events[0]["type"] == "created"


def test_a_models_default_strategy_is_used_unless_the_request_overrides_it(
    api: TestClient, chat: str
) -> None:
    steps = [
        {"kind": "set_weight", "weight": 5},
        {"kind": "pause", "duration_seconds": 600},
        {"kind": "set_weight", "weight": 100},
    ]
    patched = api.patch("/v1/models/chat", json={"default_strategy": {"steps": steps}})
    assert patched.status_code == 200, patched.text
    assert patched.json()["default_strategy"]["steps"][0] == {"kind": "set_weight", "weight": 5}
    rollout = api.post("/v1/models/chat/rollouts", json={"version": "v2"}).json()
    assert [s["kind"] for s in rollout["steps"]] == ["set_weight", "pause", "set_weight"]
    assert rollout["steps"][0]["weight"] == 5
    bad = api.patch(
        "/v1/models/chat",
        json={
            "default_strategy": {
                "steps": [
                    {"kind": "set_weight", "weight": 50},
                    {"kind": "set_weight", "weight": 10},
                ]
            }
        },
    )
    assert bad.status_code == 422
    cleared = api.patch("/v1/models/chat", json={"default_strategy": None})
    assert cleared.json()["default_strategy"] is None


def test_a_first_deployment_keeps_the_eval_gates_floors(api: TestClient) -> None:
    assert api.post("/v1/models", json=model_body(name="solo")).status_code == 201
    registered = api.post(
        "/v1/models/solo/versions",
        json={**version_body(version="v1"), "metadata": {"eval": {"mmlu": 0.4}}},
    )
    assert registered.status_code == 201, registered.text
    gate = {
        "kind": "eval_gate",
        "checks": [{"score": "mmlu", "at_least": 0.5, "max_regression": 0.01}],
    }
    started = api.post(
        "/v1/models/solo/rollouts",
        json={"version": "v1", "strategy": {"steps": [gate, {"kind": "set_weight", "weight": 10}]}},
    )
    assert started.status_code == 201, started.text
    steps = started.json()["steps"]
    # nothing to compare with: straight to stable, but not past the floor
    assert [s["kind"] for s in steps] == ["eval_gate", "set_weight"]
    assert steps[0]["checks"][0]["at_least"] == 0.5
    assert steps[0]["checks"][0]["max_regression"] is None
    assert steps[1]["weight"] == 100


def test_weights_replicas_routing_cannot_honor_are_named_with_the_ones_it_can(
    api: TestClient, chat: str
) -> None:
    response = api.post("/v1/models/chat/rollouts", json={"version": "v2"})
    assert response.status_code == 201, response.text
    (warning,) = response.json()["warnings"]
    assert "10% -> 33%" in warning
    assert "25% -> 33%" in warning
    assert "50% -> 33%" in warning
    assert "33%, 50%" in warning, "the shares it can put in force"
    events = api.get(f"/v1/rollouts/{response.json()['id']}/events").json()["items"]
    assert events[-1]["kind"] == "created"
    assert events[-1]["evidence"]["weights"]["in_force"] == [33, 33, 33, 100]


def test_gateway_routing_honors_any_weight_and_warns_of_nothing(
    api: TestClient, database: Database
) -> None:
    api.post(
        "/v1/models",
        json=model_body(name="gw", routing_mode="gateway-api", gateway="llm/inference"),
    )
    for version in ("v1", "v2"):
        api.post("/v1/models/gw/versions", json=version_body(version=version))
    with database.session() as session:
        v1 = session.exec(
            select(ModelVersion).where(ModelVersion.version == "v1", ModelVersion.model_id > 0)
        ).all()
        for row in v1:
            row.status = VersionStatus.STABLE
            session.add(row)
        session.commit()
    response = api.post("/v1/models/gw/rollouts", json={"version": "v2"})
    assert response.status_code == 201, response.text
    assert response.json()["warnings"] == []


def test_an_analysis_step_can_set_how_each_metric_is_judged(api: TestClient, chat: str) -> None:
    step = {
        "kind": "analysis",
        "metrics": ["ttft", "error_rate"],
        "checks": {"ttft": {"margin": 0.2, "detect": 0.4}, "error_rate": {"detect": 0.02}},
    }
    strategy = {"steps": [{"kind": "set_weight", "weight": 50}, step]}
    ok = api.post("/v1/models/chat/rollouts", json={"version": "v2", "strategy": strategy})
    assert ok.status_code == 201, ok.text
    assert ok.json()["steps"][1]["checks"]["ttft"]["detect"] == 0.4
    api.post(f"/v1/rollouts/{ok.json()['id']}/abort")


@pytest.mark.parametrize(
    ("checks", "says"),
    [
        ({"e2e_latency": {"margin": 0.2}}, "does not judge"),
        ({"nope": {"margin": 0.2}}, "unknown metric"),
        ({"ttft": {"margin": 0.3, "detect": 0.2}}, "must be beyond the margin"),
        ({"ttft": {"power": 1.5}}, "power"),
    ],
)
def test_check_settings_that_cannot_work_are_refused(
    api: TestClient, chat: str, checks: dict[str, object], says: str
) -> None:
    step = {"kind": "analysis", "metrics": ["ttft"], "checks": checks}
    strategy = {"steps": [{"kind": "set_weight", "weight": 50}, step]}
    bad = api.post("/v1/models/chat/rollouts", json={"version": "v2", "strategy": strategy})
    assert bad.status_code in (400, 422), bad.text
    assert says in bad.text
