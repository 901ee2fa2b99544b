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
