"""Drift: what the control plane owns (the route's weights, both Deployments' replicas) read
back and found changed by someone else. Pure: the facts and the observation in, the
differences out.

A difference counts as drift only when the field's last writer is another field manager
(`kubectl-patch`, `kubectl-edit`, an HPA, another controller): a difference the control
plane itself left (an apply cut short by a crash) is simply applied again, with no event.
The planner decides what to do with drift (restore, and pause when it comes back); this
module only finds it and says it in words a person can act on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from controlplane.rollout.planner import Facts, Observed


@dataclass(frozen=True)
class Drift:
    what: str  # "route weight", "stable replicas", "canary replicas"
    obj: str  # "HTTPRoute chat", "Deployment chat-v1"
    expected: int
    found: int
    manager: str

    def describe(self) -> str:
        unit = "%" if self.what == "route weight" else ""
        return (
            f"{self.obj} {self.what} {self.found}{unit} instead of {self.expected}{unit} "
            f"(changed by {self.manager})"
        )

    def evidence(self) -> dict[str, Any]:
        return {
            "what": self.what,
            "object": self.obj,
            "expected": self.expected,
            "found": self.found,
            "manager": self.manager,
        }


def drifts(facts: Facts, observed: Observed) -> list[Drift]:
    """Everything we own that someone else changed since we last applied it."""
    found: list[Drift] = []
    route = observed.route
    if route is not None and route.owner is not None and route.canary != facts.routed_weight:
        found.append(
            Drift("route weight", route.source, facts.routed_weight, route.canary, route.owner)
        )
    stable = observed.stable
    if (
        facts.has_stable
        and stable is not None
        and stable.exists
        and stable.replicas_owner is not None
        and stable.desired != facts.stable_replicas
    ):
        found.append(
            Drift(
                "stable replicas",
                f"Deployment {stable.name}",
                facts.stable_replicas,
                stable.desired,
                stable.replicas_owner,
            )
        )
    canary = observed.canary
    if (
        canary.exists
        and canary.replicas_owner is not None
        and canary.desired != facts.canary_replicas
    ):
        found.append(
            Drift(
                "canary replicas",
                f"Deployment {canary.name}",
                facts.canary_replicas,
                canary.desired,
                canary.replicas_owner,
            )
        )
    return found
