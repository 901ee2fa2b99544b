"""A base pool's state as the engine reads it: which pods an adapter must be on before it
takes traffic."""

from __future__ import annotations

from controlplane.kube.adapters import PoolPod, PoolState


def pod(name: str, adapters: set[str] | None, **facts: bool) -> PoolPod:
    values = {"serving": True, "ready": True, "gated": True, "gate_open": True} | facts
    return PoolPod(
        name=name,
        url=f"http://{name}:8000",
        adapters=None if adapters is None else frozenset(adapters),
        **values,
    )


def test_an_adapter_is_ready_only_on_every_serving_pod() -> None:
    state = PoolState("llama", "llm", (pod("a", {"chat-v2"}), pod("b", set())))
    assert state.version_state("chat-v2").ready == 0
    assert "missing on b" in state.version_state("chat-v2").note
    state = PoolState("llama", "llm", (pod("a", {"chat-v2"}), pod("b", {"chat-v2"})))
    assert state.version_state("chat-v2").ready == 1


def test_a_gated_pod_that_cannot_be_read_and_takes_no_traffic_holds_no_one_up() -> None:
    unreadable_closed = pod("b", None, gate_open=False, ready=False)
    state = PoolState("llama", "llm", (pod("a", {"chat-v2"}), unreadable_closed))
    assert [p.name for p in state.serving] == ["a"]
    assert state.version_state("chat-v2").ready == 1


def test_a_pod_that_may_take_traffic_still_counts_when_it_cannot_be_read() -> None:
    for unreadable in (pod("b", None), pod("b", None, gated=False, gate_open=False)):
        state = PoolState("llama", "llm", (pod("a", {"chat-v2"}), unreadable))
        assert [p.name for p in state.serving] == ["a", "b"]
        assert state.version_state("chat-v2").ready == 0
