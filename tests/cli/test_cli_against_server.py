"""The CLI and raw HTTP against a real `controlplane serve` process (SQLite and PostgreSQL).

This is what a user does on day one: start the server with an admin token, create a model,
register versions, list them, and see clear errors for duplicates and missing rights.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from alembic.script import ScriptDirectory

from controlplane import db
from controlplane.db import Database
from controlplane.models import VersionStatus, utcnow
from tests.support.postgres import free_port
from tests.support.serve import ADMIN, CLI, Server, serve
from tests.ui import live


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[Server]:
    with serve(database_url, tmp_path / "server.log") as running:
        yield running


def test_day_one_through_the_cli(server: Server) -> None:
    created = server.cli(
        "models",
        "create",
        "chat",
        "--namespace",
        "llm",
        "--image",
        "vllm/vllm-openai:v0.11.0",
        "--replicas",
        "2",
        "--gpu-budget",
        "4",
    )
    assert created.returncode == 0, created.stderr
    assert "model chat created" in created.stdout

    for version in ("v1", "v2"):
        registered = server.cli(
            "versions",
            "register",
            "chat",
            version,
            "--artifact-uri",
            f"s3://models/chat/{version}",
            "--metadata",
            '{"eval": {"mmlu": 0.61}}',
            "--label",
            "team=nlp",
        )
        assert registered.returncode == 0, registered.stderr

    listed = server.cli("versions", "list", "chat")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.strip().splitlines()
    assert lines[0].split()[:2] == ["VERSION", "STATUS"]
    assert [line.split()[0] for line in lines[1:]] == ["v2", "v1"]

    as_json = json.loads(server.cli("versions", "list", "chat", "-o", "json").stdout)
    assert [v["version"] for v in as_json] == ["v2", "v1"]
    assert as_json[0]["metadata"] == {"eval": {"mmlu": 0.61}}

    shown = json.loads(server.cli("versions", "show", "chat", "v1", "-o", "json").stdout)
    assert shown["status"] == "registered"
    assert shown["labels"] == {"team": "nlp"}

    duplicate = server.cli("versions", "register", "chat", "v1", "--artifact-uri", "s3://x/y")
    assert duplicate.returncode != 0
    assert "already registered" in duplicate.stderr

    anonymous = server.cli("versions", "list", "chat", token=None)
    assert anonymous.returncode != 0
    assert "missing bearer token" in anonymous.stderr

    token = json.loads(
        server.cli("tokens", "create", "ci-viewer", "--role", "viewer", "-o", "json").stdout
    )["token"]
    assert server.cli("versions", "list", "chat", token=token).returncode == 0
    refused = server.cli(
        "versions", "register", "chat", "v3", "--artifact-uri", "s3://x/y", token=token
    )
    assert refused.returncode != 0
    assert "needs 'operator'" in refused.stderr

    tokens = server.cli("tokens", "list")
    assert "ci-viewer" in tokens.stdout
    assert token not in tokens.stdout
    assert server.cli("tokens", "revoke", "ci-viewer").returncode == 0
    assert server.cli("models", "list", token=token).returncode != 0

    audit = server.cli("audit", "list", "--model", "chat", "-o", "json")
    assert [e["action"] for e in json.loads(audit.stdout)] == [
        "version.registered",
        "version.registered",
        "model.created",
    ]
    assert ADMIN not in server.log.read_text()
    assert token not in server.log.read_text()


def test_a_hugging_face_token_from_a_secret_and_credentials_never_printed(
    server: Server, database_url: str
) -> None:
    """--env HF_TOKEN=secret:hf-token/token references the Secret; a credential given as a
    plain value is deployed but never printed (to any role), nor logged by the server."""
    plain = "hf_" + "Cl1" * 12
    named = "plain-but-named-cli-7d1e"
    created = server.cli(
        "models",
        "create",
        "chat",
        "--image",
        "vllm/vllm-openai:v0.11.0",
        "--env",
        "HF_TOKEN=secret:hf-token/token",
        "--env",
        f"MIRROR={plain}",
        "--env",
        f"WANDB_API_KEY={named}",
        "--arg=--api-key",
        f"--arg={named}",
    )
    assert created.returncode == 0, created.stderr
    assert '"HF_TOKEN": {"secret": "hf-token", "key": "token", "optional": false}' in (
        created.stdout
    )
    assert '"MIRROR": "***redacted***"' in created.stdout
    assert '["--api-key", "***redacted***"]' in created.stdout
    bad = server.cli("models", "create", "x", "--image", "i:1", "--env", "A=secret:hf-token")
    assert bad.returncode == 2
    assert "A=secret:NAME/KEY" in bad.stderr
    refused = server.cli(
        "models", "create", "y", "--image", "i:1", "--env", "A=secret:HF_Token/token"
    )
    assert refused.returncode == 1
    assert "secret name 'HF_Token' is not a valid Kubernetes name" in refused.stderr

    # a change through the CLI sends back what it was shown: the credentials are kept
    updated = server.cli(
        "models",
        "update",
        "chat",
        "--env",
        "HF_TOKEN=secret:hf-token/token",
        "--env",
        "MIRROR=***redacted***",
        "--env",
        "WANDB_API_KEY=***redacted***",
        "--env",
        "HF_HOME=/cache",
    )
    assert updated.returncode == 0, updated.stderr
    database = Database(database_url, pool_size=1)
    try:
        with database.session() as session:
            from controlplane.models import Model

            model = session.get(Model, 1)
            assert model is not None
            assert model.env == {
                "HF_TOKEN": {"secret": "hf-token", "key": "token", "optional": False},
                "MIRROR": plain,
                "WANDB_API_KEY": named,
                "HF_HOME": "/cache",
            }
    finally:
        database.dispose()

    viewer = json.loads(
        server.cli("tokens", "create", "reader", "--role", "viewer", "-o", "json").stdout
    )["token"]
    printed = [
        server.cli(*command, token=token)
        for token in (viewer, ADMIN)
        for command in (
            ("models", "show", "chat"),
            ("models", "show", "chat", "-o", "json"),
            ("models", "list", "-o", "json"),
            ("audit", "list", "-o", "json"),
        )
    ]
    assert all(result.returncode == 0 for result in printed), [r.stderr for r in printed]
    for text in [created.stdout, updated.stdout, *(r.stdout + r.stderr for r in printed)]:
        assert plain not in text
        assert named not in text
    log = server.log.read_text()
    assert plain not in log
    assert named not in log


def test_a_base_pool_and_an_adapter_model_through_the_cli(server: Server) -> None:
    created = server.cli(
        "pools",
        "create",
        "llama",
        "--base-model",
        "meta-llama/Llama-3.1-8B-Instruct",
        "--deployment",
        "llama-base",
        "--max-loras",
        "4",
        "--namespace",
        "llm",
    )
    assert created.returncode == 0, created.stderr
    assert "base pool llama created" in created.stdout
    listed = server.cli("pools", "list")
    assert listed.stdout.splitlines()[1].split()[:3] == [
        "llama",
        "llm",
        "meta-llama/Llama-3.1-8B-Instruct",
    ]
    shown = server.cli("pools", "show", "llama")
    assert "adapters: not read yet" in shown.stdout

    both = server.cli("models", "create", "chat", "--image", "x/y:1", "--base-pool", "llama")
    assert both.returncode == 2
    assert "exclude each other" in both.stderr
    neither = server.cli("models", "create", "chat")
    assert neither.returncode == 2
    assert "--image is required" in neither.stderr
    model = server.cli(
        "models", "create", "chat", "--base-pool", "llama", "--namespace", "llm", "-o", "json"
    )
    assert model.returncode == 0, model.stderr
    assert json.loads(model.stdout)["routing_mode"] == "model-rewrite"

    too_big = server.cli(
        "versions",
        "register",
        "chat",
        "v1",
        "--artifact-uri",
        "s3://adapters/chat/v1",
        "--kind",
        "lora_adapter",
        "--base-model",
        "meta-llama/Llama-3.1-8B-Instruct",
        "--lora-rank",
        "64",
    )
    assert too_big.returncode == 1
    assert "lora_rank 64 is over" in too_big.stderr
    registered = server.cli(
        "versions",
        "register",
        "chat",
        "v1",
        "--artifact-uri",
        "s3://adapters/chat/v1",
        "--kind",
        "lora_adapter",
        "--base-model",
        "meta-llama/Llama-3.1-8B-Instruct",
        "--lora-rank",
        "8",
        "-o",
        "json",
    )
    assert registered.returncode == 0, registered.stderr
    assert json.loads(registered.stdout)["lora_rank"] == 8

    pooled = server.cli(
        "models",
        "create",
        "embed",
        "--image",
        "vllm/vllm-openai:v0.11.0",
        "--routing",
        "inference-pool",
        "--gateway",
        "infra/gw",
        "--endpoint-picker",
        '{"service_account": "epp"}',
        "-o",
        "json",
    )
    assert pooled.returncode == 0, pooled.stderr
    assert json.loads(pooled.stdout)["endpoint_picker"]["service_account"] == "epp"

    in_use = server.cli("pools", "delete", "llama")
    assert in_use.returncode == 1
    assert "chat" in in_use.stderr
    assert server.cli("models", "delete", "chat").returncode == 0
    assert server.cli("pools", "delete", "llama").returncode == 0


def test_eval_suites_and_measured_scores_through_the_cli(server: Server, tmp_path: Path) -> None:
    from controlplane.evals import starter_path

    created = server.cli("evals", "create", "starter", "--file", str(starter_path("general")))
    assert created.returncode == 0, created.stderr
    assert "eval suite starter version 1" in created.stdout
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "prompt": "2+2?", "scorer": "number", "expected": "four"}\n')
    refused = server.cli("evals", "create", "starter", "--file", str(bad))
    assert refused.returncode == 1
    assert "number" in refused.stderr
    listed = server.cli("evals", "list")
    assert listed.stdout.splitlines()[1].split()[:3] == ["starter", "1", "300"]
    shown = server.cli("evals", "show", "starter", "--items")
    assert "gen-arith-001" in shown.stdout

    assert server.cli("models", "create", "chat", "--image", "x/y:1").returncode == 0
    registered = server.cli("versions", "register", "chat", "v1", "--artifact-uri", "s3://m/v1")
    assert registered.returncode == 0, registered.stderr
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"results": {"mmlu": {"acc,none": 0.62}}}))
    imported = server.cli("versions", "import-evals", "chat", "v1", "--file", str(results))
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.splitlines()[1].split()[:3] == ["mmlu", "0.62", "lm-eval-harness"]


def test_day_one_over_raw_http(server: Server) -> None:
    admin = {"Authorization": f"Bearer {ADMIN}"}
    with httpx.Client(base_url=server.url, timeout=10) as http:
        model = http.post(
            "/v1/models",
            headers=admin,
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
        assert model.status_code == 201
        version = http.post(
            "/v1/models/chat/versions",
            headers=admin,
            json={
                "version": "v1",
                "artifact_uri": "s3://models/chat/v1",
                "metadata": {"eval": {"mmlu": 0.61}},
            },
        )
        assert version.status_code == 201
        assert {"version", "status"} <= set(version.json())
        assert http.get("/v1/models/chat/versions", headers=admin).status_code == 200
        token = http.post("/v1/tokens", headers=admin, json={"name": "ci-viewer", "role": "viewer"})
        assert token.status_code == 201
        assert "token" in token.json()
        assert http.get("/v1/models/chat/versions").status_code == 401
        viewer = {"Authorization": f"Bearer {token.json()['token']}"}
        forbidden = http.post(
            "/v1/models/chat/versions",
            headers=viewer,
            json={"version": "v2", "artifact_uri": "s3://models/chat/v2"},
        )
        assert forbidden.status_code == 403
        assert forbidden.headers["content-type"] == "application/problem+json"


def test_cli_reports_an_unreachable_server() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTROLPLANE_")}
    result = subprocess.run(
        [*CLI, "models", "list", "--url", f"http://127.0.0.1:{free_port()}", "--token", "x"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 3
    assert "cannot reach the control plane" in result.stderr


def test_serve_refuses_to_start_without_an_admin_token(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTROLPLANE_")}
    env["CONTROLPLANE_DATABASE_URL"] = f"sqlite:///{tmp_path / 'x.db'}"
    result = subprocess.run(
        [*CLI, "serve", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "CONTROLPLANE_ADMIN_TOKEN is not set" in result.stderr
    assert "CONTROLPLANE_DEV_MODE" in result.stderr
    assert not (tmp_path / "x.db").exists()


def test_db_upgrade_command_migrates_without_an_admin_token(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTROLPLANE_")}
    env["CONTROLPLANE_DATABASE_URL"] = f"sqlite:///{tmp_path / 'x.db'}"
    upgraded = subprocess.run(
        [*CLI, "db", "upgrade"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert upgraded.returncode == 0, upgraded.stderr
    current = subprocess.run(
        [*CLI, "db", "current"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    head = ScriptDirectory.from_config(db.alembic_config("sqlite://")).get_current_head()
    assert current.stdout.strip() == head


def test_rollout_commands_through_the_cli(server: Server) -> None:
    server.cli("models", "create", "chat", "--image", "vllm/vllm-openai:v0.11.0")
    for version in ("v1", "v2"):
        server.cli("versions", "register", "chat", version, "--artifact-uri", f"s3://m/{version}")
    started = server.cli("rollout", "start", "chat", "v1", "-o", "json")
    assert started.returncode == 0, started.stderr
    rollout = json.loads(started.stdout)
    assert rollout["phase"] == "pending"
    rid = str(rollout["id"])

    second = server.cli("rollout", "start", "chat", "v2")
    assert second.returncode != 0
    assert f"#{rid}" in second.stderr
    assert "already has a live rollout" in second.stderr

    status = server.cli("rollout", "status", rid)
    assert "phase:" in status.stdout
    assert "pending" in status.stdout
    watched = server.cli("rollout", "status", rid, "--watch", "--timeout", "0")
    assert f"== rollout {rid} chat - -> v1: pending" in watched.stdout

    paused = server.cli("rollout", "pause", rid, "--reason", "change freeze")
    assert paused.returncode == 0, paused.stderr
    assert "requested pause" in paused.stdout
    resumed = server.cli("rollout", "resume", rid)
    assert resumed.returncode != 0
    assert "cannot resume" in resumed.stderr

    history = server.cli("rollout", "history", "chat")
    assert history.stdout.splitlines()[0].split()[:3] == ["ID", "VERSION", "FROM"]
    events = server.cli("rollout", "events", rid, "-o", "json")
    assert [e["kind"] for e in json.loads(events.stdout)] == ["created", "command"]
    assert server.cli("rollout", "abort", rid, "--reason", "test").returncode == 0


def test_rollout_status_shows_the_evidence_so_far_at_an_analysis_step(
    server: Server, database_url: str
) -> None:
    server.cli("models", "create", "chat", "--image", "vllm/vllm-openai:v0.11.0")
    for version in ("v1", "v2"):
        server.cli("versions", "register", "chat", version, "--artifact-uri", f"s3://m/{version}")
    now = utcnow()
    database = Database(database_url, pool_size=1)
    try:
        live.set_status(database, "chat", "v1", VersionStatus.STABLE)
        analysing = live.at_analysis(
            database,
            model="chat",
            version="v2",
            plan=live.strategy(),
            started=now - timedelta(seconds=140),
            step_started_at=now - timedelta(seconds=130),
        )
        for ago, requests in ((70, 300), (10, 600)):
            at = now - timedelta(seconds=ago)
            look = live.sequential_look(at, elapsed=130 - ago, canary_requests=requests)
            live.add_look(database, analysing.rollout_id, at, look)
        live.record(
            database,
            analysing.rollout_id,
            now - timedelta(seconds=40),
            kind="drift",
            message="drift: Deployment chat-v1 stable replicas 0 instead of 2 (changed by "
            "kubectl-scale): restored",
        )
    finally:
        database.dispose()
    _, _, metrics = look
    ttft = next(m for m in metrics if m["metric"] == "ttft")
    assert ttft["verdict"] == "inconclusive"
    assert ttft["needed"] > 0
    rid = str(analysing.rollout_id)

    status = server.cli("rollout", "status", rid)
    assert status.returncode == 0, status.stderr
    text = status.stdout
    assert "phase:" in text, "the rollout's fields come first, as before"
    assert re.search(
        r"analysis, step 1 \(sequential judge, every 60s\): look 2 of at least 5, "
        r"2m\d\ds of at most 1h00m",
        text,
    ), text
    line = next(" ".join(ln.split()) for ln in text.splitlines() if ln.startswith("  ttft"))
    interval = f"{ttft['effect']:+.1%} [{ttft['effect_lower']:+.1%}, {ttft['effect_upper']:+.1%}]"
    assert line.startswith(f"ttft p95 inconclusive {interval} margin 10% n=600/1800 pods 1/2")
    assert f"needs ~{math.ceil(ttft['needed'])} more canary requests" in line
    assert "error_rate" in text
    assert "cluster:" in text, "what the world did to the rollout lately"
    assert "drift  drift: Deployment chat-v1 stable replicas 0 instead of 2" in text

    shown = json.loads(server.cli("rollout", "status", rid, "-o", "json").stdout)
    assert shown["phase"] == "progressing"
    so_far = shown["analysis"]
    assert (so_far["looks"], so_far["count"], so_far["judge"]) == (2, 5, "sequential")
    assert so_far["max_duration_seconds"] == 3600
    assert so_far["latest"]["metrics"] == metrics
    assert [e["kind"] for e in shown["cluster_events"]] == ["drift"]

    assert server.cli("rollout", "abort", rid).returncode == 0
    # the abort is only requested (no reconciler runs here): still live, still shown
    assert "analysis" in json.loads(server.cli("rollout", "status", rid, "-o", "json").stdout)
