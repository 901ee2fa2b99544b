"""A lean HTTP/1.1 client for load benchmarks: one keep-alive connection over asyncio
streams, requests written by hand, answers read by Content-Length (or chunks).

Why not httpx: on the 2-core machine httpx's AsyncClient spent 1.2-2 ms of CPU per
request in the load generator itself, more than the control plane spent answering; the
client's own cost then caps what any server can show (and shrinks every ratio between two
servers). This one spends a fraction of that. It speaks only what the benchmarks send:
GET with a query, POST with a JSON body, to one host; it is no general client.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit


@dataclass
class Answer:
    status_code: int
    headers: dict[str, str]
    content: bytes

    def json(self) -> Any:
        return json.loads(self.content)

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise RuntimeError(f"HTTP {self.status_code}: {self.content[:500]!r}")


class Client:
    """``async with Client(base_url, headers=...) as http: await http.get(path)``."""

    def __init__(self, base_url: str, *, headers: dict[str, str] | None = None) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        fixed = {"Host": f"{self.host}:{self.port}", **(headers or {})}
        self._fixed = "".join(f"{name}: {value}\r\n" for name, value in fixed.items())
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> Client:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._writer is not None:
            self._writer.close()
            await self._writer.wait_closed()

    async def get(
        self,
        path: str,
        *,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        target = f"{path}?{urlencode(params)}" if params else path
        return await self._send("GET", target, b"", headers)

    async def post(
        self, path: str, *, json: Any = None, headers: dict[str, str] | None = None
    ) -> Answer:
        body = _dumps(json).encode()
        extra = {"Content-Type": "application/json", **(headers or {})}
        return await self._send("POST", path, body, extra)

    async def _send(
        self, method: str, target: str, body: bytes, headers: dict[str, str] | None
    ) -> Answer:
        assert self._writer is not None, "use async with"
        extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        head = (
            f"{method} {target} HTTP/1.1\r\n{self._fixed}{extra}Content-Length: {len(body)}\r\n\r\n"
        )
        self._writer.write(head.encode() + body)
        return await self._read()

    async def _read(self) -> Answer:
        assert self._reader is not None
        head = await self._reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            content = await self._reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            content = await self._read_chunks()
        else:
            content = await self._reader.read()  # the server closes the connection
        return Answer(status, headers, content)

    async def _read_chunks(self) -> bytes:
        assert self._reader is not None
        chunks: list[bytes] = []
        while True:
            size = int((await self._reader.readuntil(b"\r\n")).split(b";")[0], 16)
            chunk = await self._reader.readexactly(size + 2)  # the data and its CRLF
            if size == 0:
                return b"".join(chunks)
            chunks.append(chunk[:-2])


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
