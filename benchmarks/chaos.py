"""Chaos: several control plane replicas on one PostgreSQL drive rollouts on the local
cluster while replicas are killed (SIGKILL) at random moments and PostgreSQL, the
Kubernetes API server and Prometheus are restarted under them.

The stack: ``--replicas`` `controlplane serve` processes (reconcile tick 1 s, the default
6 s rollout lease) on one throwaway PostgreSQL; the local cluster (real etcd and
kube-apiserver, kwok pods); a real Prometheus scraping three simulated vLLM servers (the
stable build, a healthy canary build, a canary with doubled time to first token), each
scraped once per model and version that maps to it (file service discovery, rewritten as
versions roll), with load on all three. ``--models`` models roll new versions one after
the other, so that many rollouts run at once; about one canary in four is the slow build.
Each rollout: 50%, an analysis of three looks 5 s apart, 100%.

Meanwhile ``--kills`` times, every 1.5-5 s, a random live replica is killed with SIGKILL
and started again 0.5-3 s later (several can be down at once; one is always left up), and
at a few moments PostgreSQL (an immediate stop: a crash, then crash recovery), the API
server (SIGKILL, then the same command line) and Prometheus (SIGKILL, same data) are
restarted. Then no new rollout starts, the replicas stay up, and the benchmark waits for
every rollout to end.

It reports, from the database and the cluster afterwards:

- finished: rollouts that ended (succeeded, rolled back, aborted) out of those started;
- stuck: rollouts not ended within ``--deadline`` seconds of their start;
- duplicate transitions: a state change or traffic move recorded twice for one rollout
  (the same "in force" event, two ends, the same step entered twice);
- lost events: an ended rollout without its end event, or a weight step it passed
  through without the event of that traffic move;
- promotions without evidence: a succeeded rollout with an analysis step lacking a passing
  look, or with a failing look; and the slow builds promoted (a wrong verdict);
- half-done: a model whose cluster objects do not match its last rollout's end (the
  canary's Deployment still up after a rollback, the stable one gone, the route wrong).

The target is 0 on each, and every rollout finished.

    python -m benchmarks.chaos [--replicas 3] [--models 20] [--kills 100] [--deadline 300]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from controlplane.simulate import harness, load
from controlplane.simulate.process import RunningServer, free_port, running_servers
from controlplane.simulate.prometheus import find_binary
from controlplane.simulate.server import ServerConfig
from tests.support import postgres

ANALYSIS = {
    "kind": "analysis",
    "interval_seconds": 5,
    "count": 3,
    "consecutive_error_limit": 4,
    "metrics": ["ttft", "error_rate"],
}
STRATEGY = {
    "steps": [
        {"kind": "set_weight", "weight": 50},
        ANALYSIS,
        {"kind": "set_weight", "weight": 100},
    ]
}
WEIGHT_STEPS = (0, 2)  # the strategy's set_weight steps, by index
ANALYSIS_STEPS = (1,)
STABLE = ServerConfig(version="stable", time_scale=0.05, seed=1)
HEALTHY = ServerConfig(version="healthy", time_scale=0.05, seed=2)
SLOW = ServerConfig(version="slow", time_scale=0.05, seed=3, ttft_median=0.4)
ENDED = {"succeeded", "rolled_back", "aborted", "failed"}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- restartable parts ------------------------------------------------------------------


class Prometheus:
    """Prometheus with file service discovery, restartable on the same port and data."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.targets = root / "targets.json"
        self.targets.write_text("[]")
        self.config = root / "prometheus.yml"
        self.config.write_text(
            json.dumps(
                {
                    "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
                    "scrape_configs": [
                        {
                            "job_name": "versions",
                            "file_sd_configs": [
                                {"files": [str(self.targets)], "refresh_interval": "2s"}
                            ],
                        }
                    ],
                }
            )
        )
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        with (self.root / "prometheus.log").open("ab") as out:
            self.process = subprocess.Popen(
                [
                    find_binary(),
                    f"--config.file={self.config}",
                    f"--storage.tsdb.path={self.root / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--storage.tsdb.retention.time=2h",
                    "--log.level=error",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/-/ready", timeout=1, trust_env=False).is_success:
                    return
            time.sleep(0.2)
        raise RuntimeError("Prometheus did not become ready")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)

    def restart(self) -> float:
        began = time.monotonic()
        self.kill()
        self.start()
        return time.monotonic() - began

    def scrape(self, entries: list[dict[str, Any]]) -> None:
        """Rewrite the targets (atomically: Prometheus watches the file)."""
        with self._lock:
            temporary = self.targets.with_suffix(".tmp")
            temporary.write_text(json.dumps(entries))
            temporary.replace(self.targets)


class ApiServer:
    """The local cluster's kube-apiserver: killed with SIGKILL and started again with the
    command line, environment and working directory it ran with."""

    def __init__(self, kubeconfig: str) -> None:
        self.workdir = Path(kubeconfig).parent
        self.kubeconfig = kubeconfig
        self.pid_file = self.workdir / "pids" / "kube-apiserver.pid"

    def _spawn(self, argv: list[str], cwd: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
        with (self.workdir / "logs" / "kube-apiserver.log").open("ab") as out:
            return subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def restart(self) -> float:
        began = time.monotonic()
        pid = int(self.pid_file.read_text().strip())
        proc = Path(f"/proc/{pid}")
        argv = [a.decode() for a in (proc / "cmdline").read_bytes().split(b"\0") if a]
        env = dict(
            item.decode().split("=", 1)
            for item in (proc / "environ").read_bytes().split(b"\0")
            if b"=" in item
        )
        cwd = os.readlink(proc / "cwd")
        os.kill(pid, signal.SIGKILL)
        while Path(f"/proc/{pid}").exists() and _state(pid) != "Z":
            time.sleep(0.05)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            process = self._spawn(argv, cwd, env)
            while time.monotonic() < deadline and process.poll() is None:
                ready = subprocess.run(
                    [harness.kubectl(), "--kubeconfig", self.kubeconfig, "get", "--raw=/readyz"],
                    capture_output=True,
                    check=False,
                )
                if ready.returncode == 0:
                    self.pid_file.write_text(f"{process.pid}\n")
                    return time.monotonic() - began
                time.sleep(0.3)
            time.sleep(1)  # it exited (its port not free yet?): start it again
        raise RuntimeError("the API server did not come back")


def _timed(action: Any) -> float:
    began = time.monotonic()
    action()
    return time.monotonic() - began


def _state(pid: int) -> str:
    with suppress(OSError, IndexError):
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    return "?"


# --- the run ----------------------------------------------------------------------------


@dataclass
class Started:
    rollout_id: int
    model: str
    version: str
    slow: bool
    at: float
    ended_at: float | None = None
    state: str = "pending"


@dataclass
class Fleet:
    """The models, the rollouts the benchmark started, and what Prometheus scrapes."""

    namespace: str
    servers: dict[str, RunningServer]
    prometheus: Prometheus
    models: list[str]
    stable: dict[str, str] = field(default_factory=dict)  # model -> its stable version
    builds: dict[tuple[str, str], str] = field(default_factory=dict)  # (model, version) -> build
    in_flight: dict[str, Started] = field(default_factory=dict)
    rollouts: list[Started] = field(default_factory=list)
    counter: Counter[str] = field(default_factory=Counter)

    def targets(self) -> list[dict[str, Any]]:
        entries = []
        for model in self.models:
            versions = {self.stable.get(model)}
            if model in self.in_flight:
                versions.add(self.in_flight[model].version)
            for version in sorted(v for v in versions if v):
                server = self.servers[self.builds[(model, version)]]
                entries.append(
                    {
                        "targets": [server.address],
                        "labels": {
                            "namespace": self.namespace,
                            "model": model,
                            "version": version,
                            "pod": f"{model}-{version}-0",
                        },
                    }
                )
        return entries


class Api:
    """The API of whichever replica answers (replicas die under it)."""

    def __init__(self, urls: list[str], token: str) -> None:
        self.clients = [
            httpx.Client(base_url=u, timeout=10, headers={"Authorization": f"Bearer {token}"})
            for u in urls
        ]

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        last: Exception | None = None
        for _ in range(60):
            for client in random.sample(self.clients, len(self.clients)):
                try:
                    return client.request(method, path, **kwargs)
                except httpx.TransportError as error:
                    last = error
            time.sleep(0.5)
        raise RuntimeError(f"no replica answered {method} {path}: {last}")

    def close(self) -> None:
        for client in self.clients:
            client.close()


def start_rollout(api: Api, fleet: Fleet, model: str, rng: random.Random) -> None:
    number = fleet.counter[model] = fleet.counter[model] + 1
    version = f"v{number + 1}"
    slow = rng.random() < 0.25
    fleet.builds[(model, version)] = "slow" if slow else "healthy"
    registered = api.call(
        "POST",
        f"/v1/models/{model}/versions",
        json={"version": version, "artifact_uri": f"s3://models/{model}/{version}"},
    )
    if registered.status_code not in (200, 201, 409):
        raise RuntimeError(f"register {model} {version}: {registered.text}")
    response = api.call(
        "POST", f"/v1/models/{model}/rollouts", json={"version": version, "strategy": STRATEGY}
    )
    if response.status_code == 409 and "already" in response.text:
        # our earlier POST landed but its answer was lost with the replica: find it
        listed = api.call("GET", f"/v1/models/{model}/rollouts", params={"limit": 5})
        if listed.status_code != 200:
            raise RuntimeError(f"list {model}'s rollouts: {listed.status_code} {listed.text}")
        match = [r for r in listed.json()["items"] if r["version"] == version]
        if not match:
            raise RuntimeError(f"start {model} {version}: {response.text}")
        rollout_id = int(match[0]["id"])
    elif response.status_code != 201:
        raise RuntimeError(f"start {model} {version}: {response.status_code} {response.text}")
    else:
        rollout_id = int(response.json()["id"])
    started = Started(rollout_id, model, version, slow, time.monotonic())
    fleet.in_flight[model] = started
    fleet.rollouts.append(started)
    fleet.prometheus.scrape(fleet.targets())


def follow(engine: sa.Engine, fleet: Fleet) -> None:
    """Read the rollouts' states from the database; retire the ended ones."""
    ids = [s.rollout_id for s in fleet.in_flight.values()]
    if not ids:
        return
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                sa.text("SELECT id, phase FROM rollout WHERE id = ANY(:ids)"), {"ids": ids}
            ).all()
    except sa.exc.SQLAlchemyError:
        return  # PostgreSQL is restarting: next time
    phases = {row.id: str(row.phase).lower() for row in rows}
    changed = False
    for model, started in list(fleet.in_flight.items()):
        state = phases.get(started.rollout_id, started.state)
        started.state = state
        if state in ENDED:
            started.ended_at = time.monotonic()
            if state == "succeeded":
                fleet.stable[model] = started.version
            del fleet.in_flight[model]
            changed = True
    if changed:
        fleet.prometheus.scrape(fleet.targets())


@dataclass
class Chaos:
    replicas: list[harness.ControlPlane]
    database: postgres.RestartablePostgres
    apiserver: ApiServer
    prometheus: Prometheus
    kills: int
    rng: random.Random
    calm_seconds: float = 0
    done: threading.Event = field(default_factory=threading.Event)
    killed: int = 0
    restarts: list[tuple[str, float]] = field(default_factory=list)
    down: set[int] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self) -> None:
        try:
            self._run()
        finally:
            self.done.set()

    def _run(self) -> None:
        if self.kills == 0:  # the calm baseline: the same load, nothing killed
            time.sleep(self.calm_seconds)
            return
        # the other parts' restarts, spread over the run
        others = {
            max(1, self.kills * 2 // 10): "postgres",
            max(2, self.kills * 4 // 10): "apiserver",
            max(3, self.kills * 6 // 10): "prometheus",
            max(4, self.kills * 8 // 10): "postgres",
            max(5, self.kills * 9 // 10): "apiserver",
        }
        while self.killed < self.kills:
            time.sleep(self.rng.uniform(1.5, 5))
            with self.lock:
                alive = [i for i in range(len(self.replicas)) if i not in self.down]
                if len(alive) <= 1:
                    continue  # one replica is always left to take the work over
                victim = self.rng.choice(alive)
                self.down.add(victim)
            self.replicas[victim].kill()
            self.killed += 1
            threading.Thread(target=self._revive, args=(victim,), daemon=True).start()
            part = others.get(self.killed)
            if part is not None:
                took = {
                    "postgres": lambda: _timed(self.database.restart),
                    "apiserver": self.apiserver.restart,
                    "prometheus": self.prometheus.restart,
                }[part]()
                self.restarts.append((part, took))
                log(f"restarted {part} ({took:.1f} s)")
            if self.killed % 10 == 0:
                log(f"{self.killed} kills")
        self.done.set()

    def _revive(self, index: int) -> None:
        time.sleep(self.rng.uniform(0.5, 3))
        for _ in range(5):
            try:
                self.replicas[index].start(timeout=90)
                break
            except RuntimeError:
                time.sleep(2)  # e.g. PostgreSQL restarting as it started
        with self.lock:
            self.down.discard(index)


# --- the report ---------------------------------------------------------------------------


def report(engine: sa.Engine, kubeconfig: str, fleet: Fleet, deadline: float) -> dict[str, Any]:
    ids = [s.rollout_id for s in fleet.rollouts]
    with engine.connect() as connection:
        events = connection.execute(
            sa.text(
                "SELECT rollout_id, kind, phase, step_index, weight, message FROM rollout_event "
                "WHERE rollout_id = ANY(:ids) ORDER BY id"
            ),
            {"ids": ids},
        ).all()
        looks = connection.execute(
            sa.text(
                "SELECT rollout_id, step_index, verdict FROM measurement "
                "WHERE rollout_id = ANY(:ids) AND discarded IS NULL"
            ),
            {"ids": ids},
        ).all()
        rows = connection.execute(
            sa.text("SELECT id, phase, reason FROM rollout WHERE id = ANY(:ids)"), {"ids": ids}
        ).all()
    phases: dict[int, str] = {int(row.id): str(row.phase).lower() for row in rows}
    reasons: dict[int, str] = {int(row.id): str(row.reason) for row in rows}
    by_rollout: dict[int, list[Any]] = {i: [] for i in ids}
    for event in events:
        by_rollout[event.rollout_id].append(event)
    verdicts: dict[tuple[int, int], list[str]] = {}
    for look in looks:
        verdicts.setdefault((look.rollout_id, look.step_index), []).append(look.verdict)
    findings: dict[str, list[str]] = {key: [] for key in FINDINGS}
    for started in fleet.rollouts:
        rid = started.rollout_id
        check_rollout(
            started,
            phases.get(rid, ""),
            by_rollout[rid],
            verdicts,
            reasons.get(rid, ""),
            deadline,
            findings,
        )
    half = half_done(kubeconfig, fleet)
    took = sorted(s.ended_at - s.at for s in fleet.rollouts if s.ended_at is not None)
    endings = Counter(phases.get(s.rollout_id, "") for s in fleet.rollouts)
    return {
        "durations": took,
        "started": len(fleet.rollouts),
        "finished": sum(endings[p] for p in ENDED),
        "succeeded": endings["succeeded"],
        "rolled back": endings["rolled_back"],
        "slow builds": sum(1 for s in fleet.rollouts if s.slow),
        **findings,
        "half-done": half,
    }


FINDINGS = (
    "stuck",
    "duplicate transitions",
    "lost events",
    "promotions without evidence",
    "slow builds promoted",
    "healthy builds rolled back",
)


def check_rollout(
    started: Started,
    phase: str,
    said: list[Any],
    verdicts: dict[tuple[int, int], list[str]],
    reason: str,
    deadline: float,
    findings: dict[str, list[str]],
) -> None:
    """One rollout's history against what must hold; what does not goes into findings."""
    rid = started.rollout_id
    moves = [e.message for e in said if "in force" in e.message]
    ends = [e for e in said if str(e.phase).lower() in ENDED]
    entered = [
        (e.kind, e.step_index, str(e.phase)) for e in said if e.kind in ("step", "transition")
    ]
    if len(moves) != len(set(moves)) or len(entered) != len(set(entered)) or len(ends) > 1:
        findings["duplicate transitions"].append(
            f"rollout {rid}: {moves} / {entered} / {len(ends)} ends"
        )
    if phase not in ENDED or started.ended_at is None:
        findings["stuck"].append(f"rollout {rid} ({started.model} {started.version}) is {phase}")
    elif started.ended_at - started.at > deadline:
        findings["stuck"].append(f"rollout {rid} took {started.ended_at - started.at:.0f} s")
    if phase in ENDED and not ends:
        findings["lost events"].append(f"rollout {rid}: ended {phase} without its end event")
    if phase == "succeeded":
        weights = {e.weight for e in said}
        if not {50, 100} <= weights:
            findings["lost events"].append(
                f"rollout {rid}: succeeded, weights said {sorted(weights)}"
            )
        for step in ANALYSIS_STEPS:
            seen = verdicts.get((rid, step), [])
            if "pass" not in seen or "fail" in seen:
                findings["promotions without evidence"].append(
                    f"rollout {rid}: step {step} looks {seen}"
                )
        if started.slow:
            findings["slow builds promoted"].append(
                f"rollout {rid}: the slow build {started.version} was promoted"
            )
    if phase == "rolled_back" and not started.slow:
        findings["healthy builds rolled back"].append(f"rollout {rid}: {reason[:300]}")


def half_done(kubeconfig: str, fleet: Fleet) -> list[str]:
    """Each model's Deployments against its last rollout's end: stable up, nothing else."""
    listed = subprocess.run(
        [
            harness.kubectl(),
            "--kubeconfig",
            kubeconfig,
            "-n",
            fleet.namespace,
            "get",
            "deployments",
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    up: dict[str, set[str]] = {}
    for item in json.loads(listed.stdout)["items"]:
        labels = item["metadata"].get("labels", {})
        model = labels.get("controlplane.dev/model") or labels.get("app.kubernetes.io/name")
        version = labels.get("controlplane.dev/version") or labels.get("app.kubernetes.io/version")
        if model and version and (item["spec"].get("replicas") or 0) > 0:
            up.setdefault(model, set()).add(version)
    wrong = []
    for model in fleet.models:
        expected = {fleet.stable[model]}
        if up.get(model, set()) != expected:
            wrong.append(f"{model}: up {sorted(up.get(model, set()))}, stable {sorted(expected)}")
    return wrong


# --- main -----------------------------------------------------------------------------------


def start_replicas(
    stack: ExitStack, root: Path, count: int, env: dict[str, str]
) -> list[harness.ControlPlane]:
    replicas = [
        harness.ControlPlane(env, free_port(), root / f"replica-{i}.log") for i in range(count)
    ]
    for replica in replicas:  # the first migrates the schema; the others find it done
        replica.start(timeout=120)
        stack.callback(replica.stop)
    return replicas


def start_traffic(stack: ExitStack, by_build: dict[str, RunningServer]) -> None:
    """Load on every build: the stable build beside each canary build."""
    stopping = threading.Event()
    stack.callback(stopping.set)

    def traffic(canary: RunningServer) -> None:
        while not stopping.is_set():
            with suppress(Exception):
                load.run(
                    by_build["stable"].url,
                    canary.url,
                    lambda: 50.0,
                    requests=200,
                    seconds=2,
                    concurrency=8,
                    model="chat",
                )

    for build in ("healthy", "slow"):
        threading.Thread(target=traffic, args=(by_build[build],), daemon=True).start()


def deploy_first_versions(api: Api, engine: sa.Engine, fleet: Fleet) -> None:
    for model in fleet.models:
        created = api.call(
            "POST",
            "/v1/models",
            json={
                "name": model,
                "namespace": fleet.namespace,
                "image": "vllm/vllm-openai:v0.11.0",
                "gpus_per_replica": 0,
                "replicas": 1,
            },
        )
        assert created.status_code == 201, created.text
        fleet.builds[(model, "v1")] = "stable"
        api.call(
            "POST",
            f"/v1/models/{model}/versions",
            json={"version": "v1", "artifact_uri": f"s3://models/{model}/v1"},
        )
        first = api.call("POST", f"/v1/models/{model}/rollouts", json={"version": "v1"})
        assert first.status_code == 201, first.text
        fleet.in_flight[model] = Started(int(first.json()["id"]), model, "v1", False, 0)
    fleet.prometheus.scrape(fleet.targets())
    deadline = time.monotonic() + 300
    while fleet.in_flight and time.monotonic() < deadline:
        follow(engine, fleet)
        time.sleep(0.5)
    assert not fleet.in_flight, f"v1 not deployed: {fleet.in_flight}"
    fleet.rollouts.clear()  # the first versions are set-up, not part of the measure


def roll_under_chaos(
    api: Api, engine: sa.Engine, fleet: Fleet, chaos: Chaos, rng: random.Random, deadline: float
) -> float:
    """New versions on every model while the chaos runs; then wait for the rest to end.
    Returns how long the chaos lasted."""
    began = time.monotonic()
    threading.Thread(target=chaos.run, daemon=True).start()
    while not chaos.done.is_set():
        follow(engine, fleet)
        for model in fleet.models:
            if model not in fleet.in_flight:
                try:
                    start_rollout(api, fleet, model, rng)
                except (RuntimeError, httpx.HTTPError) as error:
                    log(f"could not start a rollout of {model} now: {error}")
        time.sleep(0.5)
    lasted = time.monotonic() - began
    log(f"chaos over after {lasted:.0f} s; waiting for {len(fleet.in_flight)} rollouts")
    for _ in range(600):  # the revived replicas up again
        if not chaos.down:
            break
        time.sleep(0.2)
    wait_until = time.monotonic() + deadline
    while fleet.in_flight and time.monotonic() < wait_until:
        follow(engine, fleet)
        time.sleep(0.5)
    return lasted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--deadline", type=float, default=300)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--calm-seconds",
        type=float,
        default=600,
        help="with --kills 0: how long the calm baseline rolls versions",
    )
    args = parser.parse_args()
    rng = random.Random(args.seed)
    token = secrets.token_hex(16)
    began = time.monotonic()
    with ExitStack() as stack:
        kubeconfig = stack.enter_context(harness.local_cluster())
        root = Path(tempfile.mkdtemp(prefix="controlplane-chaos-"))
        stack.callback(shutil.rmtree, root, ignore_errors=True)
        pg = stack.enter_context(postgres.restartable_postgres())
        url = postgres.create_database(pg.url, "chaos")
        engine = sa.create_engine(url, pool_pre_ping=True)
        stack.callback(engine.dispose)
        namespace = stack.enter_context(
            harness.namespace(kubeconfig, f"chaos-{secrets.token_hex(3)}")
        )
        prometheus = Prometheus(root)
        prometheus.start()
        stack.callback(prometheus.kill)
        servers = stack.enter_context(running_servers([STABLE, HEALTHY, SLOW]))
        by_build = {s.config.version: s for s in servers}
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(root),
            "CONTROLPLANE_ADMIN_TOKEN": token,
            "CONTROLPLANE_DATABASE_URL": url,
            "CONTROLPLANE_KUBECONFIG": kubeconfig,
            "CONTROLPLANE_PROMETHEUS_URL": prometheus.url,
            "CONTROLPLANE_RECONCILE_INTERVAL_SECONDS": "1",
            "CONTROLPLANE_LOG_FORMAT": "json",
        }
        replicas = start_replicas(stack, root, args.replicas, env)
        api = Api([r.url for r in replicas], token)
        stack.callback(api.close)
        fleet = Fleet(namespace, by_build, prometheus, [f"m{i:02d}" for i in range(args.models)])
        start_traffic(stack, by_build)
        log(f"{args.replicas} replicas, {args.models} models: deploying each one's v1")
        deploy_first_versions(api, engine, fleet)
        chaos = Chaos(
            replicas, pg, ApiServer(kubeconfig), prometheus, args.kills, rng, args.calm_seconds
        )
        log(f"chaos: {args.kills} kills, rollouts on {args.models} models at once")
        lasted = roll_under_chaos(api, engine, fleet, chaos, rng, args.deadline)
        results = report(engine, kubeconfig, fleet, args.deadline)
        results["fenced"] = sum(
            (root / f"replica-{i}.log").read_text(errors="replace").count("decision unwritten")
            for i in range(args.replicas)
        )
        print_report(results, args, chaos, lasted, time.monotonic() - began)


def print_report(
    results: dict[str, Any],
    args: argparse.Namespace,
    chaos: Chaos,
    chaos_seconds: float,
    total: float,
) -> None:
    restarts = ", ".join(f"{part} {took:.1f} s" for part, took in chaos.restarts)
    print(
        f"\nchaos: {args.replicas} replicas on one PostgreSQL, {args.models} models, "
        f"{chaos.killed} kill -9 over {chaos_seconds:.0f} s; restarts: {restarts}; "
        f"{total / 60:.1f} min in all\n"
    )
    rows = [
        ("rollouts started", results["started"]),
        (
            "finished",
            f"{results['finished']} of {results['started']} "
            f"({results['succeeded']} promoted, {results['rolled back']} rolled back)",
        ),
        ("stuck past the deadline", len(results["stuck"])),
        ("duplicate transitions or traffic moves", len(results["duplicate transitions"])),
        ("lost events", len(results["lost events"])),
        ("promotions without evidence", len(results["promotions without evidence"])),
        (
            f"slow builds promoted (of {results['slow builds']})",
            len(results["slow builds promoted"]),
        ),
        ("models half-done in the cluster", len(results["half-done"])),
        (
            f"healthy builds rolled back (of {results['started'] - results['slow builds']})",
            len(results["healthy builds rolled back"]),
        ),
        ("passes fenced off (lease lost, nothing written)", results["fenced"]),
    ]
    took = results["durations"]
    if took:
        rows.append(
            (
                "rollout duration p50 / p95 / max",
                f"{took[len(took) // 2]:.0f} / {took[int(len(took) * 0.95)]:.0f} / "
                f"{took[-1]:.0f} s",
            )
        )
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    for key in (*FINDINGS, "half-done"):
        for line in results[key][:10]:
            print(f"    {key}: {line}")


if __name__ == "__main__":
    main()
