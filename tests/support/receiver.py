"""A real webhook receiver on 127.0.0.1 (http.server in a thread) that records every POST.

Per path it can fail (500) the first N times, fail always, or be slow; with
``fail_each_delivery_once`` it answers 503 to the first attempt of every delivery (told
apart by ``X-Controlplane-Delivery``), so that each one has to be retried."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    status: int = 0


def signed(secret: str, request: Received) -> bool:
    """What a receiver checks: the signature over the delivery id, the timestamp and the
    raw body, and that the timestamp is recent (controlplane.webhooks.signing.verify)."""
    from controlplane.webhooks import signing

    return signing.verify(
        secret,
        request.body,
        request.headers.get(signing.SIGNATURE_HEADER),
        request.headers.get(signing.TIMESTAMP_HEADER),
        request.headers.get(signing.DELIVERY_HEADER),
    )


@dataclass
class Receiver:
    url: str = ""
    requests: list[Received] = field(default_factory=list)
    fail_first: dict[str, int] = field(default_factory=dict)
    always_fail: set[str] = field(default_factory=set)
    slow: dict[str, float] = field(default_factory=dict)
    fail_each_delivery_once: bool = False
    echo_path: bool = False  # refusals say "Cannot POST <path>", as many servers' 404s do
    released: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _seen: set[str] = field(default_factory=set)

    def to(self, path: str) -> str:
        return f"{self.url}{path}"

    def at(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.path == path]

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> int:
        received = Received(path, headers, body, time.monotonic())
        with self.lock:
            self.requests.append(received)
            failing = self.fail_first.get(path, 0)
            if failing:
                self.fail_first[path] = failing - 1
            delivery = headers.get("X-Controlplane-Delivery", "")
            if self.fail_each_delivery_once and delivery not in self._seen:
                self._seen.add(delivery)
                received.status = 503
                return 503
        if path in self.slow:
            self.released.wait(self.slow[path])
        received.status = 500 if failing or path in self.always_fail else 200
        return received.status


@contextmanager
def receiving(state: Receiver | None = None) -> Iterator[Receiver]:
    state = state or Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            code = state.handle(self.path, dict(self.headers.items()), body)
            refusal = f"Cannot POST {self.path}" if state.echo_path else "receiver says no"
            payload = refusal.encode() if code >= 400 else b"ok"
            try:
                self.send_response(code)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except OSError:  # the dispatcher gave up on a slow answer
                pass

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.block_on_close = False
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.released.set()
        server.shutdown()
        server.server_close()
        thread.join()
