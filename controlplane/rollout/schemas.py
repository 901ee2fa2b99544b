"""What the API says about rollouts, and what it accepts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from controlplane.jsonlimits import JsonTypes
from controlplane.models import (
    Command,
    Measurement,
    Phase,
    PodAdapters,
    Rollout,
    RolloutEvent,
)
from controlplane.naming import DNS1123_LABEL_PATTERN, dns1123_label_problem
from controlplane.rollout.strategy import Step, Strategy


class RolloutCreate(JsonTypes, BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"version": "v2"}]})

    version: str = Field(
        max_length=63,
        description="The registered version to roll out.",
        json_schema_extra={"pattern": DNS1123_LABEL_PATTERN},
    )
    strategy: Strategy | None = Field(
        default=None, description="Steps; the default canary strategy when omitted."
    )

    @field_validator("version")
    @classmethod
    def _version(cls, value: str) -> str:
        problem = dns1123_label_problem(value, "version name")
        if problem:
            raise ValueError(problem)
        return value


class CommandBody(JsonTypes, BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=1000)


class PromoteBody(CommandBody):
    full: bool = Field(default=False, description="Skip the remaining steps.")


class Placement(BaseModel):
    """An adapter rollout's base pool: which pod held which adapters at the last look."""

    pool: str
    stable_adapter: str | None
    canary_adapter: str
    observed_at: datetime
    pods: list[PodAdapters]


class RolloutPublic(BaseModel):
    id: int
    model: str
    version: str = Field(description="The version being rolled out (the canary).")
    canary_version: str
    stable_version: str | None
    state: Phase
    phase: Phase = Field(description="Same as state.")
    step_index: int
    steps: list[Step]
    current_step: Step | None
    weight: int = Field(description="The canary's share of traffic in force, percent.")
    step_started_at: datetime = Field(
        description="When the current step began (an analysis' evidence counts from then)."
    )
    reason: str
    pending_command: Command | None
    created_at: datetime
    created_by: str
    updated_at: datetime
    finished_at: datetime | None
    next_check_at: datetime
    warnings: list[str] = Field(
        default_factory=list,
        description="When the rollout is requested: what it cannot do as asked (e.g. weights "
        "replicas routing cannot honor), and what it does instead.",
    )
    placement: Placement | None = Field(
        default=None,
        description="An adapter rollout on a base pool: which pod holds which adapters, as "
        "last read (null for a full-weights rollout).",
    )

    @classmethod
    def of(cls, rollout: Rollout) -> RolloutPublic:
        assert rollout.id is not None
        steps = list(Strategy.model_validate(rollout.strategy).steps)
        current = steps[rollout.step_index] if rollout.step_index < len(steps) else None
        return cls(
            id=rollout.id,
            model=rollout.model,
            version=rollout.canary_version,
            canary_version=rollout.canary_version,
            stable_version=rollout.stable_version,
            state=rollout.phase,
            phase=rollout.phase,
            step_index=rollout.step_index,
            steps=steps,
            current_step=current,
            weight=rollout.routed_weight,
            step_started_at=rollout.step_started_at,
            reason=rollout.reason,
            pending_command=rollout.command,
            created_at=rollout.created_at,
            created_by=rollout.created_by,
            updated_at=rollout.updated_at,
            finished_at=rollout.finished_at,
            next_check_at=rollout.next_check_at,
            placement=Placement.model_validate(rollout.placement) if rollout.placement else None,
        )


class RolloutPage(BaseModel):
    items: list[RolloutPublic]
    next_cursor: str | None = None


class RolloutEventPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    actor: str
    type: str = Field(description="created, command, transition, step or hold.")
    kind: str = Field(description="Same as type.")
    phase: Phase
    step_index: int
    weight: int
    message: str
    evidence: dict[str, Any]

    @classmethod
    def of(cls, event: RolloutEvent) -> RolloutEventPublic:
        return cls.model_validate({**event.model_dump(), "type": event.kind})


class EventPage(BaseModel):
    items: list[RolloutEventPublic]
    next_cursor: str | None = None


class MeasurementPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    step_index: int
    at: datetime
    weight: int
    verdict: str
    summary: str
    metrics: list[dict[str, Any]]
    discarded: str | None = Field(
        default=None,
        description="Why this look stopped counting as evidence (taken on a changed cluster).",
    )

    @classmethod
    def of(cls, measurement: Measurement) -> MeasurementPublic:
        return cls.model_validate(measurement)


class MeasurementPage(BaseModel):
    items: list[MeasurementPublic]
    next_cursor: str | None = None
