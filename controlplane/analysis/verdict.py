"""The outcome of one measurement, as the rollout planner sees it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Verdict(StrEnum):
    PASS = "pass"  # noqa: S105 - a verdict, not a password
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"  # not enough data to say: never a pass, never a fail
    ERROR = "error"  # the metrics could not be read at all


class Inconclusive(StrEnum):
    """Why a verdict is not yet a pass or a fail, the most actionable first."""

    NO_SERIES = "no_series"  # the canary has no series at all: not scraped (configuration)
    NO_TRAFFIC = "no_traffic"  # series, but no requests: traffic does not reach it (routing)
    UNRESOLVABLE = "unresolvable"  # the quantile is beyond the histogram's largest bound
    TOO_FEW = "too_few"  # requests, but not yet enough to pass: more time will do

    @property
    def waits_for_traffic(self) -> bool:
        """More of the same traffic can settle it: the step may be extended."""
        return self is Inconclusive.TOO_FEW


INCONCLUSIVE_ORDER = tuple(Inconclusive)


def most_actionable(kinds: Iterable[str | None]) -> Inconclusive | None:
    """Why a measurement is inconclusive: the most actionable of its metrics' reasons
    (unknown or missing values are passed over)."""
    known = [
        Inconclusive(k) for k in kinds if k is not None and k in Inconclusive._value2member_map_
    ]
    return min(known, key=INCONCLUSIVE_ORDER.index) if known else None


@dataclass(frozen=True)
class Window:
    """A passed analysis step's time range and the weight in force during it: evidence
    the sequential judge carries over the rest of the rollout."""

    step: int
    start: datetime
    end: datetime
    weight: int

    def to_json(self) -> dict[str, object]:
        return {
            "step": self.step,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "weight": self.weight,
        }

    @classmethod
    def from_json(cls, value: dict[str, object]) -> Window:
        return cls(
            step=int(str(value["step"])),
            start=datetime.fromisoformat(str(value["start"])),
            end=datetime.fromisoformat(str(value["end"])),
            weight=int(str(value["weight"])),
        )


@dataclass(frozen=True)
class MeasurementOutcome:
    """One analysis measurement across all its metrics: the worst metric's verdict."""

    at: datetime
    verdict: Verdict
    summary: str
    step_index: int | None = None  # the strategy step it was taken for, when known
    inconclusive: Inconclusive | None = None  # why, when the verdict is inconclusive
