"""The simulator's LoRA serving: vLLM's runtime load and unload endpoints with their answers
and error shapes, /v1/models listing what is loaded, per-adapter knobs, and a restart that
forgets what was loaded at runtime."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from controlplane.simulate.server import ServerConfig, create_app

LORA = ServerConfig(
    model="llama",
    version="base",
    time_scale=0.0,
    seed=1,
    max_loras=2,
    adapter_profiles=json.dumps({"chat-v2": {"error_rate": 1.0}}),
)


def load(client: TestClient, name: str, path: str = "s3://adapters/x") -> tuple[int, str]:
    response = client.post("/v1/load_lora_adapter", json={"lora_name": name, "lora_path": path})
    return response.status_code, response.text


def listed(client: TestClient) -> dict[str, dict[str, object]]:
    return {m["id"]: m for m in client.get("/v1/models").json()["data"]}


def test_an_adapter_is_loaded_listed_served_and_unloaded() -> None:
    with TestClient(create_app(LORA)) as client:
        assert client.post("/v1/completions", json={"model": "chat-v1"}).status_code == 404
        status, text = load(client, "chat-v1", "s3://adapters/chat/v1")
        assert (status, text) == (200, "Success: LoRA adapter 'chat-v1' added successfully.")
        models = listed(client)
        assert models["chat-v1"]["parent"] == "llama"
        assert models["chat-v1"]["root"] == "s3://adapters/chat/v1"
        assert models["llama"]["parent"] is None
        answer = client.post("/v1/completions", json={"model": "chat-v1", "prompt": "hi"})
        assert answer.status_code == 200
        assert answer.json()["model"] == "chat-v1"
        gone = client.post("/v1/unload_lora_adapter", json={"lora_name": "chat-v1"})
        assert gone.text == "Success: LoRA adapter 'chat-v1' removed successfully."
        assert "chat-v1" not in listed(client)


def test_loading_twice_or_beyond_max_loras_is_a_400_and_unloading_an_unknown_one_a_404() -> None:
    with TestClient(create_app(LORA)) as client:
        assert load(client, "a")[0] == 200
        status, text = load(client, "a")
        assert status == 400
        assert "has already been loaded" in json.loads(text)["error"]["message"]
        assert load(client, "b")[0] == 200
        status, text = load(client, "c")
        assert status == 400
        assert "max_loras" in json.loads(text)["error"]["message"]
        missing = client.post("/v1/unload_lora_adapter", json={"lora_name": "zzz"})
        assert missing.status_code == 404
        assert missing.json()["error"]["message"] == "The lora adapter 'zzz' cannot be found."


def test_an_adapters_profile_applies_to_its_requests_only() -> None:
    with TestClient(create_app(LORA)) as client:
        load(client, "chat-v1")
        load(client, "chat-v2")
        assert client.post("/v1/completions", json={"model": "chat-v2"}).status_code == 500
        assert client.post("/v1/completions", json={"model": "chat-v1"}).status_code == 200
        changed = client.post("/sim/faults?adapter=chat-v1", json={"error_rate": 1.0})
        assert changed.json()["error_rate"] == 1.0
        assert client.post("/v1/completions", json={"model": "chat-v1"}).status_code == 500
        assert client.post("/v1/completions", json={"model": "llama"}).status_code == 200


def test_a_restart_forgets_the_adapters_loaded_at_runtime() -> None:
    with TestClient(create_app(LORA)) as client:
        load(client, "chat-v1")
        assert client.post("/sim/restart").json()["restarts"] == 1
        assert list(listed(client)) == ["llama"]
        assert client.post("/v1/completions", json={"model": "chat-v1"}).status_code == 404


def test_without_lora_the_runtime_endpoints_do_not_exist() -> None:
    with TestClient(create_app(ServerConfig(time_scale=0.0))) as client:
        assert load(client, "a")[0] == 404
        assert "vllm:lora_requests_info" not in client.get("/metrics").text


def test_the_lora_gauge_names_max_loras() -> None:
    with TestClient(create_app(LORA)) as client:
        load(client, "chat-v1")
        lines = [
            line
            for line in client.get("/metrics").text.splitlines()
            if line.startswith("vllm:lora_requests_info{")
        ]
        assert len(lines) == 1
        assert 'max_lora="2"' in lines[0]
        assert 'running_lora_adapters=""' in lines[0]


@pytest.mark.parametrize("bad", ["not json", "[]", '{"a": {"image": 1}}'])
def test_bad_adapter_profiles_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="adapter_profiles"):
        ServerConfig(adapter_profiles=bad)
