"""A bounded load generator: requests to a stable and a canary URL in the proportion of a
canary weight, at a fixed concurrency, until a request count *or* a duration runs out.

The weight (percent of requests for the canary, 0-100) is a number, a callable, a file or a
URL that is re-read while the load runs, so a demo can follow a rollout's traffic split.
The split is deterministic (a running credit, not a coin toss): at weight 10 exactly every
tenth request goes to the canary, and at weight 0 none does. Only loopback URLs are
accepted: this tool must never load anyone else's server.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

MAX_REQUESTS = 1_000_000
MAX_SECONDS = 3600.0
MAX_CONCURRENCY = 256
WEIGHT_REFRESH_SECONDS = 0.5

WeightSource = float | int | str | Path | Callable[[], float]


def check_loopback(url: str) -> str:
    """``url`` without a trailing slash, or ValueError when it is not a loopback HTTP URL."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not host:
        raise ValueError(f"{url!r} is not an http(s) URL")
    loopback = host == "localhost"
    if not loopback:
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
    if not loopback:
        raise ValueError(
            f"refusing to send load to {host!r}: only loopback addresses (127.0.0.0/8, ::1, "
            "localhost) may be targeted"
        )
    return url.rstrip("/")


def _weight(value: Any, origin: str) -> float:
    if isinstance(value, dict):
        value = value.get("weight", value.get("canary_weight"))
    try:
        weight = float(value)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{origin}: {value!r} is not a canary weight") from error
    if not 0 <= weight <= 100:
        raise ValueError(f"{origin}: canary weight {weight} is not between 0 and 100")
    return weight


def _parse(text: str, origin: str) -> float:
    text = text.strip()
    try:
        value: Any = json.loads(text)
    except ValueError:
        value = text
    return _weight(value, origin)


class WeightReader:
    """The current canary weight from a file or a loopback URL, read at most every
    ``refresh`` seconds. A failed read keeps the last good weight (and is counted), so a
    writer replacing the file does not stop the load; the first read must succeed."""

    def __init__(self, source: str | Path, *, refresh: float = WEIGHT_REFRESH_SECONDS) -> None:
        self.source = str(source)
        self.is_url = self.source.startswith(("http://", "https://"))
        if self.is_url:
            check_loopback(self.source)
        self.refresh = refresh
        self.failures = 0
        self._read_at = -math.inf
        self._value = self._read()

    def _read(self) -> float:
        if self.is_url:
            response = httpx.get(self.source, timeout=1.0, trust_env=False)
            response.raise_for_status()
            return _parse(response.text, self.source)
        return _parse(Path(self.source).read_text(), self.source)

    def __call__(self) -> float:
        now = time.monotonic()
        if now - self._read_at >= self.refresh:
            self._read_at = now
            try:
                self._value = self._read()
            except (OSError, ValueError, httpx.HTTPError):
                self.failures += 1
        return self._value


def weight_function(source: WeightSource) -> Callable[[], float]:
    if callable(source):
        return lambda: _weight(source(), "weight callable")
    if isinstance(source, int | float):
        fixed = _weight(source, "weight")
        return lambda: fixed
    return WeightReader(source)


class Splitter:
    """Deterministic weighted routing: each request adds ``weight/100`` of credit, and a
    request goes to the canary whenever a whole unit has accrued."""

    def __init__(self) -> None:
        self.credit = 0.0

    def canary(self, weight: float) -> bool:
        self.credit += weight / 100
        if self.credit >= 1 - 1e-9:
            self.credit -= 1
            return True
        return False


