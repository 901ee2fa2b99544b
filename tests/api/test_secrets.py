"""Credentials in a model's or a version's env and args (from a security review: a viewer
read ``HF_TOKEN=hf_...`` in the model and in the audit trail).

Secret references (``{"secret": NAME, "key": KEY}``) become ``valueFrom.secretKeyRef`` in
the pod; plain values that are or look like credentials are still stored and rendered into
the pod, but no API response and no audit record shows them, to any role."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from controlplane import audit
from controlplane.db import Database
from controlplane.kube.render import Track, render_deployment, workload_for
from controlplane.models import AuditEvent, Model, ModelVersion, VersionStatus, utcnow
from controlplane.redaction import REDACTED
from tests.factories import model_body, version_body

# made-up credentials, each in a place the review (or the rule) names
HF = "hf_" + "Qm7" * 12  # looks like a Hugging Face token, under an ordinary name
NAMED = "plain-but-named-3f9c1a"  # an ordinary-looking value under a credential's name
OPENAI = "sk-proj-" + "Zk4" * 10
DB_PASSWORD = "pw-77e0b2d4"  # inside a URL
ARG_KEY = "vllm-api-key-c41d9e"  # after --api-key
VERSION_TOKEN = "ghp_" + "Ab1" * 12
META_KEY = "wandb-key-0a8f31"  # in version metadata, under api_key
URI_PASSWORD = "uri-pw-5e2b77"  # in an artifact URI
PATCHED = "sk-ant-api03-" + "Pp2" * 10  # set by a PATCH
SECRETS = [HF, NAMED, OPENAI, DB_PASSWORD, ARG_KEY, VERSION_TOKEN, META_KEY, URI_PASSWORD, PATCHED]

HF_REF = {"secret": "hf-token", "key": "token", "optional": False}


@pytest.fixture
def chat(api: TestClient, database: Database) -> str:
    """chat: every kind of credential a model and its versions can hold; v1 stable, a
    rollout of v2 started, a PATCH of the env."""
    created = api.post(
        "/v1/models",
        json=model_body(
            name="chat",
            args=["--model", "{artifact_uri}", "--api-key", ARG_KEY],
            env={
                "HF_TOKEN": {"secret": "hf-token", "key": "token"},
                "UPSTREAM_KEY_VALUE": HF,
                "WANDB_API_KEY": NAMED,
                "DATABASE_URL": f"postgres://app:{DB_PASSWORD}@db:5432/app",
                "HF_HOME": "/cache",
            },
            description="serves chat",
        ),
    )
    assert created.status_code == 201, created.text
    patched = api.patch(
        "/v1/models/chat",
        json={"env": {**created.json()["env"], "ANTHROPIC_API_KEY": PATCHED}},
    )
    assert patched.status_code == 200, patched.text
    for version, extra in (
        ("v1", {}),
        (
            "v2",
            {
                "artifact_uri": f"https://deploy:{URI_PASSWORD}@models.example.com/chat/v2",
                "env": {"GITHUB_TOKEN": VERSION_TOKEN, "LEVEL": "DEBUG"},
                "args": ["--model", "{artifact_uri}", f"--api-key={ARG_KEY}"],
                "metadata": {"wandb": {"run": "run-42", "api_key": META_KEY}},
            },
        ),
    ):
        registered = api.post(
            "/v1/models/chat/versions", json=version_body(version=version, **extra)
        )
        assert registered.status_code == 201, registered.text
    with database.session() as session:
        v1 = session.exec(select(ModelVersion).where(ModelVersion.version == "v1")).one()
        v1.status = VersionStatus.STABLE
        session.add(v1)
        session.commit()
    started = api.post("/v1/models/chat/rollouts", json={"version": "v2"})
    assert started.status_code == 201, started.text
    assert api.post(f"/v1/rollouts/{started.json()['id']}/pause").status_code == 202
    return "chat"


def _get_paths(api: TestClient, rollout_id: int) -> list[str]:
    """Every GET of the API, its path parameters filled in with chat's."""
    values = {
        "model": "chat",
        "version": "v2",
        "rollout_id": str(rollout_id),
        "pool": "none",
        "name": "none",
    }
    paths = []
    for path, operations in api.get("/openapi.json").json()["paths"].items():
        if "get" in operations:
            paths.append(re.sub(r"\{(\w+)\}", lambda m: values[m[1]], path))
    return paths


