"""The canary analysis against a real Prometheus scraping real simulated vLLM servers.

One stable server (v1) and four canaries (v2) run as processes; Prometheus scrapes them
every second under four models, each pairing the same stable server with one canary:
``same`` (an identical canary), ``slow`` (+300 ms TTFT), ``errors`` (20% of requests
answer 500) and ``idle`` (a canary that gets no traffic). Bounded load at 50% canary
weight runs once; each test then judges one pair from what Prometheus stored. The
servers sleep 1% of the latencies they record, so this runs in seconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from controlplane.analysis.judge import FixedSampleJudge
from controlplane.analysis.measure import Measurement, measure
from controlplane.analysis.metrics import BUILTIN, DEFAULT_METRICS, Catalog, custom_ratio
from controlplane.analysis.prometheus import (
    BadQueryError,
    PrometheusClient,
    TemporaryPrometheusError,
    http_client,
)
from controlplane.analysis.verdict import Verdict
from controlplane.simulate import load
from controlplane.simulate.process import RunningServer, free_port, running_servers
from controlplane.simulate.prometheus import PrometheusServer, ScrapeJob, prometheus_server
from controlplane.simulate.server import ServerConfig

pytestmark = pytest.mark.prometheus

NAMESPACE = "llm"
BASE = ServerConfig(model="chat", ttft_median=0.2, output_tokens=8, time_scale=0.01)
STABLE = replace(BASE, version="v1", seed=1)
CANARIES = {
    "same": replace(BASE, version="v2", seed=2),
    "slow": replace(BASE, version="v2", seed=3, latency_offset=0.3),
    "errors": replace(BASE, version="v2", seed=4, error_rate=0.2),
    "idle": replace(BASE, version="v2", seed=5),
}
LOADED = ("same", "slow", "errors")
REQUESTS_PER_PAIR = 300  # at 50%: 150 to each canary, 450 to stable in all


@dataclass(frozen=True)
class Cluster:
    prometheus: PrometheusServer
    client: PrometheusClient
    servers: dict[str, RunningServer]
    reports: dict[str, load.LoadReport]


def _requests_served(server: RunningServer) -> float:
    """The server's own count of answered requests, read from its /metrics."""
    text = httpx.get(f"{server.url}/metrics", timeout=5, trust_env=False).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("http_requests_total{")
    )


def _all_equal(result: list[dict[str, Any]], expected: float) -> bool:
    return bool(result) and all(float(r["value"][1]) == expected for r in result)


def _all_after(result: list[dict[str, Any]], moment: float) -> bool:
    return bool(result) and all(float(r["value"][1]) > moment for r in result)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    names = ["stable", *CANARIES]
    configs = [STABLE, *CANARIES.values()]
    ports = dict(zip(names, (free_port() for _ in names), strict=True))
    jobs = []
    for model in CANARIES:
        for version, server in (("v1", "stable"), ("v2", model)):
            labels = {"namespace": NAMESPACE, "model": model, "version": version}
            jobs.append(ScrapeJob(f"{model}-{version}", [f"127.0.0.1:{ports[server]}"], labels))
    with (
        prometheus_server(jobs) as prometheus,
        running_servers(configs, ports=list(ports.values())) as started,
        http_client(prometheus.url, timeout=5.0) as http,
    ):
        servers = dict(zip(names, started, strict=True))
        # every series must be scraped at zero before the load, or increase() misses the
        # first requests (Prometheus applies new targets up to 5 s after it starts)
        prometheus.wait_until(
            "every target up", lambda: len(prometheus.query("up == 1")) == len(jobs)
        )

        async def run_all() -> list[load.LoadReport]:
            return await asyncio.gather(
                *(
                    load.generate(
                        servers["stable"].url,
                        servers[model].url,
                        50,
                        requests=REQUESTS_PER_PAIR,
                        seconds=30,
                        concurrency=4,
                    )
                    for model in LOADED
                )
            )

        reports = dict(zip(LOADED, asyncio.run(run_all()), strict=True))
        for name, server in servers.items():
            served = _requests_served(server)
            query = f'sum by (job) (http_requests_total{{instance="{server.address}"}})'
            prometheus.wait_until(
                f"{name}'s {served:.0f} requests scraped",
                lambda q=query, n=served: _all_equal(prometheus.query(q), n),
            )
        # two more scrapes of the final values: increase() extrapolates the last sample to
        # the end of the window, by up to (scrape interval / time sampled)
        settled = time.time() + 2
        prometheus.wait_until(
            "two more scrapes", lambda: _all_after(prometheus.query("timestamp(up)"), settled)
        )
        yield Cluster(prometheus, PrometheusClient(http), servers, reports)


