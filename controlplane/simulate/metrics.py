"""vLLM's Prometheus metrics, written by hand in the text exposition format (0.0.4), so
that the simulator needs no metrics library and exposes exactly vLLM's names, labels and
bucket boundaries (vLLM 0.10/0.11, V1 engine: ``vllm/v1/metrics/loggers.py``).

Not thread-safe by design: the simulator updates it from one event loop.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence

TTFT_BUCKETS = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
    10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
)  # fmt: skip
INTER_TOKEN_BUCKETS = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0,
)  # fmt: skip
REQUEST_LATENCY_BUCKETS = (
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0,
    240.0, 480.0, 960.0, 1920.0, 7680.0,
)  # fmt: skip
FINISH_REASONS = ("stop", "length", "abort")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    inner = ",".join(f'{name}="{_escape(value)}"' for name, value in pairs)
    return f"{{{inner}}}" if inner else ""


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    return repr(float(value))


class Counter:
    kind = "counter"

    def __init__(self, name: str, help_text: str, label_names: Sequence[str]) -> None:
        self.name, self.help, self.label_names = name, help_text, tuple(label_names)
        self.values: dict[tuple[str, ...], float] = {}

    def touch(self, *labels: str) -> None:
        """Create a series at zero, so that ``increase()`` sees its first events."""
        self.values.setdefault(tuple(labels), 0.0)

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        key = tuple(labels)
        self.values[key] = self.values.get(key, 0.0) + amount

    def get(self, *labels: str) -> float:
        return self.values.get(tuple(labels), 0.0)

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]
        for key, value in sorted(self.values.items()):
            labels = _labels(zip(self.label_names, key, strict=True))
            lines.append(f"{self.name}{labels} {_number(value)}")
        return lines


class Gauge(Counter):
    kind = "gauge"

    def set(self, *labels: str, value: float) -> None:
        self.values[tuple(labels)] = value


class Histogram:
    def __init__(
        self, name: str, help_text: str, buckets: Sequence[float], labels: dict[str, str]
    ) -> None:
        self.name, self.help = name, help_text
        self.bounds = tuple(sorted(buckets))
        self.labels = tuple(sorted(labels.items()))
        self.counts = [0] * len(self.bounds)  # per bucket (not cumulative), +Inf apart
        self.count = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        for i, bound in enumerate(self.bounds):
            if value <= bound:
                self.counts[i] += 1
                break
        self.count += 1
        self.sum += value

    def cumulative(self) -> list[tuple[float, int]]:
        running, buckets = 0, []
        for bound, count in zip(self.bounds, self.counts, strict=True):
            running += count
            buckets.append((bound, running))
        buckets.append((math.inf, self.count))
        return buckets

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        for bound, cumulative in self.cumulative():
            labels = _labels(sorted((*self.labels, ("le", _number(bound)))))
            lines.append(f"{self.name}_bucket{labels} {_number(cumulative)}")
        labels = _labels(self.labels)
        lines.append(f"{self.name}_count{labels} {_number(self.count)}")
        lines.append(f"{self.name}_sum{labels} {_number(self.sum)}")
        return lines


class VllmMetrics:
    """The subset of vLLM's metrics the canary analysis reads, plus the HTTP request
    counter of prometheus-fastapi-instrumentator that vLLM's API server exposes."""

    def __init__(self, model_name: str, *, max_loras: int = 0) -> None:
        engine = {"model_name": model_name, "engine": "0"}
        self.max_loras = max_loras
        # vLLM's LoRA gauge: its value is when it was set, its labels say which adapters
        # have requests running or waiting (comma-separated), and the server's max_loras
        self.lora_info = Gauge(
            "vllm:lora_requests_info",
            "Running stats on lora requests.",
            ("running_lora_adapters", "waiting_lora_adapters", "max_lora"),
        )
        self.base = (model_name, "0")
        label_names = ("model_name", "engine")
        self.ttft = Histogram(
            "vllm:time_to_first_token_seconds",
            "Histogram of time to first token in seconds.",
            TTFT_BUCKETS,
            engine,
        )
        self.inter_token = Histogram(
            "vllm:inter_token_latency_seconds",
            "Histogram of inter-token latency in seconds.",
            INTER_TOKEN_BUCKETS,
            engine,
        )
        self.e2e = Histogram(
            "vllm:e2e_request_latency_seconds",
            "Histogram of e2e request latency in seconds.",
            REQUEST_LATENCY_BUCKETS,
            engine,
        )
        self.success = Counter(
            "vllm:request_success_total",
            "Count of successfully processed requests.",
            (*label_names, "finished_reason"),
        )
        for reason in FINISH_REASONS:
            self.success.touch(*self.base, reason)
        self.generation_tokens = Counter(
            "vllm:generation_tokens_total", "Number of generation tokens processed.", label_names
        )
        self.prompt_tokens = Counter(
            "vllm:prompt_tokens_total", "Number of prefill tokens processed.", label_names
        )
        self.generation_tokens.touch(*self.base)
        self.prompt_tokens.touch(*self.base)
        self.running = Gauge(
            "vllm:num_requests_running", "Number of requests in model execution batches.",
            label_names,
        )  # fmt: skip
        self.waiting = Gauge(
            "vllm:num_requests_waiting", "Number of requests waiting to be processed.",
            label_names,
        )  # fmt: skip
        self.running.set(*self.base, value=0)
        self.waiting.set(*self.base, value=0)
        self.http_requests = Counter(
            "http_requests_total", "Total number of requests by method, status and handler.",
            ("handler", "method", "status"),
        )  # fmt: skip
        # The instrumentator creates a series at its first request; we create the
        # inference ones at zero so that increase() over a short window sees every error.
        for handler in ("/v1/completions", "/v1/chat/completions"):
            for status in ("2xx", "5xx"):
                self.http_requests.touch(handler, "POST", status)

    def record_request(
        self,
        *,
        ttft: float,
        gaps: Sequence[float],
        prompt_tokens: int,
        output_tokens: int,
        finished_reason: str,
    ) -> None:
        self.ttft.observe(ttft)
        for gap in gaps:
            self.inter_token.observe(gap)
        self.e2e.observe(ttft + sum(gaps))
        self.success.inc(*self.base, finished_reason)
        self.generation_tokens.inc(*self.base, amount=output_tokens)
        self.prompt_tokens.inc(*self.base, amount=prompt_tokens)

    def set_lora_info(self, *, running: Sequence[str], waiting: Sequence[str]) -> None:
        self.lora_info.values.clear()
        self.lora_info.set(
            ",".join(running), ",".join(waiting), str(self.max_loras), value=time.time()
        )

    def add_running(self, delta: int) -> None:
        self.running.set(*self.base, value=self.running.get(*self.base) + delta)

    def render(self) -> str:
        families: list[Counter | Histogram] = [
            self.ttft,
            self.inter_token,
            self.e2e,
            self.success,
            self.generation_tokens,
            self.prompt_tokens,
            self.running,
            self.waiting,
            self.http_requests,
        ]
        if self.max_loras > 0:
            if not self.lora_info.values:
                self.set_lora_info(running=(), waiting=())
            families.append(self.lora_info)
        return "\n".join(line for family in families for line in family.render()) + "\n"