def _read_everything(client: TestClient, paths: list[str], role: str) -> dict[str, str]:
    bodies = {}
    for path in paths:
        response = client.get(path)
        readable = "none" not in path and (
            role == "admin" or not path.startswith(("/v1/tokens", "/v1/webhooks"))
        )
        assert response.status_code == (200 if readable else response.status_code), path
        bodies[path] = response.text
    # the audit trail filtered every way a reader can, and each page of it
    for query in ("?model=chat", "?action=model.created", "?action=model.updated", "?limit=1"):
        bodies[f"/v1/audit{query}"] = client.get(f"/v1/audit{query}").text
    return bodies


@pytest.mark.parametrize("role", ["viewer", "operator", "admin"])
def test_no_role_reads_a_credential_anywhere_in_the_api(
    api: TestClient, viewer: TestClient, operator: TestClient, chat: str, role: str
) -> None:
    client = {"viewer": viewer, "operator": operator, "admin": api}[role]
    rollout_id = api.get("/v1/models/chat/rollouts").json()["items"][0]["id"]
    paths = _get_paths(api, rollout_id)
    assert {"/v1/models", "/v1/models/chat", "/v1/models/chat/versions", "/v1/audit"} <= set(paths)
    assert f"/v1/rollouts/{rollout_id}/events" in paths
    bodies = _read_everything(client, paths, role)
    for path, body in bodies.items():
        for secret in SECRETS:
            assert secret not in body, f"{role} read a credential in GET {path}"

    # ...and what they read says that a value is set, and where references point
    model = client.get("/v1/models/chat").json()
    assert model["env"] == {
        "HF_TOKEN": HF_REF,
        "UPSTREAM_KEY_VALUE": REDACTED,
        "WANDB_API_KEY": REDACTED,
        "DATABASE_URL": f"postgres://app:{REDACTED}@db:5432/app",
        "HF_HOME": "/cache",
        "ANTHROPIC_API_KEY": REDACTED,
    }
    assert model["args"] == ["--model", "{artifact_uri}", "--api-key", REDACTED]
    v2 = client.get("/v1/models/chat/versions/v2").json()
    assert v2["env"] == {"GITHUB_TOKEN": REDACTED, "LEVEL": "DEBUG"}
    assert v2["args"] == ["--model", "{artifact_uri}", f"--api-key={REDACTED}"]
    assert v2["metadata"] == {"wandb": {"run": "run-42", "api_key": REDACTED}}
    assert v2["artifact_uri"] == f"https://deploy:{REDACTED}@models.example.com/chat/v2"
    listed = client.get("/v1/models/chat/versions").json()["items"]
    assert [v["env"] for v in listed if v["version"] == "v2"] == [v2["env"]]

    events = client.get("/v1/audit").json()["items"]
    trail = {(e["action"], e["version"]): e["details"] for e in events}
    assert trail["model.created", None]["env"]["HF_TOKEN"] == HF_REF
    assert trail["model.created", None]["env"]["WANDB_API_KEY"] == REDACTED
    assert trail["model.created", None]["env"]["HF_HOME"] == "/cache"
    assert trail["model.updated", None]["changes"]["env"]["ANTHROPIC_API_KEY"] == REDACTED
    assert trail["version.registered", "v2"]["artifact_uri"].startswith(
        "https://deploy:" + REDACTED
    )


def test_the_audit_trail_is_written_without_them(database: Database, chat: str) -> None:
    with database.session() as session:
        stored = [json.dumps(e.details) for e in session.exec(select(AuditEvent)).all()]
    assert any("model.created" for _ in stored)
    for details in stored:
        for secret in SECRETS:
            assert secret not in details


