"""The Prometheus client's parsing and its translation of every failure into our tree,
against canned answers (``httpx.MockTransport``); tests/analysis/test_prometheus_real.py
runs it against a real server."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from controlplane.analysis.prometheus import (
    BadQueryError,
    PermanentPrometheusError,
    PrometheusClient,
    PrometheusError,
    Sample,
    TemporaryPrometheusError,
)

BASE = "http://prometheus.test:9090"
AT = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def client(handler: Callable[[httpx.Request], httpx.Response], **options: Any) -> PrometheusClient:
    return PrometheusClient(
        httpx.Client(base_url=BASE, transport=httpx.MockTransport(handler)), **options
    )


def answer(data: Any, status: int = 200, **headers: str) -> Callable[..., httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=data, headers=headers)

    return handler


def vector(*items: tuple[dict[str, str], str]) -> dict[str, Any]:
    result = [{"metric": labels, "value": [1764331200.0, value]} for labels, value in items]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


def error(error_type: str, message: str) -> dict[str, str]:
    return {"status": "error", "errorType": error_type, "error": message}


def test_instant_posts_the_query_and_time_as_a_form() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=vector(({"le": "0.1"}, "3")))

    samples = client(handler, query_timeout=timedelta(seconds=20)).instant("up", AT)
    assert samples == [Sample({"le": "0.1"}, 3.0)]
    (request,) = seen
    assert request.method == "POST"
    assert request.url.path == "/api/v1/query"
    form = parse_qs(request.content.decode())
    assert form == {"query": ["up"], "time": [f"{AT.timestamp():.3f}"], "timeout": ["20s"]}


def test_nan_and_infinities_are_floats_not_errors() -> None:
    answers = vector(({"a": "1"}, "NaN"), ({"a": "2"}, "+Inf"), ({"a": "3"}, "-Inf"))
    values = [s.value for s in client(answer(answers)).instant("x")]
    assert math.isnan(values[0])
    assert values[1:] == [math.inf, -math.inf]


def test_an_empty_result_is_an_empty_list_not_an_error() -> None:
    assert client(answer(vector())).instant("absent_metric") == []


def test_a_scalar_answer_is_one_sample_without_labels() -> None:
    body = {"status": "success", "data": {"resultType": "scalar", "result": [1.0, "2.5"]}}
    assert client(answer(body)).instant("2.5") == [Sample({}, 2.5)]


def test_a_range_vector_answer_to_an_instant_query_is_a_bad_query() -> None:
    body = {"status": "success", "data": {"resultType": "matrix", "result": []}}
    with pytest.raises(BadQueryError, match="range vector"):
        client(answer(body)).instant("up[5m]")


def test_range_sends_start_end_step_and_parses_points() -> None:
    seen: list[dict[str, list[str]]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/v1/query_range"
        seen.append(parse_qs(request.content.decode()))
        result = [{"metric": {"job": "a"}, "values": [[1.0, "1"], [16.0, "NaN"]]}]
        return httpx.Response(
            200, json={"status": "success", "data": {"resultType": "matrix", "result": result}}
        )

    (series,) = client(handler).range("up", AT - timedelta(minutes=1), AT, timedelta(seconds=15))
    assert series.labels == {"job": "a"}
    assert series.points[0] == (1.0, 1.0)
    assert math.isnan(series.points[1][1])
    assert seen[0]["step"] == ["15"]
    assert float(seen[0]["end"][0]) - float(seen[0]["start"][0]) == pytest.approx(60)


def test_range_refuses_a_backwards_window_or_a_zero_step() -> None:
    prometheus = client(answer(vector()))
    with pytest.raises(ValueError, match="step"):
        prometheus.range("up", AT, AT, timedelta(0))
    with pytest.raises(ValueError, match="after it starts"):
        prometheus.range("up", AT, AT - timedelta(seconds=1), timedelta(seconds=1))


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        client(answer(vector())).instant("up", datetime(2026, 1, 1))  # noqa: DTZ001


def test_bad_data_is_a_bad_query_with_prometheus_message() -> None:
    body = error("bad_data", 'invalid parameter "query": 1:5: parse error: unclosed left paren')
    with pytest.raises(BadQueryError) as caught:
        client(answer(body, 400)).instant("sum(")
    assert isinstance(caught.value, PermanentPrometheusError)
    assert not caught.value.temporary
    assert caught.value.status == 400
    assert caught.value.error_type == "bad_data"
    assert "unclosed left paren" in caught.value.message
    assert "query 'sum('" in caught.value.message
    assert isinstance(caught.value.__cause__, httpx.HTTPStatusError)


def test_unprocessable_is_permanent_but_not_a_bad_query() -> None:
    body = error("execution", "found duplicate series for the match group")
    with pytest.raises(PermanentPrometheusError) as caught:
        client(answer(body, 422)).instant("a / on() b")
    assert not isinstance(caught.value, BadQueryError)
    assert caught.value.error_type == "execution"
    assert "duplicate series" in caught.value.message


@pytest.mark.parametrize(
    ("status", "headers", "delay"),
    [
        (503, {}, 5.0),
        (503, {"Retry-After": "12"}, 12.0),
        (429, {"Retry-After": "7"}, 7.0),
        (429, {"Retry-After": "Wed, 21 Oct 2026 07:28:00 GMT"}, 5.0),
        (500, {"Retry-After": "100000"}, 300.0),
        (502, {}, 5.0),
    ],
)
def test_overload_and_server_errors_are_temporary_with_a_delay(
    status: int, headers: dict[str, str], delay: float
) -> None:
    body = error("timeout", "query timed out in expression evaluation")
    with pytest.raises(TemporaryPrometheusError) as caught:
        client(answer(body, status, **headers)).instant("up")
    assert caught.value.temporary
    assert caught.value.delay == delay
    assert caught.value.status == status


def test_an_error_envelope_in_a_2xx_answer_is_classified_by_its_type() -> None:
    with pytest.raises(TemporaryPrometheusError):
        client(answer(error("canceled", "query was canceled"))).instant("up")
    with pytest.raises(BadQueryError):
        client(answer(error("bad_data", "nope"))).instant("up")


def test_a_proxy_error_page_is_truncated_in_the_message() -> None:
    page = "<html>" + "x" * 10_000 + "</html>"

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text=page)

    with pytest.raises(TemporaryPrometheusError) as caught:
        client(handler).instant("up")
    assert "(truncated)" in caught.value.message
    assert len(caught.value.message) < 1200


@pytest.mark.parametrize(
    ("failure", "kind"),
    [
        (httpx.ConnectError("[Errno 111] Connection refused"), "unreachable"),
        (httpx.ReadTimeout("timed out"), "timed out"),
        (httpx.ConnectTimeout("timed out"), "timed out"),
        (httpx.RemoteProtocolError("Server disconnected"), "unreachable"),
    ],
)
def test_transport_failures_are_temporary_and_chained(
    failure: httpx.TransportError, kind: str
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise failure

    with pytest.raises(TemporaryPrometheusError) as caught:
        client(handler).instant("up")
    assert kind in caught.value.message
    assert BASE in caught.value.message
    assert caught.value.__cause__ is failure


def test_an_answer_that_is_not_the_prometheus_api_is_permanent() -> None:
    def html(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>Grafana</html>")

    with pytest.raises(PermanentPrometheusError, match="not a Prometheus API answer"):
        client(html).instant("up")
    with pytest.raises(PermanentPrometheusError, match="not a Prometheus API answer"):
        client(answer({"hello": "world"})).instant("up")
    with pytest.raises(PermanentPrometheusError, match="malformed"):
        client(answer({"status": "success", "data": {"result": []}})).instant("up")


@pytest.mark.parametrize(("status", "hint"), [(404, "base URL"), (401, "credentials")])
def test_wrong_url_or_credentials_are_permanent_with_a_hint(status: int, hint: str) -> None:
    with pytest.raises(PermanentPrometheusError, match=hint):
        client(answer({"detail": "no"}, status)).instant("up")


def test_a_long_query_is_shortened_in_messages() -> None:
    query = "sum(" + "a + " * 500 + "b)"
    with pytest.raises(PrometheusError) as caught:
        client(answer(error("bad_data", "bad"), 400)).instant(query)
    assert len(caught.value.message) < 600
    assert json.dumps(caught.value.message)  # one line, printable


def test_every_query_is_timed_and_failures_are_counted_by_kind() -> None:
    from controlplane import telemetry

    def count(kind: str) -> float:
        value = telemetry.REGISTRY.get_sample_value(
            "controlplane_prometheus_errors_total", {"kind": kind}
        )
        return value or 0.0

    def timed() -> float:
        value = telemetry.REGISTRY.get_sample_value(
            "controlplane_prometheus_request_duration_seconds_count"
        )
        return value or 0.0

    before = {kind: count(kind) for kind in ("bad_query", "temporary", "permanent")}
    queries = timed()
    client(answer(vector(({}, "1")))).instant("up", AT)
    with pytest.raises(BadQueryError):
        client(answer(error("bad_data", "parse error"), 400)).instant("up{", AT)
    with pytest.raises(TemporaryPrometheusError):
        client(answer({}, 503)).instant("up", AT)
    assert timed() - queries == 3
    after = {kind: count(kind) for kind in before}
    assert {k: after[k] - before[k] for k in after} == {
        "bad_query": 1,
        "temporary": 1,
        "permanent": 0,
    }