@dataclass
class LoadReport:
    sent: dict[str, int] = field(default_factory=lambda: {"stable": 0, "canary": 0})
    statuses: dict[str, Counter[int]] = field(
        default_factory=lambda: {"stable": Counter(), "canary": Counter()}
    )
    served_by: Counter[str] = field(default_factory=Counter)  # x-simulator-version
    transport_errors: int = 0
    latencies: list[float] = field(default_factory=list)
    elapsed: float = 0.0
    stopped_by: str = ""  # "requests" or "duration"

    @property
    def total(self) -> int:
        return sum(self.sent.values())

    def ok(self, target: str) -> int:
        return sum(n for status, n in self.statuses[target].items() if status < 400)

    def failed(self, target: str) -> int:
        return sum(n for status, n in self.statuses[target].items() if status >= 400)

    def as_dict(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)

        def percentile(q: float) -> float | None:
            return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else None

        return {
            "sent": dict(self.sent),
            "statuses": {
                target: {str(status): n for status, n in sorted(counts.items())}
                for target, counts in self.statuses.items()
            },
            "served_by": dict(self.served_by),
            "transport_errors": self.transport_errors,
            "elapsed_seconds": round(self.elapsed, 3),
            "requests_per_second": round(self.total / self.elapsed, 1) if self.elapsed else None,
            "latency_p50_seconds": percentile(0.5),
            "latency_p95_seconds": percentile(0.95),
            "stopped_by": self.stopped_by,
        }


async def generate(
    stable_url: str,
    canary_url: str | None,
    weight: WeightSource,
    *,
    requests: int,
    seconds: float,
    concurrency: int = 8,
    model: str | None = None,
    max_tokens: int | None = None,
    chat: bool = False,
    timeout: float = 30.0,
) -> LoadReport:
    """Send at most ``requests`` requests for at most ``seconds`` (requests still in flight
    at the deadline get at most one more second)."""
    if not 1 <= requests <= MAX_REQUESTS:
        raise ValueError(f"requests must be between 1 and {MAX_REQUESTS}")
    if not 0 < seconds <= MAX_SECONDS:
        raise ValueError(f"seconds must be between 0 and {MAX_SECONDS}")
    if not 1 <= concurrency <= MAX_CONCURRENCY:
        raise ValueError(f"concurrency must be between 1 and {MAX_CONCURRENCY}")
    targets = {"stable": check_loopback(stable_url)}
    if canary_url is not None:
        targets["canary"] = check_loopback(canary_url)
    current_weight = weight_function(weight) if canary_url is not None else (lambda: 0.0)
    path = "/v1/chat/completions" if chat else "/v1/completions"
    body: dict[str, Any] = (
        {"messages": [{"role": "user", "content": "Say something plausible."}]}
        if chat
        else {"prompt": "Say something plausible."}
    )
    if model is not None:
        body["model"] = model
    if max_tokens is not None:
        body["max_tokens"] = max_tokens

    report, splitter = LoadReport(), Splitter()
    started = time.monotonic()
    deadline = started + seconds
    issued = 0

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal issued
        while True:
            now = time.monotonic()
            if issued >= requests or now >= deadline:
                return
            issued += 1
            target = "canary" if splitter.canary(current_weight()) else "stable"
            report.sent[target] += 1
            begun = time.monotonic()
            try:
                response = await client.post(
                    targets[target] + path,
                    json=body,
                    timeout=min(timeout, deadline - now + 1.0),
                )
            except httpx.HTTPError:
                report.transport_errors += 1
                continue
            report.latencies.append(time.monotonic() - begun)
            report.statuses[target][response.status_code] += 1
            version = response.headers.get("x-simulator-version")
            if version:
                report.served_by[version] += 1

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, trust_env=False) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    report.elapsed = time.monotonic() - started
    report.stopped_by = "requests" if issued >= requests else "duration"
    return report


def run(
    stable_url: str,
    canary_url: str | None,
    weight: WeightSource,
    *,
    requests: int,
    seconds: float,
    **options: Any,
) -> LoadReport:
    """:func:`generate` from synchronous code (not from inside a running event loop)."""
    return asyncio.run(
        generate(stable_url, canary_url, weight, requests=requests, seconds=seconds, **options)
    )
