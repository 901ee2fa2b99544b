"""The Prometheus HTTP API (``/api/v1/query``, ``/api/v1/query_range``) over an injected
``httpx.Client`` that carries the base URL and the timeouts.

Every failure is translated in one place (:func:`translate`) into our own tree, chained to
its cause: :class:`TemporaryPrometheusError` (unreachable, timeouts, 5xx, 429: try again
after ``delay`` seconds) or :class:`PermanentPrometheusError` (:class:`BadQueryError` for
a query Prometheus refuses, 422 for one it cannot execute, a URL that is not a Prometheus
API). Response bodies are truncated before they reach a message. An empty result is not an
error: it is ``[]``. Values are floats, NaN and +/-Inf included.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, TypeVar

import httpx

from controlplane import telemetry
from controlplane.analysis.metrics import MetricSourceError, Sample, Series

__all__ = [
    "BadQueryError",
    "PermanentPrometheusError",
    "PrometheusClient",
    "PrometheusError",
    "Sample",
    "Series",
    "TemporaryPrometheusError",
    "http_client",
    "translate",
]

MAX_BODY = 500  # characters of a response body kept in a message
MAX_MESSAGE = 1000
MAX_QUERY = 200  # characters of a query quoted in a message
MAX_DELAY = 300.0
T = TypeVar("T")
# errorType values that say "not now" rather than "not this query"
_TEMPORARY_TYPES = frozenset({"timeout", "canceled", "unavailable", "internal"})


class PrometheusError(MetricSourceError):
    def __init__(self, message: str, *, status: int | None = None, error_type: str = "") -> None:
        super().__init__(_truncate(message, MAX_MESSAGE))
        self.status = status
        self.error_type = error_type


class TemporaryPrometheusError(PrometheusError):
    """Asking again later may work: the server is down, slow, overloaded or restarting."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error_type: str = "",
        delay: float = 5.0,
    ) -> None:
        super().__init__(message, status=status, error_type=error_type)
        self.delay = delay

    @property
    def temporary(self) -> bool:
        return True


class PermanentPrometheusError(PrometheusError):
    """Asking again will get the same answer: fix the query or the configuration."""


class BadQueryError(PermanentPrometheusError):
    """Prometheus refused the query itself (``bad_data``): a PromQL syntax error, a bad
    duration, a range too long for the step."""


