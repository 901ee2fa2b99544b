"""Metric templates: the PromQL they build for a version, and how answers (including empty
and NaN ones) become the judge's inputs."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

import pytest

from controlplane.analysis.judge import Histogram, Ratio
from controlplane.analysis.metrics import (
    BUILTIN,
    DEFAULT_METRICS,
    ERROR_RATE,
    THROUGHPUT,
    TTFT,
    Catalog,
    MetricShapeError,
    Sample,
    Scalar,
    check_template,
    custom_ratio,
    custom_scalar,
    histogram_from,
    promql_duration,
    selector,
)

AT = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
CANARY = selector(namespace="llm", model="chat", version="v2")


class FakeSource:
    """Answers by exact query; anything else is empty (as Prometheus is for no series)."""

    def __init__(self, answers: Mapping[str, Sequence[Sample]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    def instant(self, query: str, at: datetime | None = None) -> list[Sample]:
        self.asked.append(query)
        return list(self.answers.get(query, []))


def buckets(*pairs: tuple[str, float]) -> list[Sample]:
    return [Sample({"le": le}, value) for le, value in pairs]


def test_the_selector_names_namespace_model_and_version() -> None:
    assert CANARY == 'namespace="llm",model="chat",version="v2"'
    assert selector(namespace="a", model='we"ird\\', version="v") == (
        'namespace="a",model="we\\"ird\\\\",version="v"'
    )
    with pytest.raises(ValueError, match="version"):
        selector(namespace="llm", model="chat", version="")


@pytest.mark.parametrize(
    ("window", "text"),
    [
        (timedelta(minutes=5), "300s"),
        (timedelta(seconds=1.5), "1500ms"),
        (timedelta(hours=1), "3600s"),
    ],
)
def test_windows_become_promql_durations(window: timedelta, text: str) -> None:
    assert promql_duration(window) == text


def test_an_empty_window_is_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        promql_duration(timedelta(0))


def test_the_ttft_template_sums_bucket_increases_by_le() -> None:
    assert TTFT.queries(selector=CANARY, window="300s") == (
        "sum by (le) (increase(vllm:time_to_first_token_seconds_bucket"
        '{namespace="llm",model="chat",version="v2"}[300s]))',
    )


def test_the_error_rate_counts_5xx_inference_requests_grouped_or_not() -> None:
    events, total = ERROR_RATE.queries(selector=CANARY, window="60s")
    assert events == (
        "sum(increase(http_requests_total{"
        'namespace="llm",model="chat",version="v2",'
        'handler=~"/v1/completions|/v1/chat/completions|/v1/embeddings|/v1/responses",'
        'status=~"5.."}[60s]))'
    )
    assert total == events.replace(',status=~"5.."', "")


def test_custom_templates_fill_their_placeholders() -> None:
    template = custom_ratio(
        "refusals",
        events='sum(increase(app_refusals_total{{selector},kind="safety"}[{window}]))',
        total="sum(increase(app_answers_total{{selector}}[{window}]))",
        margin=0.02,
        min_samples=20,
    )
    events, total = template.queries(selector=CANARY, window="120s")
    assert events == (
        'sum(increase(app_refusals_total{namespace="llm",model="chat",version="v2",'
        'kind="safety"}[120s]))'
    )
    assert total.endswith('version="v2"}[120s]))')
    assert template.check.name == "refusals"
    assert template.check.min_samples == 20


def test_a_template_that_cannot_tell_canary_from_stable_is_refused() -> None:
    with pytest.raises(ValueError, match="no \\{selector\\}"):
        check_template("sum(rate(app_errors_total[{window}]))")
    with pytest.raises(ValueError, match="unknown placeholder"):
        check_template("sum(rate(app_errors_total{{selctor}}[{window}]))")
    with pytest.raises(ValueError, match="no \\{selector\\}"):
        custom_scalar("cost", query="sum(app_cost)", margin=0.1)


def test_buckets_are_sorted_by_le_with_inf_last() -> None:
    samples = buckets(("+Inf", 10.0), ("0.5", 9.0), ("0.1", 2.0), ("1", 10.0))
    assert histogram_from(samples) == Histogram(
        ((0.1, 2.0), (0.5, 9.0), (1.0, 10.0), (math.inf, 10.0))
    )


def test_bucket_counts_that_are_nan_or_negative_read_as_zero() -> None:
    histogram = histogram_from(buckets(("0.1", math.nan), ("1", -0.2), ("+Inf", 3.5)))
    assert histogram.buckets == ((0.1, 0.0), (1.0, 0.0), (math.inf, 3.5))


def test_an_empty_answer_is_an_empty_histogram_that_counts_zero() -> None:
    histogram = histogram_from([])
    assert histogram.count == 0
    assert histogram.quantile(0.95) is None


@pytest.mark.parametrize(
    ("samples", "problem"),
    [
        ([Sample({"pod": "a"}, 1.0)], "without an 'le' label"),
        ([Sample({"le": "fast"}, 1.0)], "bad 'le'"),
        (buckets(("0.1", 1.0), ("0.1", 2.0)), "twice"),
    ],
)
def test_answers_that_are_not_one_series_per_bucket_are_shape_errors(
    samples: list[Sample], problem: str
) -> None:
    with pytest.raises(MetricShapeError, match=problem):
        histogram_from(samples)


def test_a_histogram_template_reads_the_canary_buckets() -> None:
    (query,) = TTFT.queries(selector=CANARY, window="300s")
    source = FakeSource({query: buckets(("0.1", 5.0), ("+Inf", 8.0))})
    assert TTFT.read(source, selector=CANARY, window="300s", at=AT).count == 8.0


def _ratio(events: list[Sample], total: list[Sample]) -> Ratio:
    events_query, total_query = ERROR_RATE.queries(selector=CANARY, window="60s")
    source = FakeSource({events_query: events, total_query: total})
    return ERROR_RATE.read(source, selector=CANARY, window="60s", at=AT)


def test_a_ratio_sums_its_series() -> None:
    assert _ratio([Sample({}, 3.0)], [Sample({"pod": "a"}, 50.0), Sample({"pod": "b"}, 50.0)]) == (
        Ratio(3.0, 100.0)
    )


def test_no_errors_is_zero_events_but_no_traffic_is_zero_total() -> None:
    assert _ratio([], [Sample({}, 40.0)]) == Ratio(0.0, 40.0)
    assert _ratio([], []) == Ratio(0.0, 0.0)


def test_a_nan_count_is_no_data_never_a_clean_zero() -> None:
    assert _ratio([Sample({}, math.nan)], [Sample({}, 40.0)]) == Ratio(0.0, 0.0)
    assert _ratio([Sample({}, 1.0)], [Sample({}, math.inf)]) == Ratio(0.0, 0.0)


def test_more_events_than_total_is_capped() -> None:
    assert _ratio([Sample({}, 41.0)], [Sample({}, 40.0)]) == Ratio(40.0, 40.0)


def test_a_scalar_reads_one_value_and_its_sample_count() -> None:
    value_query, count_query = THROUGHPUT.queries(selector=CANARY, window="60s")
    source = FakeSource({value_query: [Sample({}, 42.0)], count_query: [Sample({}, 120.0)]})
    assert THROUGHPUT.read(source, selector=CANARY, window="60s", at=AT) == Scalar(42.0, 120.0)
    assert THROUGHPUT.read(FakeSource({}), selector=CANARY, window="60s", at=AT) == Scalar(
        None, 0.0
    )
    nan = FakeSource({value_query: [Sample({}, math.nan)]})
    assert THROUGHPUT.read(nan, selector=CANARY, window="60s", at=AT).value is None


def test_a_scalar_query_with_many_series_must_be_aggregated() -> None:
    template = custom_scalar("cost", query="app_cost{{selector}}", margin=0.1)
    (query,) = template.queries(selector=CANARY, window="60s")
    source = FakeSource({query: [Sample({"pod": "a"}, 1.0), Sample({"pod": "b"}, 2.0)]})
    with pytest.raises(MetricShapeError, match="aggregate"):
        template.read(source, selector=CANARY, window="60s", at=AT)


def test_the_default_metrics_and_their_checks() -> None:
    templates = Catalog().resolve()
    assert [t.name for t in templates] == list(DEFAULT_METRICS)
    assert all(t.check.name == t.name for t in BUILTIN.values())
    assert TTFT.check.quantile == 0.95
    assert TTFT.check.margin == 0.10
    assert ERROR_RATE.check.margin == 0.005


def test_a_user_overrides_a_check_and_adds_their_own_metric() -> None:
    refusals = custom_ratio(
        "refusals",
        events="sum(increase(refusals_total{{selector}}[{window}]))",
        total="sum(increase(answers_total{{selector}}[{window}]))",
        margin=0.02,
    )
    catalog = Catalog(custom={"refusals": refusals})
    ttft, mine = catalog.resolve(
        ["ttft", "refusals"], overrides={"ttft": {"margin": 0.25, "quantile": 0.99}}
    )
    assert (ttft.check.name, ttft.check.margin, ttft.check.quantile) == ("ttft", 0.25, 0.99)
    assert ttft.check.min_samples == TTFT.check.min_samples
    assert mine is refusals
    assert TTFT.check.margin == 0.10  # the built-in is untouched


def test_unknown_metrics_and_check_fields_are_refused_with_what_is_known() -> None:
    with pytest.raises(ValueError, match=r"unknown metric.*ttfb.*known: e2e_latency"):
        Catalog().resolve(["ttfb"])
    with pytest.raises(ValueError, match="unknown metric"):
        Catalog().resolve(overrides={"nope": {"margin": 1}})
    with pytest.raises(ValueError, match="unknown check field"):
        TTFT.with_check(margin=0.2, percentile=99)
