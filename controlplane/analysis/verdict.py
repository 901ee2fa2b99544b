"""The outcome of one measurement, as the rollout planner sees it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Verdict(StrEnum):
    PASS = "pass"  # noqa: S105 - a verdict, not a password
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"  # not enough data to say: never a pass, never a fail
    ERROR = "error"  # the metrics could not be read at all


@dataclass(frozen=True)
class MeasurementOutcome:
    """One analysis measurement across all its metrics: the worst metric's verdict."""

    at: datetime
    verdict: Verdict
    summary: str
    step_index: int | None = None  # the strategy step it was taken for, when known
