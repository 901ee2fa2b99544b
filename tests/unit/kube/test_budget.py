"""The replica arithmetic of a canary within a GPU budget."""

from __future__ import annotations

import itertools

import pytest

from controlplane.kube.budget import BudgetError, ReplicaPlan, plan_replicas


def test_surge_when_the_budget_has_room() -> None:
    plan = plan_replicas(weight=10, replicas=2, gpus_per_replica=1, gpu_budget=4)
    assert plan == ReplicaPlan(stable=2, canary=1, gpus=3)


def test_full_weight_moves_every_replica_to_the_canary() -> None:
    assert plan_replicas(weight=100, replicas=4, gpus_per_replica=2, gpu_budget=8) == ReplicaPlan(
        stable=0, canary=4, gpus=8
    )


def test_zero_weight_is_all_stable() -> None:
    assert plan_replicas(weight=0, replicas=3, gpus_per_replica=4, gpu_budget=12) == ReplicaPlan(
        stable=3, canary=0, gpus=12
    )


def test_stable_shrinks_when_there_is_no_room_to_surge() -> None:
    # 4 replicas x 2 GPUs = 8 of a 10-GPU budget: 1 spare replica slot
    plan = plan_replicas(weight=50, replicas=4, gpus_per_replica=2, gpu_budget=10)
    assert plan == ReplicaPlan(stable=3, canary=2, gpus=10)


def test_refuses_a_weight_the_budget_cannot_serve_and_says_by_how_much() -> None:
    with pytest.raises(BudgetError, match=r"1 canary \+ 2 stable replicas x 4 GPUs = 12 GPUs"):
        plan_replicas(weight=10, replicas=2, gpus_per_replica=4, gpu_budget=8)


def test_no_budget_means_surge_freely() -> None:
    assert plan_replicas(weight=25, replicas=8, gpus_per_replica=8, gpu_budget=None) == ReplicaPlan(
        stable=8, canary=2, gpus=80
    )


def test_cpu_models_ignore_the_budget() -> None:
    assert plan_replicas(weight=50, replicas=2, gpus_per_replica=0, gpu_budget=0).gpus == 0


@pytest.mark.parametrize("weight", [-1, 101])
def test_weight_out_of_range(weight: int) -> None:
    with pytest.raises(ValueError, match="between 0 and 100"):
        plan_replicas(weight=weight, replicas=1, gpus_per_replica=1, gpu_budget=None)


@pytest.mark.parametrize(
    ("weight", "replicas", "gpus", "budget"),
    list(
        itertools.product(
            [0, 1, 10, 25, 33, 50, 75, 99, 100],
            [1, 2, 3, 5, 8],
            [1, 2, 4, 8],
            [None, 8, 16, 24, 64],
        )
    ),
)
def test_invariants_hold_everywhere(
    weight: int, replicas: int, gpus: int, budget: int | None
) -> None:
    try:
        plan = plan_replicas(
            weight=weight, replicas=replicas, gpus_per_replica=gpus, gpu_budget=budget
        )
    except BudgetError:
        return
    if budget is not None:
        assert plan.gpus <= budget, "never over budget"
    assert plan.gpus == (plan.stable + plan.canary) * gpus
    assert plan.stable >= -(-replicas * (100 - weight) // 100), "stable keeps its share's capacity"
    assert plan.stable <= replicas
    assert (plan.canary > 0) == (weight > 0), "a canary exists exactly when it gets traffic"
    if weight == 100:
        assert plan.stable == 0
        assert plan.canary == replicas
