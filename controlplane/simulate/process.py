"""Run a simulated inference server as a child process on a loopback port, for the demo
and the tests: started with ``python -m controlplane.simulate serve``, ready when
``/health`` answers, and always stopped (SIGTERM, then SIGKILL) when the block ends."""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from controlplane.simulate.server import ServerConfig


class SimulatorStartError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class RunningServer:
    config: ServerConfig
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def address(self) -> str:
        """``host:port``, as a Prometheus static target."""
        return f"127.0.0.1:{self.port}"


def _wait_ready(server: RunningServer, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise SimulatorStartError(
                f"the simulator exited with {server.process.returncode}: "
                f"{log.read_text(errors='replace')[-2000:]}"
            )
        try:
            if httpx.get(f"{server.url}/health", timeout=1.0, trust_env=False).is_success:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise SimulatorStartError(f"the simulator on {server.url} was not ready after {timeout}s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


def _spawn(config: ServerConfig, port: int, log: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "controlplane.simulate", "serve", "--port", str(port)]
    with log.open("wb") as out:
        return subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
            [*command, *config.to_args()],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


@contextmanager
def running_servers(
    configs: Sequence[ServerConfig],
    *,
    ports: Sequence[int] | None = None,
    startup_timeout: float = 30.0,
) -> Iterator[list[RunningServer]]:
    """Several servers, started together (they load their imports in parallel); on
    ``ports`` when given (e.g. already written into a Prometheus config), else free ones."""
    if ports is not None and len(ports) != len(configs):
        raise ValueError(f"{len(configs)} servers need {len(configs)} ports, not {len(ports)}")
    with tempfile.TemporaryDirectory(prefix="controlplane-sim-") as folder:
        started: list[tuple[RunningServer, Path]] = []
        try:
            for i, config in enumerate(configs):
                log, port = Path(folder) / f"{i}.log", ports[i] if ports else free_port()
                started.append((RunningServer(config, port, _spawn(config, port, log)), log))
            for server, log in started:
                _wait_ready(server, log, startup_timeout)
            yield [server for server, _ in started]
        finally:
            for server, _ in started:
                _stop(server.process)


@contextmanager
def running_server(
    config: ServerConfig, *, startup_timeout: float = 30.0
) -> Iterator[RunningServer]:
    with running_servers([config], startup_timeout=startup_timeout) as (server,):
        yield server
