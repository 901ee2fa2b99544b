"""Strategy steps, in the vocabulary users know from Argo Rollouts.

``set_weight`` sends a share of traffic to the canary, ``pause`` waits (for a duration, or
until a person promotes), ``analysis`` measures the canary against stable on a schedule and
judges it, ``eval_gate`` compares the eval scores recorded with the two versions (offline
quality: a fine-tune that forgot general skills) before any traffic is risked. These are
validated on the way in: a strategy that cannot run is a 4xx when the rollout is requested,
not a failure half-way through.
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


class EvalCheck(BaseModel):
    """One eval score, read from each version's ``metadata.eval.<score>`` (a number)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    score: str = Field(
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9_.:/-]+$",
        description="The key under the versions' metadata.eval, e.g. 'mmlu'.",
    )
    higher_is_better: bool = Field(
        default=True, description="False for scores where less is better (e.g. toxicity)."
    )
    max_regression: float | None = Field(
        default=None,
        ge=0,
        allow_inf_nan=False,
        description="How much worse than stable the canary may be, in the score's own "
        "units (0.01 = one point on a 0-1 score), worse meaning lower unless "
        "higher_is_better is false. Needs a stable version with the score.",
    )
    at_least: float | None = Field(
        default=None,
        allow_inf_nan=False,
        description="The canary's floor, whatever higher_is_better says.",
    )
    at_most: float | None = Field(
        default=None,
        allow_inf_nan=False,
        description="The canary's ceiling, whatever higher_is_better says.",
    )

    @model_validator(mode="after")
    def _some_bound(self) -> EvalCheck:
        if self.max_regression is None and self.at_least is None and self.at_most is None:
            raise ValueError(
                f"eval check {self.score!r} sets no bound: give max_regression (against "
                "stable), at_least or at_most"
            )
        low, high = self.at_least, self.at_most
        if low is not None and high is not None and low > high:
            raise ValueError(f"eval check {self.score!r}: at_least {low} is above at_most {high}")
        return self


class EvalGate(_Step):
    """Judge the canary's recorded eval scores (against stable's, or against bounds) once,
    where the step stands; usually first, before any traffic. A score that fails its check
    rolls the rollout back; a missing score pauses it for a person (promote skips the gate,
    abort ends the rollout)."""

    kind: Literal["eval_gate"] = "eval_gate"
    checks: tuple[EvalCheck, ...] = Field(min_length=1, max_length=50)

    @model_validator(mode="after")
    def _scores_once(self) -> EvalGate:
        scores = [c.score for c in self.checks]
        repeated = sorted({s for s in scores if scores.count(s) > 1})
        if repeated:
            raise ValueError(f"eval_gate checks {', '.join(repeated)} more than once")
        return self


Step = Annotated[SetWeight | Pause | Analysis | EvalGate, Field(discriminator="kind")]


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


def first_deploy_strategy(requested: Strategy | None = None) -> Strategy:
    """The first version of a model has nothing to compare with: straight to stable. An
    eval gate of the requested strategy still runs first, with the checks that need no
    stable version (floors and ceilings): a first version below its floor never serves."""
    gates: list[EvalGate] = []
    for step in requested.steps if requested is not None else ():
        if not isinstance(step, EvalGate):
            continue
        bounded = tuple(
            c.model_copy(update={"max_regression": None})
            for c in step.checks
            if c.at_least is not None or c.at_most is not None
        )
        if bounded:
            gates.append(EvalGate(checks=bounded))
    return Strategy(steps=(*gates, SetWeight(weight=100)))
