"""Metric templates: the PromQL that reads one metric for one model version, and the
conversion of its answer into what a judge compares (a :class:`Histogram`, a
:class:`Ratio` or a :class:`Scalar`), with a default :class:`Check` per metric.

A version is selected by the labels our scrape configuration puts on every inference pod
(``namespace``, ``model``, ``version``: see ``manifests/monitoring/``), so canary and
stable are read by the same query with a different selector. Queries read a source
through the small :class:`MetricSource` protocol: this module never speaks HTTP, so the
rollout engine can import it without importing an HTTP client. An empty answer is not an
error: it becomes zero counts (the judge then says inconclusive), never an exception and
never a pass.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol, Self

from controlplane.analysis.judge import Check, Histogram, PodHistograms, Ratio

# --- what a metric source returns ---------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One element of an instant vector (a scalar answer has no labels)."""

    labels: Mapping[str, str]
    value: float  # may be NaN or +/-Inf: Prometheus answers "NaN", "+Inf", "-Inf"


@dataclass(frozen=True)
class Series:
    """One series of a range query: (unix timestamp, value) points, oldest first."""

    labels: Mapping[str, str]
    points: tuple[tuple[float, float], ...]


class MetricSourceError(Exception):
    """A metric could not be read. ``temporary`` says whether asking again may help."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def temporary(self) -> bool:
        return False


class MetricShapeError(MetricSourceError):
    """The query answered, but not in the shape its template needs (e.g. a histogram
    query without an ``le`` label, or a scalar query that returns many series)."""


class MetricSource(Protocol):
    def instant(self, query: str, at: datetime | None = None) -> list[Sample]: ...

    def range(
        self, query: str, start: datetime, end: datetime, step: timedelta
    ) -> list[Series]: ...


# --- selectors and placeholders ---------------------------------------------------------

SELECTOR_LABELS = ("namespace", "model", "version")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_PLACEHOLDERS = frozenset({"selector", "window"})


def _quote(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def selector(*, namespace: str, model: str, version: str) -> str:
    """The label matchers (without braces) that select one model version's pods."""
    values = {"namespace": namespace, "model": model, "version": version}
    for label, value in values.items():
        if not value:
            raise ValueError(f"the {label} of a metric selector must not be empty")
    return ",".join(f"{label}={_quote(values[label])}" for label in SELECTOR_LABELS)


def adapter_selector(*, namespace: str, model: str, adapter: str) -> str:
    """The label matchers that select one adapter's requests on the endpoint picker's
    metrics: the model name the clients sent, rewritten to that adapter."""
    values = {"namespace": namespace, "model_name": model, "target_model_name": adapter}
    for label, value in values.items():
        if not value:
            raise ValueError(f"the {label} of a metric selector must not be empty")
    return ",".join(f"{label}={_quote(value)}" for label, value in values.items())


def promql_duration(window: timedelta) -> str:
    """A PromQL range duration: whole seconds as ``300s``, otherwise milliseconds."""
    milliseconds = round(window.total_seconds() * 1000)
    if milliseconds <= 0:
        raise ValueError(f"an analysis window must be positive, not {window}")
    return f"{milliseconds // 1000}s" if milliseconds % 1000 == 0 else f"{milliseconds}ms"


def check_template(query: str) -> str:
    """Refuse a query template that cannot tell canary from stable, or that names a
    placeholder we do not fill (most likely a typo that PromQL would reject later)."""
    names = set(_PLACEHOLDER.findall(query))
    unknown = names - _PLACEHOLDERS
    if unknown:
        raise ValueError(
            f"unknown placeholder(s) {', '.join(sorted('{' + n + '}' for n in unknown))} in "
            f"{query!r}: only {{selector}} and {{window}} are filled in"
        )
    if "selector" not in names:
        raise ValueError(
            f"{query!r} has no {{selector}}: it would read the same series for canary and "
            'stable; write e.g. my_metric{{selector},code="500"}'
        )
    return query


def render(query: str, *, selector: str, window: str) -> str:
    """Fill ``{selector}`` and ``{window}`` in; every other brace is PromQL's own."""
    return query.replace("{selector}", selector).replace("{window}", window)


# --- answers into judge inputs ----------------------------------------------------------