def _measure(cluster: Cluster, model: str, names: tuple[str, ...] = DEFAULT_METRICS) -> Measurement:
    return measure(
        cluster.client,
        FixedSampleJudge(),
        Catalog().resolve(names),
        namespace=NAMESPACE,
        model=model,
        canary_version="v2",
        stable_version="v1",
        window=timedelta(minutes=5),
        at=datetime.now(UTC),
    )


def _by_metric(measurement: Measurement) -> dict[str, tuple[Verdict, str]]:
    return {m.metric: (m.verdict, m.message) for m in measurement.metrics}


def test_the_load_reached_every_server_it_was_meant_to(cluster: Cluster) -> None:
    for model in LOADED:
        report = cluster.reports[model]
        assert report.sent == {"stable": 150, "canary": 150}
        assert report.transport_errors == 0
    assert cluster.reports["errors"].failed("canary") > 0
    assert _requests_served(cluster.servers["idle"]) == 0


def test_an_identical_canary_passes(cluster: Cluster) -> None:
    measurement = _measure(cluster, "same")
    verdicts = _by_metric(measurement)
    assert verdicts["ttft"][0] is Verdict.PASS, verdicts["ttft"][1]
    assert verdicts["error_rate"][0] is Verdict.PASS, verdicts["error_rate"][1]
    assert measurement.verdict is Verdict.PASS, measurement.summary
    ttft = next(m for m in measurement.metrics if m.metric == "ttft")
    # every request, plus increase()'s extrapolation to the end of the window
    assert 150 <= ttft.canary_samples <= 150 * 1.5
    assert 450 <= ttft.stable_samples <= 450 * 1.5


def test_a_canary_300ms_slower_to_first_token_fails_with_the_numbers(cluster: Cluster) -> None:
    measurement = _measure(cluster, "slow")
    verdict, message = _by_metric(measurement)["ttft"]
    assert verdict is Verdict.FAIL
    assert measurement.verdict is Verdict.FAIL
    ttft = next(m for m in measurement.metrics if m.metric == "ttft")
    assert ttft.canary_value is not None
    assert ttft.stable_value is not None
    assert ttft.canary_value - ttft.stable_value > 0.15
    assert f"canary {ttft.canary_value:.4g} vs stable {ttft.stable_value:.4g}" in message
    assert "p95" in message
    others = {name: v for name, (v, _) in _by_metric(measurement).items() if name != "ttft"}
    # the offset delays the first token, so the whole request, but not the tokens after it
    assert others == {
        "e2e_latency": Verdict.FAIL,
        "inter_token_latency": Verdict.PASS,
        "error_rate": Verdict.PASS,
    }
    assert measurement.summary.startswith("fail: ")
    assert "[4 metrics: 2 fail, 2 pass]" in measurement.summary


def test_a_canary_with_20_percent_errors_fails_on_error_rate(cluster: Cluster) -> None:
    measurement = _measure(cluster, "errors")
    verdict, message = _by_metric(measurement)["error_rate"]
    assert verdict is Verdict.FAIL, message
    errors = next(m for m in measurement.metrics if m.metric == "error_rate")
    assert errors.canary_value is not None
    assert 0.1 < errors.canary_value < 0.3
    assert errors.stable_value == 0
    assert measurement.verdict is Verdict.FAIL
    assert measurement.summary.startswith("fail: error_rate canary")


