"""Strategy steps, in the vocabulary users know from Argo Rollouts.

``set_weight`` sends a share of traffic to the canary, ``pause`` waits (for a duration, or
until a person promotes), ``analysis`` measures the canary against stable on a schedule and
judges it. These are validated on the way in: a strategy that cannot run is a 4xx when the
rollout is requested, not a failure half-way through.
"""

from __future__ import annotations

import itertools
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Step(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SetWeight(_Step):
    kind: Literal["set_weight"] = "set_weight"
    weight: int = Field(ge=0, le=100, description="Percent of traffic to the canary.")


class Pause(_Step):
    kind: Literal["pause"] = "pause"
    duration_seconds: int | None = Field(
        default=None,
        ge=1,
        le=7 * 24 * 3600,
        description="Wait this long; without it, wait until a person promotes.",
    )


class Analysis(_Step):
    """Measure ``count`` times, ``interval_seconds`` apart; the limits follow Argo's
    AnalysisRun semantics: more than ``failure_limit`` failed measurements fail the
    rollout, more than ``inconclusive_limit`` inconclusive ones pause it for a person,
    more than ``consecutive_error_limit`` errors in a row (metrics unavailable) fail it."""

    kind: Literal["analysis"] = "analysis"
    metrics: tuple[str, ...] | None = Field(
        default=None, description="Metric names to judge; the model's defaults when omitted."
    )
    interval_seconds: int = Field(default=60, ge=1, le=3600)
    count: int = Field(default=5, ge=1, le=1000)
    failure_limit: int = Field(default=0, ge=0)
    inconclusive_limit: int = Field(default=2, ge=0)
    consecutive_error_limit: int = Field(default=4, ge=0)

    @model_validator(mode="after")
    def _limits_below_count(self) -> Analysis:
        if self.failure_limit >= self.count:
            raise ValueError(
                f"failure_limit {self.failure_limit} must be below count {self.count}, "
                "or the analysis could never fail"
            )
        return self


Step = Annotated[SetWeight | Pause | Analysis, Field(discriminator="kind")]


class Strategy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    steps: tuple[Step, ...] = Field(min_length=1, max_length=100)

    @model_validator(mode="after")
    def _weights_only_grow(self) -> Strategy:
        weights = [s.weight for s in self.steps if isinstance(s, SetWeight)]
        if any(later < earlier for earlier, later in itertools.pairwise(weights)):
            raise ValueError(
                f"set_weight steps must not decrease ({weights}): a canary that should get "
                "less traffic should be aborted or rolled back instead"
            )
        return self


def default_strategy() -> Strategy:
    """10% -> analysis -> 25% -> analysis -> 50% -> analysis -> 100% (then promote)."""
    return Strategy(
        steps=(
            SetWeight(weight=10),
            Analysis(),
            SetWeight(weight=25),
            Analysis(),
            SetWeight(weight=50),
            Analysis(),
            SetWeight(weight=100),
        )
    )


def first_deploy_strategy() -> Strategy:
    """The first version of a model has nothing to compare with: straight to stable."""
    return Strategy(steps=(SetWeight(weight=100),))