@dataclass(frozen=True)
class Scalar:
    """One number per version (e.g. output tokens per second), with the count of
    observations behind it when the template knows it (``None`` otherwise)."""

    value: float | None
    samples: float | None = None


Reading = Histogram | Ratio | Scalar


def histogram_from(samples: Sequence[Sample]) -> Histogram:
    """Cumulative buckets sorted by ``le`` (``+Inf`` last) from a ``sum by (le)`` answer.

    Counts from ``increase()`` are extrapolated floats: negative or non-finite ones are
    read as zero, and the judge copes with cumulative counts that dip by a fraction.
    """
    buckets: dict[float, float] = {}
    for sample in samples:
        raw = sample.labels.get("le")
        if raw is None:
            raise MetricShapeError(
                f"a histogram query answered a series without an 'le' label "
                f"({dict(sample.labels)}): aggregate with sum by (le)"
            )
        try:
            upper = float(raw)
        except ValueError as error:
            raise MetricShapeError(f"a histogram bucket has a bad 'le' label {raw!r}") from error
        if upper in buckets:
            raise MetricShapeError(
                f"a histogram query answered bucket le={raw} twice: aggregate with sum by (le) "
                "so that each bucket is one series"
            )
        buckets[upper] = sample.value if math.isfinite(sample.value) and sample.value > 0 else 0.0
    return Histogram(tuple(sorted(buckets.items())))


def total_of(samples: Sequence[Sample]) -> float | None:
    """The sum of a count query's answer; ``None`` when any element is not finite (0/0),
    so that a NaN never turns into a zero that looks like evidence."""
    values = [s.value for s in samples]
    if any(not math.isfinite(v) for v in values):
        return None
    return max(0.0, sum(values))


def scalar_of(samples: Sequence[Sample], *, query: str) -> float | None:
    """The one value of a scalar query; ``None`` when empty or not finite."""
    if not samples:
        return None
    if len(samples) > 1:
        raise MetricShapeError(
            f"a scalar query answered {len(samples)} series, not one: aggregate it "
            f"(sum, avg, max) to a single value: {query[:200]}"
        )
    value = samples[0].value
    return value if math.isfinite(value) else None


def ratio_from(events: float | None, total: float | None) -> Ratio:
    """A ratio of bad events; zero counts (inconclusive) when either side is unknown.
    Events are capped at the total: two counters scraped a moment apart can disagree."""
    if events is None or total is None or total <= 0:
        return Ratio(0.0, 0.0)
    return Ratio(min(events, total), total)


# --- templates ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Template:
    name: str
    check: Check

    def __post_init__(self) -> None:
        if self.check.name != self.name:
            object.__setattr__(self, "check", replace(self.check, name=self.name))

    def with_check(self, **overrides: Any) -> Self:
        """This template with some of its check's fields changed (margin, quantile,
        alpha, min_samples, max_value, detect, power, pod_spread); the name stays the
        template's."""
        overrides.pop("name", None)
        unknown = set(overrides) - {
            "margin", "quantile", "alpha", "min_samples", "max_value", "detect", "power",
            "pod_spread",
        }  # fmt: skip
        if unknown:
            raise ValueError(f"{self.name}: unknown check field(s) {sorted(unknown)}")
        return replace(self, check=replace(self.check, **overrides))


