"""The load generator against real simulated servers on loopback: the weighted split, its
bounds in requests and time, weights that change while it runs, and its refusal to load
anything but loopback."""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from controlplane.simulate import load
from controlplane.simulate.process import RunningServer, running_servers
from controlplane.simulate.server import ServerConfig


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[RunningServer, RunningServer]]:
    stable = ServerConfig(version="v1", time_scale=0.0, seed=1)
    canary = ServerConfig(version="v2", time_scale=0.0, seed=2, error_rate=0.5)
    with running_servers([stable, canary]) as (a, b):
        yield a, b


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8000", "http://127.3.4.5/x/", "http://localhost:1", "http://[::1]:80"]
)
def test_loopback_urls_are_accepted(url: str) -> None:
    assert load.check_loopback(url) == url.rstrip("/")


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1:8000",
        "http://example.com",
        "https://169.254.169.254/latest",
        "http://0.0.0.0:80",
        "ftp://127.0.0.1/",
        "127.0.0.1:8000",
    ],
)
def test_anything_but_loopback_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match=r"loopback|not an http"):
        load.check_loopback(url)


def test_no_request_is_sent_when_a_target_is_not_loopback(
    servers: tuple[RunningServer, RunningServer],
) -> None:
    stable, _ = servers
    with pytest.raises(ValueError, match="refusing"):
        load.run(stable.url, "http://192.0.2.1:8000", 50, requests=10, seconds=5)


@pytest.mark.parametrize(
    ("requests", "seconds", "concurrency"),
    [(0, 5, 1), (10, 0, 1), (10, 5, 0), (10, 7200, 1), (10_000_000, 5, 1)],
)
def test_unbounded_load_is_refused(requests: int, seconds: float, concurrency: int) -> None:
    with pytest.raises(ValueError, match="between"):
        load.run(
            "http://127.0.0.1:1",
            None,
            0,
            requests=requests,
            seconds=seconds,
            concurrency=concurrency,
        )


def test_the_split_follows_the_weight_exactly(
    servers: tuple[RunningServer, RunningServer],
) -> None:
    stable, canary = servers
    report = load.run(stable.url, canary.url, 25, requests=200, seconds=30, concurrency=4)
    assert report.sent == {"stable": 150, "canary": 50}
    assert report.served_by == {"v1": 150, "v2": 50}
    assert report.stopped_by == "requests"
    assert report.ok("stable") == 150
    assert report.failed("canary") > 0  # the canary fails half of its requests
    assert report.ok("canary") + report.failed("canary") == 50
    assert report.statuses["canary"].keys() <= {200, 500}
    assert report.transport_errors == 0


def test_weight_zero_sends_nothing_to_the_canary(
    servers: tuple[RunningServer, RunningServer],
) -> None:
    stable, canary = servers
    report = load.run(stable.url, canary.url, 0, requests=30, seconds=30)
    assert report.sent == {"stable": 30, "canary": 0}


def test_the_load_stops_when_its_time_is_up() -> None:
    slow = ServerConfig(ttft_median=0.05, ttft_spread=0.0, output_tokens=1, time_scale=1.0)
    with running_servers([slow]) as (server,):
        report = load.run(server.url, None, 0, requests=100_000, seconds=1.0, concurrency=2)
    assert report.stopped_by == "duration"
    assert 2 <= report.total < 100  # about 2 x 1 s / 50 ms, nowhere near the request bound
    assert report.transport_errors == 0


def test_a_changing_weight_is_followed_while_the_load_runs(
    servers: tuple[RunningServer, RunningServer],
) -> None:
    stable, canary = servers
    calls = iter(range(1000))

    def weight() -> float:
        return 0 if next(calls) < 20 else 100

    report = load.run(stable.url, canary.url, weight, requests=40, seconds=30, concurrency=1)
    assert report.sent == {"stable": 20, "canary": 20}


def test_the_weight_is_re_read_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "weight"
    path.write_text("10\n")
    reader = load.WeightReader(path, refresh=0)
    assert reader() == 10
    path.write_text('{"weight": 40}')
    assert reader() == 40
    path.write_text("garbage")
    assert reader() == 40  # a bad read keeps the last good weight
    assert reader.failures == 1
    path.write_text("150")
    with pytest.raises(ValueError, match="not between 0 and 100"):
        load.WeightReader(path)


def test_the_weight_is_read_from_a_loopback_url() -> None:
    class Weight(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"canary_weight": 30}).encode()
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), Weight) as httpd:
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        try:
            assert load.WeightReader(f"http://127.0.0.1:{httpd.server_address[1]}/w")() == 30
        finally:
            httpd.shutdown()
    with pytest.raises(ValueError, match="refusing"):
        load.WeightReader("http://203.0.113.9/weight")


def test_the_splitter_sends_every_tenth_request_at_weight_10() -> None:
    splitter = load.Splitter()
    picks = [splitter.canary(10) for _ in range(30)]
    assert [i for i, p in enumerate(picks) if p] == [9, 19, 29]


def test_the_command_line_prints_a_json_report(
    servers: tuple[RunningServer, RunningServer],
) -> None:
    stable, canary = servers
    command = [sys.executable, "-m", "controlplane.simulate", "load", "--requests", "20"]
    result = subprocess.run(
        [*command, "--stable", stable.url, "--canary", canary.url, "--weight", "50"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    report = json.loads(result.stdout)
    assert report["sent"] == {"stable": 10, "canary": 10}
    assert report["stopped_by"] == "requests"
    refused = subprocess.run(
        [*command, "--stable", "http://10.1.2.3:8000"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert refused.returncode == 2
    assert "only loopback" in refused.stderr
