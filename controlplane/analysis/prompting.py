"""Asking a model: an eval item sent to an OpenAI-compatible server (vLLM's
``/v1/chat/completions``), temperature 0, with a timeout and retries, and a pool of
requests at once over one or several addresses of the same version.

Nothing here scores or judges; a request that fails after its retries is a reply with an
``error`` (never an empty answer that a scorer would count as wrong). Server error bodies
are cut short before they are kept: an answer is data, a log line is not the place for it.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable

import httpx

from controlplane.analysis.asking import Reply, Target
from controlplane.evalsuite import EvalItem

RETRYABLE = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


class Asker:
    """Sends items to one target. Thread-safe: one ``httpx.Client`` shared by the pool."""

    def __init__(
        self,
        target: Target,
        *,
        timeout: float,
        retries: int,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not target.urls:
            raise ValueError("a target needs at least one address")
        self.target = target
        self.timeout = timeout
        self.retries = retries
        self.client = client or httpx.Client(trust_env=False, timeout=timeout)
        self._owns = client is None
        self._urls = itertools.cycle(target.urls)
        self._lock = threading.Lock()
        self._model = target.model
        self.sleep = sleep

    def close(self) -> None:
        if self._owns:
            self.client.close()

    def _next_url(self) -> str:
        with self._lock:
            return next(self._urls)

    def model(self) -> str:
        """The model name to ask for: the target's, or the first base model the server
        lists (a full-weights version serves under whatever --served-model-name says)."""
        if self._model is not None:
            return self._model
        last: Exception | None = None
        for url in self.target.urls:
            try:
                response = self.client.get(f"{url}/v1/models", timeout=min(self.timeout, 10))
                response.raise_for_status()
                data = response.json().get("data") or []
                names = [d["id"] for d in data if isinstance(d, dict) and not d.get("parent")]
                if names:
                    self._model = str(names[0])
                    return self._model
                last = ValueError("it lists no model")
            except (httpx.HTTPError, ValueError, KeyError, AttributeError) as error:
                last = error
        raise ConnectionError(f"cannot read the served model name: {last}")

    def ask(self, item: EvalItem) -> Reply:
        started = time.monotonic()
        body = {
            "model": self.model(),
            "messages": item.chat(),
            "temperature": 0,
            "max_tokens": item.max_tokens,
            "stream": False,
        }
        error = "not sent"
        for attempt in range(1, self.retries + 2):
            if attempt > 1:
                self.sleep(min(8.0, 0.5 * 2 ** (attempt - 2)))
            try:
                response = self.client.post(
                    f"{self._next_url()}/v1/chat/completions", json=body, timeout=self.timeout
                )
            except httpx.TimeoutException:
                error = f"no answer within {self.timeout:g}s"
                continue
            except httpx.HTTPError as failure:
                error = f"request failed: {type(failure).__name__}"
                continue
            if response.status_code != 200:
                error = f"HTTP {response.status_code}: {response.text[:200]}"
                if response.status_code in RETRYABLE:
                    continue
                break
            try:
                data = response.json()
                choice = data["choices"][0]
                text = choice.get("message", {}).get("content")
                if text is None:
                    text = choice.get("text", "")
                usage = data.get("usage") or {}
            except (ValueError, KeyError, IndexError, TypeError, AttributeError):
                error = "not an OpenAI-compatible answer"
                continue
            return Reply(
                text=str(text),
                error=None,
                seconds=time.monotonic() - started,
                prompt_tokens=int(usage.get("prompt_tokens") or 0),
                completion_tokens=int(usage.get("completion_tokens") or 0),
                attempts=attempt,
            )
        return Reply("", error[:500], time.monotonic() - started, 0, 0, self.retries + 1)