@dataclass(frozen=True)
class HistogramTemplate(_Template):
    """A latency histogram; ``query`` must answer one series per ``le``. ``metric`` (the
    histogram's name, without ``_bucket``) lets the sequential judge read it pod by pod;
    ``units``, a count query, says how many independent units (requests) are behind its
    observations when there are more observations than units (one per token)."""

    query: str = ""
    metric: str = ""
    units: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check_template(self.query)
        if self.units is not None:
            check_template(self.units)

    @classmethod
    def of(
        cls, name: str, metric: str, check: Check, *, units: str | None = None
    ) -> HistogramTemplate:
        query = f"sum by (le) (increase({metric}_bucket{{{{selector}}}}[{{window}}]))"
        return cls(name=name, check=check, query=query, metric=metric, units=units)

    def queries(self, *, selector: str, window: str) -> tuple[str, ...]:
        return (render(self.query, selector=selector, window=window),)

    def pod_queries(self, *, selector: str, window: str, unit_label: str) -> tuple[str, ...]:
        if not self.metric:
            raise MetricShapeError(
                f"{self.name}: the sequential judge reads histograms pod by pod and needs the "
                "template's metric name"
            )
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", unit_label):
            raise ValueError(f"{unit_label!r} is not a Prometheus label name")
        label = unit_label
        queries = [f"sum by ({label}, le) (increase({self.metric}_bucket{{{selector}}}[{window}]))"]
        if self.units is not None:
            queries.append(render(self.units, selector=selector, window=window))
        return tuple(queries)

    def read(self, source: MetricSource, *, selector: str, window: str, at: datetime) -> Histogram:
        (query,) = self.queries(selector=selector, window=window)
        return histogram_from(source.instant(query, at))

    def read_pods(
        self,
        source: MetricSource,
        *,
        selector: str,
        window: str,
        at: datetime,
        unit_label: str = "pod",
    ) -> PodHistograms:
        """The histogram over ``window`` per pod (series without the label form one
        group), and the count of independent units when the template has one."""
        queries = self.pod_queries(selector=selector, window=window, unit_label=unit_label)
        by_pod: dict[str, list[Sample]] = {}
        for sample in source.instant(queries[0], at):
            by_pod.setdefault(sample.labels.get(unit_label, ""), []).append(sample)
        pods = tuple(sorted((pod, histogram_from(samples)) for pod, samples in by_pod.items()))
        units = None
        if len(queries) > 1 and pods:
            units = total_of(source.instant(queries[1], at))
        return PodHistograms(pods, units)


@dataclass(frozen=True)
class RatioTemplate(_Template):
    """Bad events over all events (both count queries, summed over their series).
    The judge fails a canary whose share is *higher*, so ``events`` counts the bad ones."""

    events: str = ""
    total: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_template(self.events)
        check_template(self.total)

    def queries(self, *, selector: str, window: str) -> tuple[str, ...]:
        return (
            render(self.events, selector=selector, window=window),
            render(self.total, selector=selector, window=window),
        )

    def read(self, source: MetricSource, *, selector: str, window: str, at: datetime) -> Ratio:
        events_query, total_query = self.queries(selector=selector, window=window)
        answer = source.instant(total_query, at)
        total = total_of(answer)
        if total is None or total <= 0:
            # no traffic: no need to ask for the events
            return Ratio(0.0, 0.0, len(answer))
        ratio = ratio_from(total_of(source.instant(events_query, at)), total)
        return replace(ratio, series=len(answer))


@dataclass(frozen=True)
class ScalarTemplate(_Template):
    """One number per version. Without a statistical test, it is judged by its relative
    difference from stable (``margin``, in the direction that is worse) and its bound;
    ``samples`` (optional) counts the observations so that thin data is inconclusive."""

    query: str = ""
    samples: str | None = None
    higher_is_better: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        check_template(self.query)
        if self.samples is not None:
            check_template(self.samples)

    def queries(self, *, selector: str, window: str) -> tuple[str, ...]:
        queries = [render(self.query, selector=selector, window=window)]
        if self.samples is not None:
            queries.append(render(self.samples, selector=selector, window=window))
        return tuple(queries)

    def read_series(
        self,
        source: MetricSource,
        *,
        selector: str,
        interval: timedelta,
        start: datetime,
        end: datetime,
    ) -> list[tuple[float, float]]:
        """The value over each ``interval`` from ``start`` to ``end`` (one point per
        interval, ending at ``end``), for the sequential judge's paired comparison."""
        steps = int((end - start) / interval)
        if steps < 1:
            return []
        (query, *_) = self.queries(selector=selector, window=promql_duration(interval))
        series = source.range(query, end - steps * interval + interval, end, interval)
        if len(series) > 1:
            raise MetricShapeError(
                f"a scalar query answered {len(series)} series, not one: aggregate it "
                f"(sum, avg, max) to a single value: {query[:200]}"
            )
        if not series:
            return []
        return [(round(t, 3), v) for t, v in series[0].points if math.isfinite(v)]

    def read(self, source: MetricSource, *, selector: str, window: str, at: datetime) -> Scalar:
        queries = self.queries(selector=selector, window=window)
        value = scalar_of(source.instant(queries[0], at), query=queries[0])
        if len(queries) == 1:
            return Scalar(value, None)
        samples = total_of(source.instant(queries[1], at))
        return Scalar(value, samples if samples is not None else 0.0)


