"""A measurement over canned metric answers: per-metric verdicts, the combined verdict and
its one-line summary, and errors that become verdicts instead of exceptions."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import pytest

from controlplane.analysis.judge import Check, FixedSampleJudge
from controlplane.analysis.measure import Measurement, judge_scalar, measure
from controlplane.analysis.metrics import (
    E2E_LATENCY,
    ERROR_RATE,
    THROUGHPUT,
    TTFT,
    MetricShapeError,
    MetricSourceError,
    MetricTemplate,
    Sample,
    Scalar,
    custom_scalar,
)
from controlplane.analysis.verdict import Verdict

AT = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
BOUNDS = ("0.1", "0.25", "0.5", "0.75", "1", "2.5", "+Inf")


class Temporary(MetricSourceError):
    @property
    def temporary(self) -> bool:
        return True


Answer = Callable[[str], list[Sample]]


class Source:
    """Answers a query from the first rule whose version and text it contains."""

    def __init__(self, rules: Sequence[tuple[str, str, Answer]]) -> None:
        self.rules = rules
        self.asked: list[str] = []

    def instant(self, query: str, at: datetime | None = None) -> list[Sample]:
        self.asked.append(query)
        for version, fragment, respond in self.rules:
            if f'version="{version}"' in query and fragment in query:
                return respond(query)
        return []


def latency_buckets(rng: random.Random, n: int, median: float) -> Answer:
    values = [rng.lognormvariate(math.log(median), 0.3) for _ in range(n)]

    def respond(query: str) -> list[Sample]:
        return [
            Sample({"le": le}, float(sum(1 for v in values if v <= float(le)))) for le in BOUNDS
        ]

    return respond


def count(value: float) -> Answer:
    return lambda query: [Sample({}, value)]


def fails(error: MetricSourceError) -> Answer:
    def respond(query: str) -> list[Sample]:
        raise error

    return respond


def run(source: Source, templates: Sequence[MetricTemplate] = (TTFT, ERROR_RATE)) -> Measurement:
    return measure(
        source,
        FixedSampleJudge(),
        templates,
        namespace="llm",
        model="chat",
        canary_version="v2",
        stable_version="v1",
        window=timedelta(minutes=5),
        at=AT,
    )


def healthy(canary_ttft: float = 0.2, canary_errors: float = 1.0) -> list[tuple[str, str, Answer]]:
    rng = random.Random(7)
    return [
        ("v2", "time_to_first_token", latency_buckets(rng, 300, canary_ttft)),
        ("v1", "time_to_first_token", latency_buckets(rng, 3000, 0.2)),
        ("v2", 'status=~"5.."', count(canary_errors)),
        ("v1", 'status=~"5.."', count(10.0)),
        ("v2", "http_requests_total", count(300.0)),
        ("v1", "http_requests_total", count(3000.0)),
    ]


def test_both_versions_are_read_over_the_window_at_the_same_instant() -> None:
    source = Source(healthy())
    measurement = run(source)
    assert measurement.verdict is Verdict.PASS, measurement.summary
    assert all("[300s]" in q for q in source.asked)
    assert any('version="v1"' in q for q in source.asked)
    assert any('version="v2"' in q for q in source.asked)
    assert all('namespace="llm",model="chat"' in q for q in source.asked)
    assert measurement.outcome().verdict is Verdict.PASS
    assert measurement.outcome().at == AT


def test_a_regressed_canary_fails_and_the_summary_names_the_metric() -> None:
    measurement = run(Source(healthy(canary_ttft=0.5)))
    assert measurement.verdict is Verdict.FAIL
    assert measurement.summary.startswith("fail: ttft p95 canary ")
    assert measurement.summary.endswith("[2 metrics: 1 fail, 1 pass]")


def test_no_data_at_all_is_inconclusive_never_a_pass() -> None:
    measurement = run(Source([]), [TTFT, E2E_LATENCY, ERROR_RATE, THROUGHPUT])
    assert [m.verdict for m in measurement.metrics] == [Verdict.INCONCLUSIVE] * 4
    assert measurement.verdict is Verdict.INCONCLUSIVE
    assert "too few samples" in measurement.summary


def test_a_metric_that_cannot_be_read_is_an_error_verdict_and_the_rest_are_judged() -> None:
    rules = [("v2", "http_requests_total", fails(MetricShapeError("bad shape"))), *healthy()]
    measurement = run(Source(rules))
    ttft, errors = measurement.metrics
    assert ttft.verdict is Verdict.PASS
    assert errors.verdict is Verdict.ERROR
    assert errors.message == "error_rate: bad shape"
    assert measurement.verdict is Verdict.ERROR
    assert measurement.summary == "error: error_rate: bad shape [2 metrics: 1 error, 1 pass]"


def test_a_failure_outranks_an_error() -> None:
    rules = [("v2", "http_requests_total", fails(MetricShapeError("bad"))), *healthy(0.5)]
    assert run(Source(rules)).verdict is Verdict.FAIL


def test_after_a_temporary_error_the_remaining_metrics_are_not_queried() -> None:
    source = Source([("v2", "time_to_first_token", fails(Temporary("Prometheus down")))])
    measurement = run(source)
    assert [m.verdict for m in measurement.metrics] == [Verdict.ERROR, Verdict.ERROR]
    assert measurement.metrics[1].message == "error_rate: not measured: Prometheus down"
    assert len(source.asked) == 1


def test_the_evidence_is_json_without_infinities() -> None:
    measurement = run(Source([]), [TTFT, THROUGHPUT])
    evidence = measurement.evidence()
    text = json.dumps(evidence, allow_nan=False)
    assert json.loads(text)["metrics"][0]["metric"] == "ttft"
    assert evidence["verdict"] == "inconclusive"


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        measure(
            Source([]),
            FixedSampleJudge(),
            [TTFT],
            namespace="llm",
            model="chat",
            canary_version="v2",
            stable_version="v1",
            window=timedelta(minutes=5),
            at=datetime(2026, 1, 1),  # noqa: DTZ001
        )


def test_nothing_to_measure_is_inconclusive() -> None:
    measurement = run(Source([]), [])
    assert measurement.verdict is Verdict.INCONCLUSIVE
    assert measurement.summary == "inconclusive: no metrics to measure"


THROUGHPUT_CHECK = Check("throughput", margin=0.10, min_samples=50)


@pytest.mark.parametrize(
    ("canary", "stable", "verdict"),
    [
        (Scalar(95.0, 100), Scalar(100.0, 400), Verdict.PASS),  # 5% slower: inside the margin
        (Scalar(80.0, 100), Scalar(100.0, 400), Verdict.FAIL),  # 20% fewer tokens/s
        (Scalar(150.0, 100), Scalar(100.0, 400), Verdict.PASS),  # faster is never a failure
        (Scalar(None, 0), Scalar(100.0, 400), Verdict.INCONCLUSIVE),
        (Scalar(80.0, 10), Scalar(100.0, 400), Verdict.INCONCLUSIVE),  # 10 requests: too few
    ],
)
def test_a_higher_is_better_scalar(canary: Scalar, stable: Scalar, verdict: Verdict) -> None:
    result = judge_scalar(THROUGHPUT_CHECK, canary, stable, higher_is_better=True)
    assert result.verdict is verdict, result.message


def test_a_lower_is_better_scalar_fails_when_higher_and_reports_the_numbers() -> None:
    cost = Check("cost", margin=0.10)
    result = judge_scalar(cost, Scalar(1.3), Scalar(1.0), higher_is_better=False)
    assert result.verdict is Verdict.FAIL
    assert result.message == ("cost canary 1.3 vs stable 1 (+30.0%, margin 10%, lower is better)")
    assert result.threshold == pytest.approx(1.1)
    faster = judge_scalar(
        THROUGHPUT_CHECK, Scalar(95.0, 100), Scalar(100.0, 400), higher_is_better=True
    )
    assert faster.threshold == pytest.approx(100.0 * (1 - THROUGHPUT_CHECK.margin))
    assert judge_scalar(cost, Scalar(0.7), Scalar(1.0), higher_is_better=False).verdict is (
        Verdict.PASS
    )


def test_a_scalar_over_its_bound_fails_even_when_stable_is_as_bad() -> None:
    bounded = Check("gpu_memory", margin=0.5, max_value=0.9)
    result = judge_scalar(bounded, Scalar(0.95), Scalar(0.95), higher_is_better=False)
    assert result.verdict is Verdict.FAIL
    assert "over the bound 0.9" in result.message


def test_a_custom_scalar_is_measured_end_to_end() -> None:
    cost = custom_scalar(
        "cost", query="avg(app_cost_dollars{{selector}})", margin=0.1, min_samples=1
    )
    source = Source(
        [("v2", "app_cost_dollars", count(2.0)), ("v1", "app_cost_dollars", count(1.0))]
    )
    measurement = run(source, [cost])
    assert measurement.verdict is Verdict.FAIL
    assert measurement.summary.startswith("fail: cost canary 2 vs stable 1 (+100.0%")
