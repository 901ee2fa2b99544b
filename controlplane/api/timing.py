"""``Server-Timing: app;dur=<ms>`` on every answer, when ``CONTROLPLANE_SERVER_TIMING`` is
on (the registry benchmark turns it on): the time from the moment the application gets
a request (uvicorn has read and parsed it) to the moment it starts the answer, whose body
is rendered by then. It holds the routing, the dependencies, the thread-pool hop, the
database and the serialization, and any wait for the event loop or the GIL under load;
not the HTTP parsing, the network, nor the client. Off by default: a client has no need
of it, and timings tell an outsider more than nothing about what a request did.
"""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class ServerTiming:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def timed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                elapsed_ms = (time.perf_counter() - started) * 1000
                header = (b"server-timing", f"app;dur={elapsed_ms:.3f}".encode())
                message = {**message, "headers": [*message.get("headers", []), header]}
            await send(message)

        await self.app(scope, receive, timed_send)