MetricTemplate = HistogramTemplate | RatioTemplate | ScalarTemplate


# --- vLLM's metrics -----------------------------------------------------------------------

# The OpenAI-compatible endpoints that do inference: health checks and /v1/models must not
# count as traffic (they would satisfy min_samples on a canary that served nothing).
INFERENCE_HANDLERS = "/v1/completions|/v1/chat/completions|/v1/embeddings|/v1/responses"
_HTTP = f'http_requests_total{{{{selector}},handler=~"{INFERENCE_HANDLERS}"'

TTFT = HistogramTemplate.of(
    "ttft", "vllm:time_to_first_token_seconds", Check("ttft", margin=0.10, min_samples=100)
)
TTFT_P99 = HistogramTemplate.of(
    "ttft_p99",
    "vllm:time_to_first_token_seconds",
    Check("ttft_p99", margin=0.10, quantile=0.99, min_samples=500),
)
INTER_TOKEN_LATENCY = HistogramTemplate.of(
    "inter_token_latency",
    "vllm:inter_token_latency_seconds",
    # one observation per generated token, so many more samples than requests; the tokens
    # of one request share its speed, so the sequential judge counts requests
    Check("inter_token_latency", margin=0.10, min_samples=200),
    units="sum(increase(vllm:e2e_request_latency_seconds_count{{selector}}[{window}]))",
)
E2E_LATENCY = HistogramTemplate.of(
    "e2e_latency", "vllm:e2e_request_latency_seconds", Check("e2e_latency", margin=0.10)
)
ERROR_RATE = RatioTemplate(
    name="error_rate",
    check=Check("error_rate", margin=0.005, min_samples=100),
    # prometheus-fastapi-instrumentator groups codes ("5xx"); ungrouped servers say "503":
    # the regex 5.. matches both
    events=f'sum(increase({_HTTP},status=~"5.."}}[{{window}}]))',
    total=f"sum(increase({_HTTP}}}[{{window}}]))",
)
REQUEST_FAILURE = RatioTemplate(
    name="request_failure",
    check=Check("request_failure", margin=0.005, min_samples=100),
    # vllm:request_success_total counts finished requests by reason; any reason but a
    # natural stop or the length limit (abort, error) is a failure
    events=(
        "sum(increase(vllm:request_success_total"
        '{{selector},finished_reason!~"stop|length"}[{window}]))'
    ),
    total="sum(increase(vllm:request_success_total{{selector}}[{window}]))",
)
THROUGHPUT = ScalarTemplate(
    name="throughput",
    # a version's raw tokens/s follows its traffic share; tokens per second of request
    # time does not, so canary and stable compare at any weight
    check=Check("throughput", margin=0.10, min_samples=50),
    query=(
        "sum(rate(vllm:generation_tokens_total{{selector}}[{window}])) / "
        "sum(rate(vllm:e2e_request_latency_seconds_sum{{selector}}[{window}]))"
    ),
    samples="sum(increase(vllm:e2e_request_latency_seconds_count{{selector}}[{window}]))",
    higher_is_better=True,
)

BUILTIN: Mapping[str, MetricTemplate] = {
    t.name: t
    for t in (
        TTFT,
        TTFT_P99,
        INTER_TOKEN_LATENCY,
        E2E_LATENCY,
        ERROR_RATE,
        REQUEST_FAILURE,
        THROUGHPUT,
    )
}
DEFAULT_METRICS = ("ttft", "inter_token_latency", "e2e_latency", "error_rate")

# --- the endpoint picker's metrics (adapters on a base pool) ------------------------------
#
# vLLM labels its histograms with the base model only (``model_name`` is the served base
# name, whatever adapter a request named), so two adapters on the same pods cannot be told
# apart there. The inference gateway's endpoint picker can: it labels each request with the
# model name the client sent (``model_name``) and the one it rewrote it to
# (``target_model_name``). Names are llm-d-router's (``llm_d_epp_*``, v0.9+); its older
# twins (``inference_objective_*``, the inference extension's EPP up to v1.5) carry the same
# labels but no TTFT outside the predicted-latency plugin.

