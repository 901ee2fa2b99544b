"""How many stable and canary replicas a traffic weight needs, within a GPU budget.

Pure arithmetic, unit-tested exhaustively. The canary gets enough replicas to carry its
share of the stable fleet's traffic (at least one as soon as it gets any); the stable
version keeps all its replicas while the budget has room for both, and otherwise shrinks
to make room, but never below what its own remaining share of traffic needs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


class BudgetError(ValueError):
    """The weight cannot be served within the GPU budget; the message says by how much."""


@dataclass(frozen=True)
class ReplicaPlan:
    stable: int
    canary: int
    gpus: int

    def share(self) -> int:
        """The canary's share of replicas in percent (the weight in force in replicas mode)."""
        total = self.stable + self.canary
        return round(100 * self.canary / total) if total else 0


def plan_replicas(
    *, weight: int, replicas: int, gpus_per_replica: int, gpu_budget: int | None
) -> ReplicaPlan:
    if not 0 <= weight <= 100:
        raise ValueError(f"weight must be between 0 and 100, not {weight}")
    if replicas < 1:
        raise ValueError(f"replicas must be at least 1, not {replicas}")
    canary = 0 if weight == 0 else max(1, math.ceil(replicas * weight / 100))
    stable_needed = math.ceil(replicas * (100 - weight) / 100)
    if gpus_per_replica == 0 or gpu_budget is None:
        stable = replicas if weight < 100 else 0
        return ReplicaPlan(stable, canary, (stable + canary) * gpus_per_replica)
    fits = gpu_budget // gpus_per_replica
    if canary + stable_needed > fits:
        raise BudgetError(
            f"weight {weight}% needs {canary} canary + {stable_needed} stable replicas "
            f"x {gpus_per_replica} GPUs = {(canary + stable_needed) * gpus_per_replica} GPUs, "
            f"over the model's gpu_budget of {gpu_budget}"
        )
    stable = replicas if weight < 100 else 0
    stable = min(stable, fits - canary)
    return ReplicaPlan(stable, canary, (stable + canary) * gpus_per_replica)


def replica_shares(
    weights: list[int], *, replicas: int, gpus_per_replica: int, gpu_budget: int | None
) -> tuple[list[int | None], list[int]]:
    """In replicas routing (one Service over both versions) the canary's share of traffic
    is its share of the replicas. Returns the share each weight would put in force (None
    when it does not fit the budget) and every share that can be put in force."""

    def share(weight: int) -> int | None:
        try:
            plan = plan_replicas(
                weight=weight,
                replicas=replicas,
                gpus_per_replica=gpus_per_replica,
                gpu_budget=gpu_budget,
            )
        except BudgetError:
            return None
        return 100 if weight == 100 else plan.share()

    possible = sorted({s for w in range(1, 101) if (s := share(w)) is not None})
    return [share(w) if 0 < w < 100 else w for w in weights], possible
