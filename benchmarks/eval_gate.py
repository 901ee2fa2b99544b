"""The evaluation step's gate on noisy simulated versions: false failures of healthy
canaries, and the power to stop forgetting and unsafe canaries, gate run by gate run.

Every trial is one gate run as a rollout lives it: the starter suites (300 ``general``
items and 40 red-team probes; ``controlplane/evals``), each item answered by stable and
by the canary with the simulator's own answer model (``controlplane.simulate.answers``: the
text the simulated server would send), each answer scored by the real scorers
(``controlplane.analysis.scoring``) and the whole judged by the real judge
(``controlplane.analysis.quality.judge_quality``) with the step's defaults (margin 0,
alpha 0.01, safety tolerance 0) unless ``--margin`` says otherwise.

The noise is meant to be no kinder than a real pair of fine-tunes, and is drawn afresh for
every trial (a new pair of models):

- stable gets ``--base-error`` (15%) of the general items wrong, a different set each trial;
- a healthy canary is *not* stable's twin: it gets a different ``churn`` share of items
  right and wrong (up to ``--churn``, 4%, drawn per trial: as many lost as gained), i.e.
  some items flip each way with no net change;
- both answer with per-request noise (``--noise``, 2%: temperature 0 is not deterministic
  under batching: a right answer now and then comes out wrong and a wrong one right) and
  safety noise (``--safety-noise``, 0.5% of probe answers flip between refusing and
  complying);
- a forgetful canary additionally gets ``f`` of the suite's items wrong that stable gets
  right (2%, 5%, 10% of the 300); an unsafe one complies with one probe stable refuses.

With ``--http N`` the first N trials of each scenario also go through the served path: two
simulated vLLM servers on loopback, each item sent over ``/v1/chat/completions`` by the
control plane's own client (``controlplane.analysis.prompting.Asker``), to check that the
in-process figures are what the served gate sees, and to time a gate run.

    python -m benchmarks.eval_gate [--trials 400] [--http 10] [--margin 0.0]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from controlplane.analysis.asking import Target, ask_all
from controlplane.analysis.prompting import Asker
from controlplane.analysis.quality import confirmed, flips, judge_quality
from controlplane.analysis.scoring import score
from controlplane.analysis.verdict import Verdict
from controlplane.evals import starter_path
from controlplane.evalsuite import EvalItem, parse_jsonl
from controlplane.simulate.answers import AnswerKnobs, Knowledge, answer
from controlplane.strategy import Evaluation


@dataclass(frozen=True)
class Scenario:
    name: str
    forget: float = 0.0  # share of the general items, among those stable gets right
    unsafe: int = 0  # probes stable refuses that the canary complies with


SCENARIOS = (
    Scenario("healthy"),
    Scenario("forgot 2%", forget=0.02),
    Scenario("forgot 5%", forget=0.05),
    Scenario("forgot 10%", forget=0.10),
    Scenario("complies with 1 probe", unsafe=1),
)


def load_suite() -> tuple[list[EvalItem], Knowledge]:
    general = list(parse_jsonl(starter_path("general").read_text()))
    probes = [i for i in parse_jsonl(starter_path("safety").read_text()) if i.gated_tag == "safety"]
    items = general + probes
    raw = [i.model_dump(mode="json") for i in items]
    return items, Knowledge.from_items(raw)


def pair(
    items: list[EvalItem], scenario: Scenario, args: argparse.Namespace, rng: random.Random
) -> tuple[AnswerKnobs, AnswerKnobs]:
    """Stable's and the canary's knobs for one trial (a fresh pair of models)."""
    general = [i.id for i in items if i.gated_tag == "general"]
    probes = [i.id for i in items if i.gated_tag == "safety"]
    wrong = set(rng.sample(general, round(args.base_error * len(general))))
    right = [i for i in general if i not in wrong]
    churn = round(rng.uniform(0, args.churn) * len(general) / 2)
    lost = set(rng.sample(right, churn))
    gained = set(rng.sample(sorted(wrong), min(churn, len(wrong))))
    canary_wrong = (wrong - gained) | lost
    if scenario.forget:
        still_right = [i for i in general if i not in canary_wrong and i not in wrong]
        canary_wrong |= set(rng.sample(still_right, round(scenario.forget * len(general))))
    noise = {"noise": args.noise, "safety_noise": args.safety_noise}
    stable = AnswerKnobs(forget_ids=tuple(sorted(wrong)), seed=rng.randrange(1 << 30), **noise)
    canary = AnswerKnobs(
        forget_ids=tuple(sorted(canary_wrong)),
        comply_ids=tuple(rng.sample(probes, scenario.unsafe)),
        seed=rng.randrange(1 << 30),
        **noise,
    )
    return stable, canary


def confirm(
    items: list[EvalItem],
    canary: dict[str, bool | None],
    stable: dict[str, bool | None],
    times: int,
    ask: Callable[[EvalItem], bool | None],
) -> dict[str, bool | None]:
    """The evaluator's rule: a probe flip is asked of the canary ``times`` more and stands
    only if it complies every time."""
    if not times:
        return canary
    kept = dict(canary)
    for item in flips(items, canary, stable):
        if not confirmed([ask(item) for _ in range(times)]):
            kept[item.id] = True
    return kept


def asking(
    knowledge: Knowledge, knobs: AnswerKnobs, rng: random.Random
) -> Callable[[EvalItem], bool | None]:
    """One version asked one item again, in process."""

    def ask(item: EvalItem) -> bool | None:
        return score(item, answer(knowledge, knobs, item.chat()[-1]["content"], rng).text).passed

    return ask


def answers_in_process(
    items: list[EvalItem], knowledge: Knowledge, knobs: AnswerKnobs, rng: random.Random
) -> dict[str, bool | None]:
    scores: dict[str, bool | None] = {}
    for item in items:
        text = answer(knowledge, knobs, item.chat()[-1]["content"], rng).text
        scores[item.id] = score(item, text).passed
    return scores


class Served:
    """Two simulated servers on loopback (stable, canary) whose knobs change per trial."""

    def __init__(self, knowledge_paths: str, time_scale: float) -> None:
        from controlplane.simulate.process import running_servers
        from controlplane.simulate.server import ServerConfig

        configs = [
            ServerConfig(version=v, time_scale=time_scale, seed=i, knowledge=knowledge_paths)
            for i, v in enumerate(("stable", "canary"))
        ]
        self._context = running_servers(configs)
        self.servers = self._context.__enter__()
        import httpx

        self.http = httpx.Client(trust_env=False, timeout=30)

    def close(self) -> None:
        self.http.close()
        self._context.__exit__(None, None, None)

    def asking(
        self, knobs: AnswerKnobs, index: int, step: Evaluation
    ) -> Callable[[EvalItem], bool | None]:
        """One version asked one item again, over HTTP."""
        return lambda item: self.ask([item], knobs, index, step)[0][item.id]

    def ask(
        self, items: list[EvalItem], knobs: AnswerKnobs, index: int, step: Evaluation
    ) -> tuple[dict[str, bool | None], int]:
        server = self.servers[index]
        self.http.post(f"{server.url}/sim/answers", json=knobs.as_dict()).raise_for_status()
        asker = Asker(Target((server.url,)), timeout=step.timeout_seconds, retries=step.retries)
        scores: dict[str, bool | None] = {}
        tokens = 0

        def on_reply(item: EvalItem, reply: object) -> None:
            nonlocal tokens
            text = getattr(reply, "text", "")
            error = getattr(reply, "error", None)
            tokens += getattr(reply, "prompt_tokens", 0) + getattr(reply, "completion_tokens", 0)
            scores[item.id] = None if error else score(item, text).passed

        try:
            ask_all(asker, items, concurrency=step.concurrency, on_reply=on_reply)
        finally:
            asker.close()
        return scores, tokens


def run(args: argparse.Namespace) -> int:
    items, table = load_suite()
    step = Evaluation(
        suite="starter",
        general_margin=args.margin,
        alpha=args.alpha,
        confirm_flips=args.confirm,
    )
    knowledge = f"{starter_path('general')},{starter_path('safety')}"
    served = Served(knowledge, args.time_scale) if args.http else None
    print(
        f"eval gate: {sum(i.gated_tag == 'general' for i in items)} general items, "
        f"{sum(i.gated_tag == 'safety' for i in items)} probes; stable wrong on "
        f"{args.base_error:.0%}, churn up to {args.churn:.0%}, noise {args.noise:.1%}, "
        f"safety noise {args.safety_noise:.1%}; margin {args.margin:g}, alpha {args.alpha:g}, "
        f"flips asked again {args.confirm}x; "
        f"{args.trials} gate runs per scenario"
    )
    print()
    print(
        f"{'scenario':<24}{'failed':>9}{'by general':>12}{'by safety':>11}"
        f"{'inconcl.':>10}{'passed':>9}"
    )
    http_rows: list[str] = []
    try:
        for scenario in SCENARIOS:
            rng = random.Random(f"{args.seed}:{scenario.name}")
            verdicts: Counter[str] = Counter()
            served_agree = served_runs = 0
            served_seconds: list[float] = []
            served_tokens: list[int] = []
            for trial in range(args.trials):
                stable_knobs, canary_knobs = pair(items, scenario, args, rng)
                stable = answers_in_process(items, table, stable_knobs, rng)
                canary = answers_in_process(items, table, canary_knobs, rng)
                canary = confirm(
                    items,
                    canary,
                    stable,
                    step.confirm_flips,
                    asking(table, canary_knobs, rng),
                )
                result = judge_quality(items, canary, stable, step)
                verdicts[result.verdict.value] += 1
                for metric in result.metrics:
                    if metric.verdict is Verdict.FAIL:
                        verdicts[metric.metric] += 1
                if served is not None and trial < args.http:
                    began = time.monotonic()
                    s, t1 = served.ask(items, stable_knobs, 0, step)
                    c, t2 = served.ask(items, canary_knobs, 1, step)
                    c = confirm(
                        items,
                        c,
                        s,
                        step.confirm_flips,
                        served.asking(canary_knobs, 1, step),
                    )
                    served_seconds.append(time.monotonic() - began)
                    served_tokens.append(t1 + t2)
                    over_http = judge_quality(items, c, s, step)
                    served_runs += 1
                    served_agree += over_http.verdict.value == "fail"
            n = args.trials
            print(
                f"{scenario.name:<24}{verdicts['fail'] / n:>9.1%}"
                f"{verdicts['eval:general'] / n:>12.1%}{verdicts['eval:safety'] / n:>11.1%}"
                f"{verdicts['inconclusive'] / n:>10.1%}{verdicts['pass'] / n:>9.1%}"
            )
            if served_runs:
                http_rows.append(
                    f"{scenario.name:<24}{served_agree}/{served_runs} failed over HTTP; "
                    f"a gate run: {2 * len(items)} prompts, "
                    f"{sum(served_tokens) / served_runs:.0f} tokens, "
                    f"{sum(served_seconds) / served_runs:.2f}s"
                    + (" (simulated latency not slept)" if not args.time_scale else "")
                )
    finally:
        if served is not None:
            served.close()
    if http_rows:
        print()
        print("served path (simulated vLLM over /v1/chat/completions, the control plane's client):")
        for row in http_rows:
            print(f"  {row}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=400)
    parser.add_argument("--http", type=int, default=0, help="trials per scenario over HTTP")
    parser.add_argument("--margin", type=float, default=0.0)
    parser.add_argument("--alpha", type=float, default=0.01)
    parser.add_argument("--base-error", type=float, default=0.15)
    parser.add_argument("--churn", type=float, default=0.04)
    parser.add_argument("--noise", type=float, default=0.02)
    parser.add_argument("--safety-noise", type=float, default=0.005)
    parser.add_argument(
        "--time-scale",
        type=float,
        default=0.0,
        help="over HTTP: how much of the simulated latency to sleep (1: a vLLM's TTFT and "
        "inter-token gaps, to time a gate run)",
    )
    parser.add_argument("--confirm", type=int, default=2, help="the step's confirm_flips")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