class _ErrorEnvelopeError(ValueError):
    """A 2xx response whose envelope says ``"status": "error"``."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__("error envelope")
        self.response = response


class _NotAnAnswerError(ValueError):
    """A 2xx response that is not a Prometheus API envelope."""

    def __init__(self, detail: str, response: httpx.Response) -> None:
        super().__init__(detail)
        self.response = response


def http_client(
    base_url: str, *, timeout: float = 10.0, headers: Mapping[str, str] | None = None
) -> httpx.Client:
    """An ``httpx.Client`` for :class:`PrometheusClient`; the caller closes it."""
    return httpx.Client(
        base_url=base_url.rstrip("/"),
        timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
        headers={"User-Agent": "controlplane-analysis", **(headers or {})},
    )


class PrometheusClient:
    def __init__(self, http: httpx.Client, *, query_timeout: timedelta | None = None) -> None:
        """``query_timeout`` is sent as the evaluation ``timeout`` parameter, so that a
        heavy query is stopped by Prometheus itself, not only abandoned by us."""
        self._http = http
        self._query_timeout = query_timeout

    @property
    def base_url(self) -> str:
        return str(self._http.base_url).rstrip("/")

    def instant(self, query: str, at: datetime | None = None) -> list[Sample]:
        """An instant query (at ``at``, or the server's now): one sample per series."""
        form = {"query": query}
        if at is not None:
            form["time"] = _timestamp(at)
        return self._call("/api/v1/query", form, query, _instant_result)

    def range(self, query: str, start: datetime, end: datetime, step: timedelta) -> list[Series]:
        """A range query: each series' points from ``start`` to ``end`` every ``step``."""
        if step.total_seconds() <= 0:
            raise ValueError(f"a range query's step must be positive, not {step}")
        if end < start:
            raise ValueError(f"a range query must end ({end}) after it starts ({start})")
        form = {
            "query": query,
            "start": _timestamp(start),
            "end": _timestamp(end),
            "step": f"{step.total_seconds():g}",
        }
        return self._call("/api/v1/query_range", form, query, _range_result)

    def _call(
        self, path: str, form: dict[str, str], query: str, parse: Callable[[Any, str], T]
    ) -> T:
        if self._query_timeout is not None:
            form = {**form, "timeout": f"{self._query_timeout.total_seconds():g}s"}
        action = f"Prometheus at {self.base_url}: query {_truncate(query, MAX_QUERY)!r}"
        started = time.perf_counter()
        try:
            response = self._http.post(path, data=form)
            response.raise_for_status()
            return parse(_envelope_data(response), query)
        except (httpx.HTTPError, ValueError, KeyError, TypeError, IndexError) as error:
            translated = translate(error, action=action)
            telemetry.PROMETHEUS_ERRORS.labels(_error_kind(translated)).inc()
            raise translated from error
        finally:
            telemetry.PROMETHEUS_SECONDS.observe(time.perf_counter() - started)


def _error_kind(error: PrometheusError) -> str:
    """A bounded label value: bad_query, temporary or permanent."""
    if isinstance(error, BadQueryError):
        return "bad_query"
    return "temporary" if error.temporary else "permanent"


def translate(error: Exception, *, action: str) -> PrometheusError:  # noqa: PLR0911
    """The one place where what went wrong on the wire becomes one of our errors."""
    if isinstance(error, httpx.TimeoutException):
        return TemporaryPrometheusError(
            f"{action}: timed out ({type(error).__name__})", error_type="timeout", delay=10.0
        )
    if isinstance(error, httpx.UnsupportedProtocol):
        return PermanentPrometheusError(f"{action}: bad Prometheus URL ({error})")
    if isinstance(error, httpx.TransportError):
        return TemporaryPrometheusError(
            f"{action}: unreachable ({type(error).__name__}: {error})", error_type="unreachable"
        )
    if isinstance(error, httpx.HTTPStatusError | _ErrorEnvelopeError):
        return _from_response(error.response, action)
    if isinstance(error, _NotAnAnswerError):
        body = _truncate(error.response.text, MAX_BODY)
        return PermanentPrometheusError(
            f"{action}: not a Prometheus API answer ({error}): {body!r}; is the URL the "
            "Prometheus server's base URL?",
            status=error.response.status_code,
        )
    if isinstance(error, httpx.HTTPError):
        return TemporaryPrometheusError(f"{action}: {type(error).__name__}: {error}")
    return PermanentPrometheusError(
        f"{action}: malformed answer ({type(error).__name__}: {_truncate(str(error), MAX_BODY)})"
    )


def _from_response(response: httpx.Response, action: str) -> PrometheusError:
    status = response.status_code
    error_type, detail = "", ""
    try:
        body = response.json()
        if isinstance(body, dict):
            error_type = str(body.get("errorType") or "")
            detail = str(body.get("error") or "")
    except ValueError:
        pass
    if not detail:
        detail = response.text.strip() or response.reason_phrase or f"HTTP {status}"
    detail = _truncate(detail, MAX_BODY)
    kind = f"{error_type}, " if error_type else ""
    message = f"{action}: {detail} ({kind}HTTP {status})"
    if status == 400 or error_type == "bad_data":
        return BadQueryError(message, status=status, error_type=error_type or "bad_data")
    if status == 429 or status >= 500 or error_type in _TEMPORARY_TYPES:
        return TemporaryPrometheusError(
            message,
            status=status,
            error_type=error_type,
            delay=_retry_after(response.headers.get("Retry-After")),
        )
    if status in (401, 403):
        return PermanentPrometheusError(
            f"{message}: not allowed; check the credentials", status=status, error_type=error_type
        )
    if status == 404:
        return PermanentPrometheusError(
            f"{message}: no Prometheus API here; is the URL the server's base URL?",
            status=status,
            error_type=error_type,
        )
    return PermanentPrometheusError(message, status=status, error_type=error_type)


def _envelope_data(response: httpx.Response) -> Any:
    try:
        body = response.json()
    except ValueError as error:
        raise _NotAnAnswerError("the body is not JSON", response) from error
    if not isinstance(body, dict) or "status" not in body:
        raise _NotAnAnswerError("no 'status' in the body", response)
    if body["status"] != "success":
        raise _ErrorEnvelopeError(response)
    return body.get("data")


def _instant_result(data: Any, query: str) -> list[Sample]:
    result_type, result = data["resultType"], data["result"]
    if result_type == "vector":
        return [Sample(_labels(item["metric"]), _value(item, query)) for item in result]
    if result_type == "scalar":
        return [Sample({}, float(result[1]))]
    raise BadQueryError(
        f"query {_truncate(query, MAX_QUERY)!r} answered a {result_type}, not an instant "
        "vector: use range() for a range vector, or aggregate it",
        error_type="bad_data",
    )


def _range_result(data: Any, query: str) -> list[Series]:
    if data["resultType"] != "matrix":
        raise BadQueryError(
            f"range query {_truncate(query, MAX_QUERY)!r} answered a {data['resultType']}",
            error_type="bad_data",
        )
    series = []
    for item in data["result"]:
        if "values" not in item:
            raise BadQueryError(_native_histogram(query), error_type="bad_data")
        points = tuple((float(t), float(v)) for t, v in item["values"])
        series.append(Series(_labels(item["metric"]), points))
    return series


def _value(item: dict[str, Any], query: str) -> float:
    if "value" not in item:
        raise BadQueryError(_native_histogram(query), error_type="bad_data")
    return float(item["value"][1])  # "NaN", "+Inf" and "-Inf" included


def _native_histogram(query: str) -> str:
    return (
        f"query {_truncate(query, MAX_QUERY)!r} answered native histograms, which are not "
        "supported: query the classic _bucket series"
    )


def _labels(metric: Any) -> dict[str, str]:
    if not isinstance(metric, dict):
        raise TypeError(f"a series' labels are not an object: {json.dumps(metric)[:100]}")
    return {str(k): str(v) for k, v in metric.items()}


def _timestamp(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("Prometheus times must be aware datetimes (UTC): naive ones are ambiguous")
    return f"{moment.timestamp():.3f}"


def _retry_after(header: str | None) -> float:
    try:
        delay = float(header) if header else 5.0
    except ValueError:
        return 5.0  # an HTTP date: not worth parsing for a hint
    return min(max(delay, 1.0), MAX_DELAY)


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "...(truncated)"