EPP_TTFT = HistogramTemplate.of(
    "ttft", "llm_d_epp_request_ttft_seconds", Check("ttft", margin=0.10, min_samples=100)
)
EPP_TTFT_P99 = HistogramTemplate.of(
    "ttft_p99",
    "llm_d_epp_request_ttft_seconds",
    Check("ttft_p99", margin=0.10, quantile=0.99, min_samples=500),
)
EPP_E2E_LATENCY = HistogramTemplate.of(
    "e2e_latency", "llm_d_epp_request_duration_seconds", Check("e2e_latency", margin=0.10)
)
EPP_INTER_TOKEN_LATENCY = HistogramTemplate.of(
    # normalized time per output token: one observation per request
    "inter_token_latency",
    "llm_d_epp_request_ntpot_seconds",
    Check("inter_token_latency", margin=0.10, min_samples=100),
)
EPP_ERROR_RATE = RatioTemplate(
    name="error_rate",
    check=Check("error_rate", margin=0.005, min_samples=100),
    events="sum(increase(llm_d_epp_request_error_total{{selector}}[{window}]))",
    total="sum(increase(llm_d_epp_request_total{{selector}}[{window}]))",
)
ADAPTER_BUILTIN: Mapping[str, MetricTemplate] = {
    t.name: t
    for t in (EPP_TTFT, EPP_TTFT_P99, EPP_E2E_LATENCY, EPP_INTER_TOKEN_LATENCY, EPP_ERROR_RATE)
}
ADAPTER_DEFAULT_METRICS = ("ttft", "e2e_latency", "error_rate")


def custom_ratio(
    name: str, *, events: str, total: str, margin: float, **check: Any
) -> RatioTemplate:
    """A team's own ratio: two PromQL templates with ``{selector}`` and ``{window}``."""
    return RatioTemplate(
        name=name, check=Check(name, margin=margin, **check), events=events, total=total
    )


def custom_scalar(
    name: str,
    *,
    query: str,
    margin: float,
    samples: str | None = None,
    higher_is_better: bool = False,
    **check: Any,
) -> ScalarTemplate:
    """A team's own number per version (lower is better unless ``higher_is_better``)."""
    return ScalarTemplate(
        name=name,
        check=Check(name, margin=margin, **check),
        query=query,
        samples=samples,
        higher_is_better=higher_is_better,
    )


@dataclass(frozen=True)
class Catalog:
    """The templates a model can be judged on: the built-ins plus its own."""

    custom: Mapping[str, MetricTemplate] = field(default_factory=dict)
    builtin: Mapping[str, MetricTemplate] = field(default_factory=lambda: BUILTIN)
    defaults: tuple[str, ...] = DEFAULT_METRICS

    @classmethod
    def for_adapters(cls, custom: Mapping[str, MetricTemplate] | None = None) -> Catalog:
        """The endpoint picker's per-adapter metrics, for models served on a base pool."""
        return cls(custom or {}, ADAPTER_BUILTIN, ADAPTER_DEFAULT_METRICS)

    def resolve(
        self,
        names: Iterable[str] | None = None,
        overrides: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> list[MetricTemplate]:
        """The templates to measure, by name (the defaults when ``names`` is None), with
        per-metric check overrides such as ``{"ttft": {"margin": 0.2}}``."""
        known: dict[str, MetricTemplate] = {**self.builtin, **self.custom}
        wanted = list(self.defaults if names is None else names)
        missing = [n for n in [*wanted, *(overrides or {})] if n not in known]
        if missing:
            raise ValueError(
                f"unknown metric(s) {', '.join(sorted(set(missing)))}; "
                f"known: {', '.join(sorted(known))}"
            )
        idle = sorted(set(overrides or {}) - set(wanted))
        if idle:
            raise ValueError(
                f"checks for {', '.join(idle)}, which the step does not judge (it judges "
                f"{', '.join(wanted)}): add them to its metrics"
            )
        templates: list[MetricTemplate] = []
        for name in dict.fromkeys(wanted):
            template = known[name]
            if overrides and name in overrides:
                template = template.with_check(**overrides[name])
            templates.append(template)
        return templates
