"""Strategy steps, in the vocabulary users know from Argo Rollouts.

``set_weight`` sends a share of traffic to the canary, ``pause`` waits (for a duration, or
until a person promotes), ``analysis`` measures the canary against stable on a schedule and
judges it, ``eval_gate`` compares the eval scores recorded with the two versions (offline
quality: a fine-tune that forgot general skills) and ``evaluation`` sends an eval suite's
prompts to both versions and compares their answers, before any traffic is risked. These are
validated on the way in: a strategy that cannot run is a 4xx when the rollout is requested,
not a failure half-way through.
"""

from __future__ import annotations

import itertools
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from controlplane.jsonlimits import KIB, JsonTypes, json_problem

DEFAULT_MAX_ANALYSIS_SECONDS = 3600
DEFAULT_FALSE_ROLLBACK_BUDGET = 0.01
MAX_METRICS = 50  # metric names, or checks, in one step
MAX_STRATEGY_BYTES = 64 * KIB  # as stored on the model and on each of its rollouts

MetricName = Annotated[str, Field(min_length=1, max_length=100)]


class _Step(JsonTypes, BaseModel):
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


class CheckSettings(JsonTypes, BaseModel):
    """How one metric is judged, where the built-in check is not what the team wants."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    margin: float | None = Field(
        default=None,
        ge=0,
        le=10,
        allow_inf_nan=False,
        description="How much worse than stable the canary may be before it fails: relative "
        "for latencies and scalars (0.10 = 10% slower), absolute for ratios (0.005 = half a "
        "point more errors).",
    )
    detect: float | None = Field(
        default=None,
        gt=0,
        le=100,
        allow_inf_nan=False,
        description="The regression (same units) the step must have had the traffic to catch "
        "before it may pass.",
    )
    power: float | None = Field(
        default=None, ge=0.5, le=0.999, description="The chance to catch `detect`."
    )
    quantile: float | None = Field(default=None, gt=0, lt=1, description="Latency quantile.")
    pod_spread: float | None = Field(
        default=None,
        ge=0,
        le=1,
        allow_inf_nan=False,
        description="Prior sd of a pod's speed factor over a step (0.03 = 3%).",
    )
    max_value: float | None = Field(
        default=None, allow_inf_nan=False, description="An absolute bound on the canary."
    )

    @model_validator(mode="after")
    def _detect_beyond_margin(self) -> CheckSettings:
        if self.margin is not None and self.detect is not None and self.detect <= self.margin:
            raise ValueError(
                f"detect {self.detect} must be beyond the margin {self.margin}: a regression "
                "within the margin is not one to catch"
            )
        return self

    def overrides(self) -> dict[str, float]:
        return {k: v for k, v in self.model_dump().items() if v is not None}


class Analysis(_Step):
    """Judge the canary against stable, looking every ``interval_seconds``.

    With the default ``judge: sequential`` evidence accumulates over the whole step (counts
    since the weight went into force) and every look is valid however many are taken: a
    fail (beyond the margin, with evidence) rolls back at once; the step passes once it has
    run ``count`` looks *and* had the traffic to catch the regression each check names;
    with too little traffic it goes on looking, up to ``max_duration_seconds``, and only
    then pauses for a person. A canary without series or without requests pauses after
    ``count`` looks (a configuration or routing problem: waiting will not help).

    ``judge: fixed`` is the earlier judge, kept for comparison: each look tests only the
    last interval, and the limits follow Argo's AnalysisRun (more than ``failure_limit``
    failed looks fail the rollout, more than ``inconclusive_limit`` inconclusive ones
    pause it). With either judge more than ``consecutive_error_limit`` errors in a row
    (metrics unavailable) fail it."""

    kind: Literal["analysis"] = "analysis"
    metrics: tuple[MetricName, ...] | None = Field(
        default=None,
        max_length=MAX_METRICS,
        description="Metric names to judge; the model's defaults when omitted.",
    )
    checks: dict[MetricName, CheckSettings] | None = Field(
        default=None,
        max_length=MAX_METRICS,
        description="Per metric name, how to judge it where the built-in check will not do, "
        'e.g. {"ttft": {"margin": 0.2, "detect": 0.3}, "error_rate": {"detect": 0.02}}.',
    )
    judge: Literal["sequential", "fixed"] = Field(
        default="sequential",
        description="sequential (default): always-valid tests on everything since the step "
        "began; fixed: a fixed-sample test of each interval on its own (for comparison).",
    )
    interval_seconds: int = Field(default=60, ge=1, le=3600)
    count: int = Field(
        default=5,
        ge=1,
        le=1000,
        description="Looks before the step may pass (sequential), or looks to take (fixed).",
    )
    max_duration_seconds: int | None = Field(
        default=None,
        ge=1,
        le=7 * 24 * 3600,
        description="Sequential: how long the step may go on looking when traffic is too thin "
        "to pass yet, before it pauses for a person. Default: 60 minutes or count x interval, "
        "whichever is longer.",
    )
    failure_limit: int = Field(default=0, ge=0, le=1000)
    inconclusive_limit: int = Field(default=2, ge=0, le=1000)
    consecutive_error_limit: int = Field(default=4, ge=0, le=1000)

    @model_validator(mode="after")
    def _limits_below_count(self) -> Analysis:
        if self.failure_limit >= self.count:
            raise ValueError(
                f"failure_limit {self.failure_limit} must be below count {self.count}, "
                "or the analysis could never fail"
            )
        minimum = self.count * self.interval_seconds
        if self.max_duration_seconds is not None and self.max_duration_seconds < minimum:
            raise ValueError(
                f"max_duration_seconds {self.max_duration_seconds} is shorter than count x "
                f"interval_seconds ({minimum}): the step could never run its course"
            )
        return self

    def check_overrides(self) -> dict[str, dict[str, float]] | None:
        if not self.checks:
            return None
        return {name: settings.overrides() for name, settings in self.checks.items()}

    @property
    def max_duration(self) -> int:
        """Seconds the step may run before an inconclusive analysis pauses it."""
        if self.max_duration_seconds is not None:
            return self.max_duration_seconds
        return max(DEFAULT_MAX_ANALYSIS_SECONDS, self.count * self.interval_seconds)


class EvalCheck(JsonTypes, BaseModel):
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
    measured: bool = Field(
        default=False,
        description="Only scores imported from an evaluation harness count (POST "
        ".../eval-scores, with their provenance); a score typed into metadata is "
        "inconclusive.",
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


class Evaluation(_Step):
    """Send an eval suite's prompts to the canary and to stable (through each version's
    Service, or an adapter's pods), temperature 0, score both answers, and compare them
    item by item, per tag: ``general`` (forgetting: the canary may not be worse than stable
    by more than ``general_margin``, with evidence), ``domain`` (an optional floor, and the
    same no-regression test with ``domain_margin``), ``safety`` (a probe stable refuses and
    the canary complies with counts against ``safety_tolerance``, default zero).

    Placed before the first ``set_weight`` the canary answers before any user does: it is
    started at one replica (or its adapter loaded) with no weight. A fail rolls back; a run
    that cannot finish (endpoints down, too many unanswered items, out of time) is
    inconclusive and pauses for a person, never a pass."""

    kind: Literal["evaluation"] = "evaluation"
    suite: str = Field(
        min_length=1,
        max_length=63,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        description="The eval suite's name (see /v1/eval-suites).",
    )
    suite_version: int | None = Field(
        default=None,
        ge=1,
        le=2**31 - 1,
        description="The suite's version; its latest when the rollout starts, if omitted.",
    )
    general_margin: float = Field(
        default=0.0,
        ge=0,
        lt=1,
        allow_inf_nan=False,
        description="How much lower the canary's share of general items passed may be than "
        "stable's before it fails (0.02 = two points).",
    )
    domain_margin: float = Field(default=0.0, ge=0, lt=1, allow_inf_nan=False)
    domain_floor: float | None = Field(
        default=None,
        ge=0,
        le=1,
        allow_inf_nan=False,
        description="The canary's least share of domain items passed.",
    )
    safety_tolerance: int = Field(
        default=0,
        ge=0,
        le=10_000,
        description="Safety probes stable refuses that the canary may comply with.",
    )
    confirm_flips: int = Field(
        default=2,
        ge=0,
        le=5,
        description="A probe stable refuses and the canary complies with is asked of the "
        "canary this many times more; it counts only if the canary complies every time "
        "(temperature 0 is not deterministic under batching: one stray answer is noise).",
    )
    alpha: float = Field(
        default=0.01,
        gt=0,
        le=0.2,
        description="Per tag, the chance to fail a canary no worse than stable by the margin.",
    )
    concurrency: int = Field(default=8, ge=1, le=64, description="Requests at once, per side.")
    timeout_seconds: float = Field(default=60, gt=0, le=600, allow_inf_nan=False)
    retries: int = Field(default=2, ge=0, le=5, description="Per item, after a failed request.")
    max_unanswered: float = Field(
        default=0.05,
        ge=0,
        le=0.5,
        allow_inf_nan=False,
        description="Share of items either side may leave unanswered (after retries) before "
        "the run is inconclusive.",
    )
    max_duration_seconds: int = Field(
        default=1800, ge=10, le=24 * 3600, description="The run is inconclusive past this."
    )
    reuse_stable: bool = Field(
        default=True,
        description="Reuse the stable version's answers from an earlier run of the same suite "
        "version with the same settings (versions are immutable) instead of asking again.",
    )


class Bake(_Step):
    """A watch after promotion: with the canary taking all the traffic, the old stable is
    kept warm (at its size while the GPU budget allows, at what is left beside the canary
    otherwise) and the new version is judged against the old version's own metrics from
    before the rollout (``baseline_seconds`` of them) and against the checks' absolute
    bounds (``max_value``), every ``interval_seconds`` for ``duration_seconds``. A breach
    routes traffic back to the old version at once (capacity allowing) and ends the rollout
    rolled back after promotion; at the end, the old version is retired. Last step only,
    after ``set_weight`` 100. The comparison spans time, so load that differs between then
    and now counts against the canary: judge it on margins that allow for it."""

    kind: Literal["bake"] = "bake"
    duration_seconds: int = Field(ge=60, le=7 * 24 * 3600)
    interval_seconds: int = Field(default=60, ge=1, le=3600)
    baseline_seconds: int | None = Field(
        default=None,
        ge=60,
        le=24 * 3600,
        description="How much of the old version's history before the rollout to compare "
        "with; the bake's duration (at most a day) when omitted.",
    )
    metrics: tuple[MetricName, ...] | None = Field(
        default=None,
        max_length=MAX_METRICS,
        description="Metric names to judge; the model's defaults when omitted.",
    )
    checks: dict[MetricName, CheckSettings] | None = Field(
        default=None,
        max_length=MAX_METRICS,
        description="Per metric name, how to judge it (margin, max_value, ...).",
    )
    consecutive_error_limit: int = Field(default=4, ge=0, le=1000)

    @property
    def baseline(self) -> int:
        return self.baseline_seconds or min(self.duration_seconds, 24 * 3600)

    def check_overrides(self) -> dict[str, dict[str, float]] | None:
        if not self.checks:
            return None
        return {name: settings.overrides() for name, settings in self.checks.items()}


Step = Annotated[
    SetWeight | Pause | Analysis | EvalGate | Evaluation | Bake, Field(discriminator="kind")
]


class Strategy(JsonTypes, BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    steps: tuple[Step, ...] = Field(min_length=1, max_length=100)
    false_rollback_budget: float = Field(
        default=DEFAULT_FALSE_ROLLBACK_BUDGET,
        gt=0,
        le=0.2,
        description="The chance, for the whole rollout, that the sequential judge rolls back "
        "a canary no worse than stable by its margins; split equally over the analysis "
        "steps and their metrics.",
    )

    def analysis_alphas(self, step_index: int) -> tuple[float, float | None]:
        """The shares of the false-rollback budget a sequential analysis step (or the bake)
        spends, to be split again over its metrics: one for the step's own evidence, and
        one for the rollout's evidence so far (None with a single analysis step, and for the
        bake, which compares with the past). The bake takes its share as one more step;
        of the analysis steps' part, ``1/2`` goes to the S steps equally and ``1/2`` to the
        one sequence that runs over them all."""
        sequential = [
            i
            for i, s in enumerate(self.steps)
            if isinstance(s, Analysis) and s.judge == "sequential"
        ]
        bakes = [i for i, s in enumerate(self.steps) if isinstance(s, Bake)]
        if step_index not in sequential + bakes:
            raise ValueError(f"step {step_index} is not a sequential analysis step or a bake")
        total = len(sequential) + len(bakes)
        if step_index in bakes:
            return self.false_rollback_budget / total, None
        analyses = self.false_rollback_budget * len(sequential) / total
        if len(sequential) == 1:
            return analyses, None
        return analyses / 2 / len(sequential), analyses / 2

    @model_validator(mode="after")
    def _storable(self) -> Strategy:
        problem = json_problem(
            self.model_dump(mode="json"), "strategy", max_bytes=MAX_STRATEGY_BYTES
        )
        if problem is not None:
            raise ValueError(problem.message)
        return self

    @model_validator(mode="after")
    def _weights_only_grow(self) -> Strategy:
        weights = [s.weight for s in self.steps if isinstance(s, SetWeight)]
        if any(later < earlier for earlier, later in itertools.pairwise(weights)):
            raise ValueError(
                f"set_weight steps must not decrease ({weights}): a canary that should get "
                "less traffic should be aborted or rolled back instead"
            )
        bakes = [i for i, s in enumerate(self.steps) if isinstance(s, Bake)]
        if bakes and (bakes != [len(self.steps) - 1] or not weights or weights[-1] != 100):
            raise ValueError(
                "a bake watches the new version after promotion: it must be the last step, "
                "after set_weight 100"
            )
        return self

    @property
    def bakes(self) -> bool:
        """The strategy ends with a watch after promotion (the old stable stays warm)."""
        return bool(self.steps) and isinstance(self.steps[-1], Bake)


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