def test_the_pod_still_gets_every_value_and_the_secret_reference(
    database: Database, chat: str
) -> None:
    """Redaction is what the API shows, not what is deployed: the rendered Deployment of v2
    (what the reconciler applies) has the plain values as given and HF_TOKEN from its
    Secret."""
    with database.session() as session:
        model = session.exec(select(Model).where(Model.name == "chat")).one()
        v2 = session.exec(select(ModelVersion).where(ModelVersion.version == "v2")).one()
        deployment = render_deployment(workload_for(model, v2, track=Track.CANARY, replicas=1))
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env = {entry["name"]: entry for entry in container["env"]}
    assert env["HF_TOKEN"] == {
        "name": "HF_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": "hf-token", "key": "token", "optional": False}},
    }
    assert env["UPSTREAM_KEY_VALUE"]["value"] == HF
    assert env["WANDB_API_KEY"]["value"] == NAMED
    assert env["ANTHROPIC_API_KEY"]["value"] == PATCHED
    assert env["DATABASE_URL"]["value"] == f"postgres://app:{DB_PASSWORD}@db:5432/app"
    assert env["GITHUB_TOKEN"]["value"] == VERSION_TOKEN  # the version's, merged over
    assert env["LEVEL"]["value"] == "DEBUG"
    assert container["args"][-1] == f"--api-key={ARG_KEY}"


def test_a_get_sent_back_in_a_patch_keeps_the_credentials(
    api: TestClient, operator: TestClient, database: Database, chat: str
) -> None:
    shown = operator.get("/v1/models/chat").json()
    changed = {**shown["env"], "HF_HOME": "/models"}
    args = [*shown["args"], "--max-model-len", "8192"]
    response = operator.patch("/v1/models/chat", json={"env": changed, "args": args})
    assert response.status_code == 200, response.text
    assert response.json()["env"] == changed  # as shown: still redacted
    with database.session() as session:
        model = session.exec(select(Model).where(Model.name == "chat")).one()
    assert model.env["WANDB_API_KEY"] == NAMED
    assert model.env["UPSTREAM_KEY_VALUE"] == HF
    assert model.env["DATABASE_URL"] == f"postgres://app:{DB_PASSWORD}@db:5432/app"
    assert model.env["HF_TOKEN"] == {"secret": "hf-token", "key": "token", "optional": False}
    assert model.env["HF_HOME"] == "/models"
    assert model.args == ["--model", "{artifact_uri}", "--api-key", ARG_KEY, *args[4:]]

    # the placeholder where nothing was redacted is refused (400: it takes the stored
    # model to tell, as the other rules checked against the database)
    renamed = api.patch("/v1/models/chat", json={"env": {"NEW_TOKEN": REDACTED}})
    assert renamed.status_code == 400, renamed.text
    problem = renamed.json()
    assert problem["errors"][0]["field"] == "env.NEW_TOKEN"
    assert problem["errors"][0]["code"] == "redacted_placeholder"
    assert "placeholder" in problem["detail"]
    moved = api.patch("/v1/models/chat", json={"args": [REDACTED]})
    assert moved.status_code == 400
    assert moved.json()["errors"][0]["field"] == "args.0"
    with database.session() as session:
        model = session.exec(select(Model).where(Model.name == "chat")).one()
    assert model.env["WANDB_API_KEY"] == NAMED  # nothing changed by the refusals


def test_an_audit_record_written_before_the_rule_is_shown_redacted(
    viewer: TestClient, database: Database
) -> None:
    with database.session() as session:  # as an older release wrote model.created
        session.add(
            AuditEvent(
                at=utcnow(),
                actor="admin",
                action="model.created",
                model="old",
                details={"name": "old", "env": {"HF_TOKEN": NAMED, "X": HF}, "args": []},
            )
        )
        session.commit()
    [event] = viewer.get("/v1/audit", params={"model": "old"}).json()["items"]
    assert event["details"]["env"] == {"HF_TOKEN": REDACTED, "X": REDACTED}


def test_any_caller_of_the_audit_trail_writes_redacted(database: Database) -> None:
    with database.session() as session:
        event = audit.record(
            session,
            actor="admin",
            action="model.updated",
            at=utcnow(),
            details={"changes": {"env": {"OPENAI_API_KEY": OPENAI}}},
        )
        session.commit()
        assert event.details == {"changes": {"env": {"OPENAI_API_KEY": REDACTED}}}


