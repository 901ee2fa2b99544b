"""The control plane's vLLM admin client (controlplane/kube/vllm.py) against simulated
vLLM servers (real processes) whose LoRA endpoints answer with vLLM's shapes: what counts
as done, and what is permanent."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from controlplane.kube.adapters import AdapterError
from controlplane.kube.vllm import VllmAdmin
from controlplane.simulate.process import running_servers
from controlplane.simulate.server import ServerConfig


@pytest.fixture(scope="module")
def urls() -> Iterator[dict[int, str]]:
    configs = [
        ServerConfig(model="llama", version=f"base-{n}", time_scale=0.0, max_loras=n)
        for n in (0, 1, 2)
    ]
    with running_servers(configs) as servers:
        yield {server.config.max_loras: server.url for server in servers}


@pytest.fixture
def vllm() -> Iterator[VllmAdmin]:
    admin = VllmAdmin()
    yield admin
    admin.close()


def test_loading_twice_is_done_and_unloading_what_is_gone_is_done(
    urls: dict[int, str], vllm: VllmAdmin
) -> None:
    url = urls[2]
    vllm.load(url, "chat-v1", "/adapters/chat/v1")
    vllm.load(url, "chat-v1", "/adapters/chat/v1")  # vLLM's 400 "already been loaded"
    assert vllm.adapters(url) == {"chat-v1"}
    vllm.unload(url, "chat-v1")
    vllm.unload(url, "chat-v1")  # vLLM's structured 404: not there any more
    assert vllm.adapters(url) == frozenset()


def test_a_full_server_refuses_for_good_with_vllms_words(
    urls: dict[int, str], vllm: VllmAdmin
) -> None:
    url = urls[1]
    vllm.load(url, "a", "/adapters/a")
    with pytest.raises(AdapterError) as refused:
        vllm.load(url, "b", "/adapters/b")
    assert refused.value.permanent
    assert "max_loras" in refused.value.message
    vllm.unload(url, "a")


def test_a_server_without_the_runtime_lora_api_says_what_to_turn_on(
    urls: dict[int, str], vllm: VllmAdmin
) -> None:
    url = urls[0]  # LoRA off: no runtime routes, FastAPI's bare 404
    with pytest.raises(AdapterError) as load:
        vllm.load(url, "a", "/adapters/a")
    with pytest.raises(AdapterError) as unload:
        vllm.unload(url, "a")
    for refused in (load.value, unload.value):
        assert refused.permanent
        assert "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True" in refused.message
