"""The judge's error rates: how often it rolls back a canary that is as good as stable
(false rollback), and how often it catches a canary whose TTFT is 10%, 25% or 50% worse
(detection), at several canary sample sizes.

Each trial draws the canary's and stable's time to first token from a log-normal
distribution (the canary's scaled by the regression), bins them into vLLM's TTFT buckets
as Prometheus would, and asks the fixed-sample judge (p95, margin 10%, alpha 0.05, the
built-in TTFT check) for a verdict. Stable gets ``--stable-ratio`` times the canary's
samples (9: a canary at 10% weight). The false-rollback rate of a rollout that takes
``--measurements`` measurements with failure_limit 0 is also shown, assuming independent
measurements (overlapping windows make them less independent, so it is an upper bound).

    python -m benchmarks.judge_power [--trials 400] [--sizes 25,50,100,200,500,1000]
"""

from __future__ import annotations

import argparse
import bisect
import math
import random
import time

from controlplane.analysis.judge import Check, Histogram, judge_histogram
from controlplane.analysis.metrics import TTFT
from controlplane.analysis.verdict import Verdict
from controlplane.simulate.metrics import TTFT_BUCKETS

BOUNDS = (*TTFT_BUCKETS, math.inf)


def binned(rng: random.Random, n: int, median: float, sigma: float, scale: float) -> Histogram:
    counts = [0] * len(BOUNDS)
    mu = math.log(median * scale)
    for _ in range(n):
        counts[bisect.bisect_left(BOUNDS, rng.lognormvariate(mu, sigma))] += 1
    cumulative, running = [], 0
    for bound, count in zip(BOUNDS, counts, strict=True):
        running += count
        cumulative.append((bound, float(running)))
    return Histogram(tuple(cumulative))


def rates(
    rng: random.Random,
    check: Check,
    *,
    trials: int,
    canary_n: int,
    stable_n: int,
    regression: float,
    median: float,
    sigma: float,
) -> dict[Verdict, float]:
    tally = dict.fromkeys(Verdict, 0)
    for _ in range(trials):
        canary = binned(rng, canary_n, median, sigma, 1 + regression)
        stable = binned(rng, stable_n, median, sigma, 1.0)
        tally[judge_histogram(check, canary, stable).verdict] += 1
    return {verdict: count / trials for verdict, count in tally.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=400)
    parser.add_argument("--sizes", default="25,50,100,200,500,1000")
    parser.add_argument("--regressions", default="0,0.10,0.25,0.50")
    parser.add_argument("--stable-ratio", type=int, default=9)
    parser.add_argument("--median", type=float, default=0.3, help="stable TTFT median, s")
    parser.add_argument("--sigma", type=float, default=0.4, help="sigma of log(TTFT)")
    parser.add_argument("--measurements", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    check = TTFT.check
    rng = random.Random(args.seed)
    sizes = [int(s) for s in args.sizes.split(",")]
    regressions = [float(r) for r in args.regressions.split(",")]
    started = time.monotonic()
    print(
        f"judge: p{check.quantile * 100:.0f} margin {check.margin:.0%} alpha {check.alpha} "
        f"min_samples {check.min_samples}; TTFT log-normal median {args.median}s sigma "
        f"{args.sigma}, vLLM buckets; stable n = {args.stable_ratio} x canary n; "
        f"{args.trials} trials per cell"
    )
    header = f"{'canary n':>8} {'TTFT regression':>22} {'fail':>7} {'inconcl.':>9} {'pass':>7}"
    print(f"{header} {f'fail in {args.measurements} meas.':>18}")
    for canary_n in sizes:
        for regression in regressions:
            result = rates(
                rng,
                check,
                trials=args.trials,
                canary_n=canary_n,
                stable_n=canary_n * args.stable_ratio,
                regression=regression,
                median=args.median,
                sigma=args.sigma,
            )
            fail = result[Verdict.FAIL]
            over_rollout = 1 - (1 - fail) ** args.measurements
            label = "none (false rollback)" if regression == 0 else f"+{regression:.0%}"
            print(
                f"{canary_n:>8} {label:>22} {fail:>7.1%} {result[Verdict.INCONCLUSIVE]:>9.1%} "
                f"{result[Verdict.PASS]:>7.1%} {over_rollout:>18.1%}"
            )
    print(f"({time.monotonic() - started:.1f}s)")


if __name__ == "__main__":
    main()