def test_a_canary_without_traffic_is_inconclusive_never_pass_or_fail(cluster: Cluster) -> None:
    measurement = _measure(cluster, "idle", tuple(BUILTIN))
    for metric in measurement.metrics:
        assert metric.verdict is Verdict.INCONCLUSIVE, metric.message
        assert metric.canary_samples == 0 or metric.canary_value is None
    assert measurement.verdict is Verdict.INCONCLUSIVE
    assert "too few samples" in measurement.summary or "no data" in measurement.summary


def test_a_version_prometheus_has_never_seen_is_inconclusive(cluster: Cluster) -> None:
    measurement = measure(
        cluster.client,
        FixedSampleJudge(),
        Catalog().resolve(),
        namespace=NAMESPACE,
        model="same",
        canary_version="v9",
        stable_version="v1",
        window=timedelta(minutes=5),
        at=datetime.now(UTC),
    )
    assert {m.verdict for m in measurement.metrics} == {Verdict.INCONCLUSIVE}


def test_a_broken_custom_query_is_an_error_for_that_metric_only(cluster: Cluster) -> None:
    broken = custom_ratio(
        "broken",
        events="sum(rate(x{{selector}}[{window}]))",
        total="sum(rate(x{{selector}}[{window}])",  # unbalanced parenthesis
        margin=0.01,
    )
    measurement = measure(
        cluster.client,
        FixedSampleJudge(),
        [*Catalog().resolve(["ttft"]), broken],
        namespace=NAMESPACE,
        model="same",
        canary_version="v2",
        stable_version="v1",
        window=timedelta(minutes=5),
        at=datetime.now(UTC),
    )
    verdicts = _by_metric(measurement)
    assert verdicts["ttft"][0] is Verdict.PASS
    assert verdicts["broken"][0] is Verdict.ERROR
    assert "bad_data" in verdicts["broken"][1]
    assert measurement.verdict is Verdict.ERROR


def test_the_client_reads_nan_scalars_empty_results_and_ranges(cluster: Cluster) -> None:
    client = cluster.client
    (nan,) = client.instant("0/0")
    assert nan.value != nan.value  # NaN
    (inf,) = client.instant("vector(1/0)")
    assert inf.value == float("inf")
    assert client.instant('up{job="no-such-job"}') == []
    now = datetime.now(UTC)
    series = client.range(
        'up{model="same"}', now - timedelta(seconds=10), now, timedelta(seconds=1)
    )
    assert {s.labels["version"] for s in series} == {"v1", "v2"}
    assert all(len(s.points) >= 5 and s.points[-1][1] == 1.0 for s in series)
    with pytest.raises(BadQueryError) as bad:
        client.instant("sum(")
    assert bad.value.status == 400
    assert bad.value.error_type == "bad_data"
    assert "sum(" in bad.value.message


def test_prometheus_down_gives_error_verdicts_with_a_clear_message() -> None:
    with prometheus_server() as prometheus, http_client(prometheus.url, timeout=2.0) as http:
        client = PrometheusClient(http)
        assert client.instant("vector(1)")[0].value == 1.0
        prometheus.stop()
        with pytest.raises(TemporaryPrometheusError) as down:
            client.instant("vector(1)")
        measurement = measure(
            client,
            FixedSampleJudge(),
            Catalog().resolve(),
            namespace=NAMESPACE,
            model="chat",
            canary_version="v2",
            stable_version="v1",
            window=timedelta(minutes=5),
            at=datetime.now(UTC),
        )
    assert "unreachable" in down.value.message
    assert prometheus.url in down.value.message
    assert measurement.verdict is Verdict.ERROR
    assert [m.verdict for m in measurement.metrics] == [Verdict.ERROR] * len(DEFAULT_METRICS)
    first, *rest = measurement.metrics
    assert f"Prometheus at {prometheus.url}" in first.message
    assert "unreachable" in first.message
    assert all("not measured" in m.message for m in rest)
    assert measurement.summary.startswith("error: ttft: Prometheus at")
