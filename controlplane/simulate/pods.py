"""One simulated vLLM server per pod of a base pool on the local cluster, and the address map
that tells the control plane where each pod's server answers.

kwok pods run no container, so a base pool's pods there serve nothing. :class:`PodServers`
follows the pods a label selector picks (``kubectl get pods``, every half second): each new
pod gets its own simulated server on a loopback port (a new pod starts with no adapter
loaded, as a real one does), a pod that is gone has its server stopped, and the map file
``{"<namespace>/<pod>": "http://127.0.0.1:<port>"}`` is rewritten (atomically) each time. The
control plane reads that file when ``CONTROLPLANE_POD_ADDRESS_MAP`` names it: the one seam
between the engine and the simulation (``controlplane/kube/adapters.py``).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import threading
from contextlib import suppress
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx

from controlplane.simulate.process import RunningServer, _spawn, _stop, _wait_ready, free_port
from controlplane.simulate.server import ServerConfig, profiles_of


@dataclass
class PodServer:
    pod: str
    server: RunningServer
    log: Path


class PodServers:
    """Simulated servers for the pods ``selector`` picks in ``namespace``."""

    def __init__(
        self,
        *,
        kubectl: str,
        kubeconfig: str,
        namespace: str,
        selector: str,
        config: ServerConfig,
        map_file: Path,
        poll: float = 0.5,
    ) -> None:
        self.kubectl, self.kubeconfig = kubectl, kubeconfig
        self.namespace, self.selector = namespace, selector
        self.config, self.map_file, self.poll = config, map_file, poll
        self.servers: dict[str, PodServer] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.logs = Path(tempfile.mkdtemp(prefix="controlplane-pods-"))
        self.started = 0  # servers started so far (one per pod ever seen)
        self._thread: threading.Thread | None = None

    # --- following the pods -----------------------------------------------------------

    def pods(self) -> list[dict[str, Any]]:
        listed = subprocess.run(  # noqa: S603 - kubectl, fixed arguments
            [
                self.kubectl,
                "--kubeconfig",
                self.kubeconfig,
                "-n",
                self.namespace,
                "get",
                "pods",
                "-l",
                self.selector,
                "-o",
                "json",
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        if listed.returncode != 0:
            return []
        items: list[dict[str, Any]] = json.loads(listed.stdout).get("items") or []
        return items

    def sync(self) -> None:
        """Start a server for each live pod without one, stop those of pods gone."""
        live = {
            p["metadata"]["name"]
            for p in self.pods()
            if not p["metadata"].get("deletionTimestamp")
            and (p.get("status") or {}).get("phase") in ("Pending", "Running")
        }
        with self.lock:
            for name in sorted(live - set(self.servers)):
                port = free_port()
                log = self.logs / f"{name}.log"
                server = RunningServer(self.config, port, _spawn(self.config, port, log))
                _wait_ready(server, log, 30.0)
                self.servers[name] = PodServer(name, server, log)
                self.started += 1
            for name in sorted(set(self.servers) - live):
                _stop(self.servers.pop(name).server.process)
            self._write_map()

    def _write_map(self) -> None:
        addresses = {
            f"{self.namespace}/{name}": entry.server.url for name, entry in self.servers.items()
        }
        temporary = self.map_file.with_suffix(".tmp")
        temporary.write_text(json.dumps(addresses, indent=2, sort_keys=True))
        os.replace(temporary, self.map_file)

    def _follow(self) -> None:
        while not self.stopping.is_set():
            with suppress(Exception):  # a failed look is retried at the next poll
                self.sync()
            self.stopping.wait(self.poll)

    def start(self) -> PodServers:
        self.map_file.parent.mkdir(parents=True, exist_ok=True)
        self._write_map()
        self._thread = threading.Thread(target=self._follow, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        with self.lock:
            for entry in self.servers.values():
                _stop(entry.server.process)
            self.servers.clear()

    def __enter__(self) -> PodServers:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # --- what tests look at and do ----------------------------------------------------

    def urls(self) -> dict[str, str]:
        with self.lock:
            return {name: entry.server.url for name, entry in self.servers.items()}

    def adapters(self) -> dict[str, list[str]]:
        """What each pod's server lists as loaded adapters."""
        held = {}
        for name, url in self.urls().items():
            with suppress(httpx.HTTPError, ValueError):
                data = httpx.get(f"{url}/v1/models", timeout=2, trust_env=False).json()["data"]
                held[name] = sorted(m["id"] for m in data if m.get("parent"))
        return held

    def restart(self, pod: str) -> None:
        """The pod's container restarts in place: what was loaded at runtime is gone."""
        url = self.urls()[pod]
        httpx.post(f"{url}/sim/restart", timeout=5, trust_env=False).raise_for_status()

    def faults(self, adapter: str, **changes: float) -> None:
        """Every pod serves ``adapter`` with these knobs from now on (a regressed adapter),
        pods started later included."""
        profiles = profiles_of(self.config)
        profiles[adapter] = {**profiles.get(adapter, {}), **changes}
        self.config = replace(self.config, adapter_profiles=json.dumps(profiles))
        for url in self.urls().values():
            httpx.post(
                f"{url}/sim/faults", params={"adapter": adapter}, json=changes, timeout=5
            ).raise_for_status()