def test_a_secret_reference_round_trips(api: TestClient) -> None:
    ref = {"secret": "llm.hf-token", "key": "HF_TOKEN.v2", "optional": True}
    created = api.post("/v1/models", json=model_body(name="ref", env={"HF_TOKEN": ref}))
    assert created.status_code == 201, created.text
    assert created.json()["env"] == {"HF_TOKEN": ref}
    registered = api.post(
        "/v1/models/ref/versions",
        json=version_body(env={"HF_TOKEN": {"secret": "other", "key": "token"}}),
    )
    assert registered.status_code == 201, registered.text
    assert registered.json()["env"] == {
        "HF_TOKEN": {"secret": "other", "key": "token", "optional": False}
    }


BAD_REFS: list[tuple[Any, str, str]] = [
    ({"secret": "HF_Token", "key": "token"}, "env.HF_TOKEN.secretKeyRef.secret", "secret name"),
    ({"secret": "-hf", "key": "token"}, "env.HF_TOKEN.secretKeyRef.secret", "secret name"),
    ({"secret": "a" * 254, "key": "token"}, "env.HF_TOKEN.secretKeyRef.secret", "253"),
    ({"secret": "hf-token", "key": "to/ken"}, "env.HF_TOKEN.secretKeyRef.key", "secret key"),
    ({"secret": "hf-token", "key": ".."}, "env.HF_TOKEN.secretKeyRef.key", "secret key"),
    ({"secret": "hf-token", "key": ""}, "env.HF_TOKEN.secretKeyRef.key", "secret key"),
    ({"secret": "hf-token"}, "env.HF_TOKEN.secretKeyRef.key", "required"),
    ({"key": "token"}, "env.HF_TOKEN.secretKeyRef.secret", "required"),
    (
        {"secret": "hf-token", "key": "token", "namespace": "x"},
        "env.HF_TOKEN.secretKeyRef.namespace",
        "unknown field",
    ),
    ({"secret": "hf-token", "key": "token", "optional": "maybe"}, "optional", "boolean"),
    (42, "env.HF_TOKEN", "an env value is a string"),
    (["hf-token", "token"], "env.HF_TOKEN", "an env value is a string"),
    (None, "env.HF_TOKEN", "an env value is a string"),
    (REDACTED, "env", "placeholder"),
    (f"prefix{REDACTED}", "env", "placeholder"),
]


@pytest.mark.parametrize(("value", "field", "message"), BAD_REFS)
def test_bad_env_values_are_422_naming_the_field(
    api: TestClient, value: Any, field: str, message: str
) -> None:
    for path, body in (
        ("/v1/models", model_body(env={"HF_TOKEN": value})),
        ("/v1/models/base/versions", version_body(env={"HF_TOKEN": value})),
        ("/v1/models/base", {"env": {"HF_TOKEN": value}}),
    ):
        if path != "/v1/models":
            api.post("/v1/models", json=model_body(name="base"))
        if path == "/v1/models/base" and value in (REDACTED, f"prefix{REDACTED}"):
            response = api.patch(path, json=body)  # a PATCH has nothing stored to keep here
            assert response.status_code == 400, response.text
            assert "placeholder" in response.json()["detail"]
            continue
        send = api.patch if path == "/v1/models/base" else api.post
        response = send(path, json=body)
        assert response.status_code == 422, (path, response.text)
        problem = response.json()
        assert any(field in issue["field"] for issue in problem["errors"]), problem
        assert message in problem["detail"], problem["detail"]
    assert api.get("/v1/models").json()["items"] == [api.get("/v1/models/base").json()]


def test_the_placeholder_is_refused_in_args_uris_and_metadata(api: TestClient) -> None:
    assert api.post("/v1/models", json=model_body(name="m", args=[REDACTED])).status_code == 422
    api.post("/v1/models", json=model_body(name="m"))
    for body in (
        version_body(args=["--api-key", REDACTED]),
        version_body(artifact_uri=f"https://u:{REDACTED}@h/x"),
        version_body(metadata={"wandb": {"api_key": REDACTED}}),
    ):
        response = api.post("/v1/models/m/versions", json=body)
        assert response.status_code == 422, response.text
        assert "placeholder" in response.json()["detail"]
