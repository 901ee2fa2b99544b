"""The simulated inference server: OpenAI-shaped answers, vLLM's metric names and buckets,
and knobs that show up in the metrics exactly as configured."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from controlplane.simulate.__main__ import build_parser, serve_config
from controlplane.simulate.metrics import (
    INTER_TOKEN_BUCKETS,
    REQUEST_LATENCY_BUCKETS,
    TTFT_BUCKETS,
)
from controlplane.simulate.server import ServerConfig, create_app

FAST = ServerConfig(model="chat", version="v2", time_scale=0.0, seed=1)


def serve(config: ServerConfig = FAST) -> TestClient:
    return TestClient(create_app(config))


@pytest.fixture
def server() -> Iterator[TestClient]:
    with serve() as client:
        yield client


def metrics(client: TestClient) -> dict[str, float]:
    """Every sample of /metrics by its full name and labels."""
    response = client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for line in response.text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def bucket(name: str, le: str) -> str:
    return f'{name}_bucket{{engine="0",le="{le}",model_name="chat"}}'


TTFT = "vllm:time_to_first_token_seconds"


def test_a_completion_answers_with_text_usage_and_the_version(server: TestClient) -> None:
    response = server.post("/v1/completions", json={"model": "chat", "prompt": "Hello there"})
    assert response.status_code == 200
    assert response.headers["x-simulator-version"] == "v2"
    body = response.json()
    assert body["object"] == "text_completion"
    assert body["model"] == "chat"
    assert body["choices"][0]["finish_reason"] == "stop"
    assert len(body["choices"][0]["text"].split()) == 16
    assert body["usage"] == {"prompt_tokens": 2, "completion_tokens": 16, "total_tokens": 18}


def test_a_chat_completion_answers_as_the_assistant(server: TestClient) -> None:
    response = server.post(
        "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": 4},
    )
    choice = response.json()["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert choice["finish_reason"] == "length"
    assert response.json()["usage"]["completion_tokens"] == 4


def test_a_streamed_completion_sends_one_event_per_token_then_done(server: TestClient) -> None:
    with server.stream(
        "POST", "/v1/completions", json={"prompt": "hi", "max_tokens": 3, "stream": True}
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert "".join(c["choices"][0]["text"] for c in chunks[:3]) == "the model answers"
    assert chunks[2]["choices"][0]["finish_reason"] == "length"
    assert chunks[3]["usage"]["completion_tokens"] == 3
    assert metrics(server)[f'{TTFT}_count{{engine="0",model_name="chat"}}'] == 1


def test_models_and_health(server: TestClient) -> None:
    assert server.get("/v1/models").json()["data"][0]["id"] == "chat"
    assert server.get("/health").json() == {"status": "ok", "model": "chat", "version": "v2"}


def test_metrics_use_vllm_names_and_bucket_boundaries(server: TestClient) -> None:
    samples = metrics(server)
    for name, bounds in (
        (TTFT, TTFT_BUCKETS),
        ("vllm:inter_token_latency_seconds", INTER_TOKEN_BUCKETS),
        ("vllm:e2e_request_latency_seconds", REQUEST_LATENCY_BUCKETS),
    ):
        les = [repr(b) for b in bounds] + ["+Inf"]
        assert all(bucket(name, le) in samples for le in les), name
    assert TTFT_BUCKETS[:3] == (0.001, 0.005, 0.01)
    assert TTFT_BUCKETS[-1] == 2560.0
    assert REQUEST_LATENCY_BUCKETS[0] == 0.3
    for reason in ("stop", "length", "abort"):
        key = (
            f'vllm:request_success_total{{model_name="chat",engine="0",finished_reason="{reason}"}}'
        )
        assert samples[key] == 0
    assert samples['vllm:num_requests_running{model_name="chat",engine="0"}'] == 0
    assert samples['vllm:generation_tokens_total{model_name="chat",engine="0"}'] == 0


def test_latencies_are_recorded_as_configured_while_the_sleep_is_scaled() -> None:
    config = ServerConfig(
        ttft_median=4.0, ttft_spread=0.0, latency_offset=1.0, itl_median=0.5, itl_spread=0.0,
        output_tokens=5, time_scale=0.001,
    )  # fmt: skip
    with serve(config) as client:
        started = time.monotonic()
        for _ in range(3):
            assert client.post("/v1/completions", json={"prompt": "x"}).status_code == 200
        elapsed = time.monotonic() - started
        samples = metrics(client)
    labels = '{engine="0",model_name="chat"}'
    assert samples[bucket(TTFT, "2.5")] == 0
    assert samples[bucket(TTFT, "5.0")] == 3  # 4 s median + 1 s offset, no spread
    assert samples[f"{TTFT}_sum{labels}"] == pytest.approx(15.0)
    assert samples[f"vllm:inter_token_latency_seconds_count{labels}"] == 12  # 4 gaps each
    assert samples[f"vllm:e2e_request_latency_seconds_sum{labels}"] == pytest.approx(21.0)
    assert samples['vllm:generation_tokens_total{model_name="chat",engine="0"}'] == 15
    assert elapsed < 21.0  # it did not sleep the 21 s it recorded


def test_the_error_rate_answers_500_and_counts_them_as_5xx() -> None:
    with serve(ServerConfig(error_rate=1.0, time_scale=0.0)) as client:
        response = client.post("/v1/completions", json={"prompt": "x"})
        assert response.status_code == 500
        assert response.json()["error"]["type"] == "InternalServerError"
        samples = metrics(client)
    http = 'http_requests_total{handler="/v1/completions",method="POST",status="%s"}'
    assert samples[http % "5xx"] == 1
    assert samples[http % "2xx"] == 0
    assert samples[f'{TTFT}_count{{engine="0",model_name="chat"}}'] == 0  # vLLM: no token


def test_http_requests_count_inference_and_client_errors_but_not_probes(
    server: TestClient,
) -> None:
    server.post("/v1/completions", json={"prompt": "x"})
    server.post("/v1/completions", json={"model": "other", "prompt": "x"})  # 404
    server.post("/v1/chat/completions", json={"messages": []})  # 422
    server.get("/v1/models")
    server.get("/health")
    server.get("/nope")
    samples = metrics(server)
    counted = {k: v for k, v in samples.items() if k.startswith("http_requests_total") and v}
    assert counted == {
        'http_requests_total{handler="/v1/completions",method="POST",status="2xx"}': 1,
        'http_requests_total{handler="/v1/completions",method="POST",status="4xx"}': 1,
        'http_requests_total{handler="/v1/chat/completions",method="POST",status="4xx"}': 1,
        'http_requests_total{handler="/v1/models",method="GET",status="2xx"}': 1,
        'http_requests_total{handler="none",method="GET",status="4xx"}': 1,
    }


def test_the_same_seed_gives_the_same_latencies() -> None:
    def ttft_sum(seed: int) -> float:
        with serve(ServerConfig(seed=seed, time_scale=0.0)) as client:
            for _ in range(5):
                client.post("/v1/completions", json={"prompt": "x"})
            return metrics(client)[f'{TTFT}_sum{{engine="0",model_name="chat"}}']

    assert ttft_sum(3) == ttft_sum(3)
    assert ttft_sum(3) != ttft_sum(4)


def test_settings_come_from_the_environment_and_flags_win() -> None:
    env = {"CONTROLPLANE_SIM_TTFT_MEDIAN": "0.5", "CONTROLPLANE_SIM_VERSION": "v7"}
    config = ServerConfig.from_env(env, version="v8", error_rate=None)
    assert (config.ttft_median, config.version, config.error_rate) == (0.5, "v8", 0.0)
    assert ServerConfig.from_env({}, **{"seed": 3}).seed == 3


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"CONTROLPLANE_SIM_ERROR_RATE": "1.5"}, "error_rate must be between 0 and 1"),
        ({"CONTROLPLANE_SIM_TTFT_MEDIAN": "0"}, "ttft_median must be positive"),
        ({"CONTROLPLANE_SIM_TIME_SCALE": "fast"}, "is not a number"),
    ],
)
def test_bad_settings_are_refused_with_the_reason(env: dict[str, str], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        ServerConfig.from_env(env)


def test_settings_round_trip_through_the_command_line_flags() -> None:
    config = ServerConfig(version="v3", latency_offset=0.3, error_rate=0.25, seed=9)
    args = build_parser().parse_args(["serve", "--port", "9000", *config.to_args()])
    assert serve_config(args, environ={}) == config
    env = {"CONTROLPLANE_SIM_LATENCY_OFFSET": "2"}
    assert serve_config(build_parser().parse_args(["serve"]), env).latency_offset == 2.0
