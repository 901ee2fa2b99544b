"""Whole rollouts, judged three ways on the same simulated fleets: what users live.

Each rollout runs the default strategy (10% -> analysis -> 25% -> analysis -> 50% ->
analysis -> 100%, each analysis looking every 60 s) through the real planner
(``controlplane.rollout.planner.plan``) and the real measurement code
(``controlplane.analysis.measure``: the templates' PromQL, answered by the simulated fleet
of ``benchmarks/fleet.py``), with stable on 2 replicas, in ``replicas`` routing mode (the
default: the weight in force is the canary's share of replicas) unless ``--routing
gateway-api``. Three judges, each on its own copy of the same fleets (same seeds):

- **sequential**: the default judge (always-valid, pod-aware, evidence over the whole step,
  one 1% false-rollback budget per rollout; steps extend up to 30 min while traffic is
  too thin, then pause);
- **fixed**: the earlier judge (``judge: fixed``): Mann-Whitney and a z-test on each
  60 s window, alpha 0.05, min_samples, failure_limit 0, inconclusive_limit 2;
- **kayenta**: a Kayenta-like fixed-horizon rule: once per step, over the step's whole 5
  minutes, a Mann-Whitney test per metric (one-sided p < 0.01, i.e. 98% two-sided
  confidence) with the effect over the margin, the errors by a two-proportion test at the
  same level; the step fails when any metric fails (a score under Kayenta's 95 pass mark
  with four metrics) and pauses when a metric has too little data.

Per scenario and traffic level it prints: rolled back, promoted with no person, paused,
the median minutes from the start to the decision that matters (the rollback of a
regression, the promotion of a healthy canary), the share rolled back by the target time,
and the issue's target with the best any judge held to the same two promises (at most 1%
of healthy canaries and of canaries exactly at the margin failed) could catch by then.

    python -m benchmarks.judge_rollouts [--rollouts 1000] [--rates 2,20,200] [--jobs 2]
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import statistics
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import timedelta

from benchmarks.fleet import EPOCH, Fleet, FleetSource, Scenario
from controlplane.analysis.judge import (
    Check,
    FixedSampleJudge,
    Histogram,
    MetricVerdict,
    Ratio,
    mann_whitney_greater,
    two_proportion_greater,
)
from controlplane.analysis.measure import measure
from controlplane.analysis.metrics import BUILTIN, DEFAULT_METRICS, Catalog
from controlplane.analysis.sequential import SequentialJudge
from controlplane.analysis.verdict import MeasurementOutcome, Verdict
from controlplane.kube.observe import VersionState
from controlplane.models import Phase
from controlplane.rollout.planner import Facts, Observed, plan
from controlplane.strategy import Analysis, SetWeight, Strategy

SCENARIOS = {
    "healthy": Scenario("healthy, 5% pod offsets"),
    "ttft15": Scenario("TTFT x1.5", ttft_factor=1.5),
    "errors": Scenario("errors +2 points", error_points=0.02),
    "ttft125": Scenario("TTFT x1.25, 2% pod offsets", ttft_factor=1.25, pod_offset_sd=0.02),
    "tail": Scenario("p99 +60%, p95 flat (p99 check)", slow_tail=True),
    "ttft2": Scenario("TTFT x2", ttft_factor=2.0),
}
JUDGES = ("sequential", "fixed", "kayenta")
# the targets: (share, median minutes) to roll back a regression; a healthy canary
# is rolled back at most 1% of the time and promoted with no person (95% at 2 req/s, 99%
# above); None: report only
TARGETS: dict[tuple[str, float], tuple[float, float] | None] = {
    ("ttft15", 2): (0.95, 10), ("ttft15", 20): (0.99, 3), ("ttft15", 200): (0.99, 2),
    ("errors", 2): (0.95, 10), ("errors", 20): (0.99, 3), ("errors", 200): (0.99, 2),
    ("ttft125", 2): None, ("ttft125", 20): (0.90, 10), ("ttft125", 200): (0.95, 5),
    ("tail", 2): None, ("tail", 20): (0.90, 10), ("tail", 200): (0.95, 5),
    ("ttft2", 0.4): (0.90, 30),
}  # fmt: skip


def information_limit(key: str, rate: float, minutes: float) -> float:
    """The chance that the best possible test, looking once at ``minutes`` with all the
    data so far, knowing the noise (but not the pods' draws) and the regression, fails the
    regressed canary while failing at most 1% of healthy ones (5% pod offsets) and at most
    1% of canaries exactly at the default margin. No judge held to the same two promises
    catches more by then (Neyman-Pearson); a median time target is out of reach when this
    is under 50%. Replicas routing: 1 canary pod beside 2 stable ones. It spends the whole
    1% on one metric and one look, so it is an optimistic bound."""
    from benchmarks.fleet import BASE_ERRORS, POD_DRIFT_RHO, POD_DRIFT_SD, TTFT_SIGMA
    from controlplane.analysis.stats.sequential import normal_cdf, normal_quantile

    scenario = SCENARIOS[key]
    n_c = rate * 60 * minutes / 3
    n_s = 2 * n_c
    z = normal_quantile(0.99)
    if scenario.error_points:
        p_s, p_c = BASE_ERRORS, BASE_ERRORS + scenario.error_points
        margin = BUILTIN["error_rate"].check.margin
        null_sd = math.sqrt(p_s * (1 / n_c + 1 / n_s))
        at_margin_sd = math.sqrt((p_s + margin) / n_c + p_s / n_s)
        alt_sd = math.sqrt(p_c / n_c + p_s / n_s)
        threshold = max(z * null_sd, margin + z * at_margin_sd)
        return normal_cdf((scenario.error_points - threshold) / alt_sd)
    q = 0.99 if scenario.slow_tail else 0.95
    effect = math.log(1.6) if scenario.slow_tail else math.log(scenario.ttft_factor)
    phi = math.exp(-(normal_quantile(q) ** 2) / 2) / math.sqrt(2 * math.pi)
    sampling = (TTFT_SIGMA / phi) ** 2 * q * (1 - q) * (1 / n_c + 1 / n_s)
    steps = max(1, round(minutes))
    drift = sum(POD_DRIFT_RHO ** abs(i - j) for i in range(steps) for j in range(steps))
    drift *= POD_DRIFT_SD**2 / steps**2

    def pods(offset_sd: float) -> float:
        return (offset_sd**2 + drift) * 1.5  # one canary pod against two stable ones

    margin = math.log1p(BUILTIN["ttft"].check.margin)
    threshold = max(
        z * math.sqrt(sampling + pods(0.05)),
        margin + z * math.sqrt(sampling + pods(scenario.pod_offset_sd)),
    )
    return normal_cdf((effect - threshold) / math.sqrt(sampling + pods(scenario.pod_offset_sd)))


MAX_MINUTES = 6 * 60


class KayentaLikeJudge:
    """Fixed horizon, once per step: Mann-Whitney (p < 0.01 one-sided) and the effect
    over the margin for latencies; a two-proportion z-test at the same level for ratios."""

    alpha = 0.01
    min_samples = 50

    def histogram(self, check: Check, canary: Histogram, stable: Histogram) -> MetricVerdict:
        c_q, s_q = canary.quantile(check.quantile), stable.quantile(check.quantile)
        n_c, n_s = canary.count, stable.count
        if n_c < self.min_samples or n_s < self.min_samples or c_q is None or s_q is None:
            return _verdict(check, Verdict.INCONCLUSIVE, c_q, s_q, n_c, n_s)
        _, p = mann_whitney_greater(canary.per_bucket(), stable.per_bucket())
        worse = p < self.alpha and s_q > 0 and c_q / s_q - 1 > check.margin
        return _verdict(check, Verdict.FAIL if worse else Verdict.PASS, c_q, s_q, n_c, n_s, p)

    def ratio(self, check: Check, canary: Ratio, stable: Ratio) -> MetricVerdict:
        if canary.total < self.min_samples or stable.total < self.min_samples:
            return _verdict(check, Verdict.INCONCLUSIVE, canary.rate, stable.rate, 0, 0)
        _, p = two_proportion_greater(canary, stable)
        assert canary.rate is not None
        assert stable.rate is not None
        worse = p < self.alpha and canary.rate - stable.rate > check.margin
        verdict = Verdict.FAIL if worse else Verdict.PASS
        return _verdict(check, verdict, canary.rate, stable.rate, canary.total, stable.total, p)


def _verdict(
    check: Check,
    verdict: Verdict,
    c: float | None,
    s: float | None,
    n_c: float,
    n_s: float,
    p: float | None = None,
) -> MetricVerdict:
    return MetricVerdict(check.name, verdict, c, s, n_c, n_s, None, p, f"{check.name}")


def strategy_for(judge: str) -> Strategy:
    def analysis() -> Analysis:
        if judge == "sequential":
            return Analysis()
        if judge == "fixed":
            return Analysis(judge="fixed")
        # one look, after the step's 5 minutes, over all of them
        return Analysis(judge="fixed", count=1, interval_seconds=300, inconclusive_limit=0)

    return Strategy(
        steps=(
            SetWeight(weight=10),
            analysis(),
            SetWeight(weight=25),
            analysis(),
            SetWeight(weight=50),
            analysis(),
            SetWeight(weight=100),
        )
    )


@dataclass(frozen=True)
class Result:
    outcome: str  # rolled_back, promoted, paused
    minutes: float


def run_rollout(
    scenario: Scenario, rate: float, seed: int, judge: str, routing: str, metrics: tuple[str, ...]
) -> Result:
    fleet = Fleet(scenario, rate, seed)
    fleet.scale("v1", 2)
    strategy = strategy_for(judge)
    facts = Facts(
        phase=Phase.PENDING,
        steps=strategy.steps,
        step_index=0,
        step_started_at=EPOCH,
        routed_weight=0,
        replicas=2,
        gpus_per_replica=1,
        gpu_budget=None,
        has_stable=True,
        stable_replicas=2,
    )
    source = FleetSource(fleet)
    checks = Catalog().resolve(metrics)
    judges = {"fixed": FixedSampleJudge(), "kayenta": KayentaLikeJudge()}
    sequential = SequentialJudge()
    outcomes: list[MeasurementOutcome] = []
    canary_pods = 0
    while fleet.minute < MAX_MINUTES:
        now = fleet.now()
        observed = Observed(
            canary=VersionState("chat-v2", canary_pods > 0, canary_pods, canary_pods),
            stable=VersionState("chat-v1", True, fleet.active["v1"], fleet.active["v1"]),
        )
        decision = plan(facts, observed, outcomes, now)
        if decision.measure:
            step = facts.steps[facts.step_index]
            assert isinstance(step, Analysis)
            common = {
                "namespace": "bench",
                "model": "chat",
                "canary_version": "v2",
                "stable_version": "v1",
                "at": now,
            }
            if step.judge == "sequential":
                alpha, rollout_alpha = strategy.analysis_alphas(facts.step_index)
                result = measure(
                    source,
                    sequential,
                    checks,
                    window=max(now - facts.step_started_at, timedelta(seconds=60)),
                    alpha=alpha,
                    rollout_alpha=rollout_alpha,
                    history=facts.analysis_windows,
                    interval=timedelta(seconds=step.interval_seconds),
                    **common,  # type: ignore[arg-type]
                )
            else:
                result = measure(
                    source,
                    judges[judge],  # type: ignore[arg-type]
                    checks,
                    window=timedelta(seconds=step.interval_seconds),
                    **common,  # type: ignore[arg-type]
                )
            outcomes.append(replace(result.outcome(), step_index=facts.step_index))
            decision = plan(facts, observed, outcomes, now)
        facts = decision.facts
        if decision.target is not None:
            target = decision.target
            canary_pods = target.canary_replicas
            fleet.scale("v2", canary_pods)
            fleet.scale("v1", target.stable_replicas)
            if routing == "replicas":
                total = canary_pods + target.stable_replicas
                share = canary_pods / total if total else 0.0
            else:
                share = target.weight / 100
            fleet.route(share)
        minutes = fleet.minute
        if facts.phase in (Phase.ROLLING_BACK, Phase.ROLLED_BACK):
            return Result("rolled_back", minutes)
        if facts.phase is Phase.SUCCEEDED:
            return Result("promoted", minutes)
        if facts.phase is Phase.PAUSED:
            return Result("paused", minutes)
        if decision.requeue_after > timedelta(0):
            steps = max(1, math.ceil(decision.requeue_after.total_seconds() / 60))
            for _ in range(steps):
                fleet.advance()
    return Result("paused", fleet.minute)


def _batch(args: tuple[str, float, str, str, int, int, tuple[str, ...], str]) -> list[Result]:
    key, rate, judge, routing, start, count, metrics, shape = args
    scenario = replace(SCENARIOS[key], ttft_shape=shape)
    return [
        run_rollout(scenario, rate, 1_000_003 * int(rate * 10) + i, judge, routing, metrics)
        for i in range(start, start + count)
    ]


def _target(key: str, rate: float) -> str:
    if not SCENARIOS[key].regressed:
        promoted = 0.95 if rate <= 2 else 0.99
        return "rolled back <= 1%" + (f", promoted >= {promoted:.0%}" if rate >= 2 else "")
    target = TARGETS.get((key, rate))
    if target is None:
        return "report"
    share, minutes = target
    limit = information_limit(key, rate, minutes)
    return f">= {share:.0%} in <= {minutes:g} min ({limit:.0%} by then at best)"


def metrics_for(key: str) -> tuple[str, ...]:
    return (*DEFAULT_METRICS, "ttft_p99") if key == "tail" else DEFAULT_METRICS


def cells(rates: Sequence[float]) -> list[tuple[str, float]]:
    out = [
        (key, rate) for key in ("healthy", "ttft15", "errors", "ttft125", "tail") for rate in rates
    ]
    return [*out, ("healthy", 0.4), ("ttft2", 0.4)]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rollouts", type=int, default=1000)
    parser.add_argument("--rates", default="2,20,200")
    parser.add_argument("--judges", default=",".join(JUDGES))
    parser.add_argument("--scenarios", default="")
    parser.add_argument("--routing", choices=("replicas", "gateway-api"), default="replicas")
    parser.add_argument(
        "--ttft-shape",
        choices=("lognormal", "mixture"),
        default="lognormal",
        help="mixture: a two-mode TTFT (short and long prompts) that no interpolation fits",
    )
    parser.add_argument("--jobs", type=int, default=max(1, (multiprocessing.cpu_count() or 1)))
    args = parser.parse_args(argv)
    rates = [float(r) for r in args.rates.split(",")]
    judges = args.judges.split(",")
    wanted = [c for c in cells(rates) if not args.scenarios or c[0] in args.scenarios.split(",")]
    started = time.monotonic()
    chunk = max(1, args.rollouts // (4 * args.jobs))
    tasks = []
    for key, rate in wanted:
        for judge in judges:
            for start in range(0, args.rollouts, chunk):
                count = min(chunk, args.rollouts - start)
                tasks.append(
                    (
                        key,
                        rate,
                        judge,
                        args.routing,
                        start,
                        count,
                        metrics_for(key),
                        args.ttft_shape,
                    )
                )
    with multiprocessing.Pool(args.jobs) as pool:
        results = pool.map(_batch, tasks)
    merged: dict[tuple[str, float, str], list[Result]] = {}
    for task, batch in zip(tasks, results, strict=True):
        merged.setdefault((task[0], task[1], task[2]), []).extend(batch)
    print(
        f"{args.rollouts} rollouts per cell; default strategy, {args.routing} routing, stable on "
        f"2 replicas, {args.ttft_shape} TTFT"
    )
    print(
        f"{'scenario':<32} {'R':>5} {'judge':<11} {'rolled back':>11} {'promoted':>9} "
        f"{'paused':>7} {'median min':>11} {'by target':>9}   target (limit)"
    )
    for key, rate in wanted:
        for judge in judges:
            batch = merged[(key, rate, judge)]
            tally = Counter(r.outcome for r in batch)
            n = len(batch)
            decisive = "rolled_back" if SCENARIOS[key].regressed else "promoted"
            times = [r.minutes for r in batch if r.outcome == decisive]
            median = f"{statistics.median(times):.0f}" if times else "-"
            target = TARGETS.get((key, rate))
            by_target = (
                f"{sum(1 for t in times if t <= target[1]) / n:.1%}" if target is not None else ""
            )
            print(
                f"{SCENARIOS[key].name:<32} {rate:>5g} {judge:<11} "
                f"{tally['rolled_back'] / n:>11.1%} {tally['promoted'] / n:>9.1%} "
                f"{tally['paused'] / n:>7.1%} {median:>11} {by_target:>9}   "
                + (_target(key, rate) if judge == judges[0] else "")
            )
    print(f"({time.monotonic() - started:.0f}s)", file=sys.stderr)


if __name__ == "__main__":
    main()
