"""Valid request bodies with overrides: tests say only what matters to them."""

from __future__ import annotations

import itertools
from typing import Any

_seq = itertools.count(1)


def model_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": f"chat-{next(_seq)}",
        "namespace": "llm",
        "image": "vllm/vllm-openai:v0.11.0",
        "gpus_per_replica": 1,
        "replicas": 2,
        "port": 8000,
        "gpu_budget": 4,
    }
    body.update(overrides)
    return body


def version_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "version": f"v{next(_seq)}",
        "artifact_uri": "s3://models/chat/v1",
        "metadata": {"eval": {"mmlu": 0.61}, "training_run": "run-42"},
    }
    body.update(overrides)
    return body


BASE_MODEL = "meta-llama/Llama-3.1-8B-Instruct"


def pool_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": f"llama-{next(_seq)}",
        "namespace": "llm",
        "base_model": BASE_MODEL,
        "deployment": "llama-base",
        "inference_pool": "llama-base",
        "max_loras": 4,
        "max_lora_rank": 16,
    }
    body.update(overrides)
    return body


def adapter_model_body(pool: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"name": f"chat-{next(_seq)}", "base_pool": pool}
    body.update(overrides)
    return body


def adapter_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "version": f"v{next(_seq)}",
        "artifact_uri": "s3://adapters/chat/v1",
        "artifact_kind": "lora_adapter",
        "base_model": BASE_MODEL,
        "lora_rank": 8,
    }
    body.update(overrides)
    return body
