"""One replica driving N concurrent rollouts, before and after the watch cache: reconcile
pass latency, how late checks run, CPU and memory, and API-server requests per rollout.

Against the real parts: the local cluster's API server (etcd, kube-apiserver, the
controllers and scheduler, kwok nodes; ``hack/cluster``), and a PostgreSQL server started
for the run (tests/support/postgres.py). Each round runs in its own process, the way one
control plane replica would: the reconciler with the scheduler's 1-second tick, and
nothing else.

- **before** (cache off): today's path, every read and apply sent to the API server, one
  pass at a time;
- **after** (cache on): the watch cache (:mod:`controlplane.kube.cache`) and
  ``--workers`` passes side by side (:mod:`controlplane.rollout.passes`).

Every model (gateway-api routing, one replica, no GPU) first gets a stable version (not
measured). A round then starts N rollouts at once, each ``20% -> analysis (3 looks 10 s
apart) -> 50% -> analysis (3 looks) -> 100%``, and runs until every one has finished (or
the round's cap). **The analysis answers "pass" at once** (a fake prober, no Prometheus):
what is measured is the control loop and its load on the API server and the database, not
the metrics queries (those have their own benchmark, ``make bench-judge``).

Figures, per round:

- pass p50/p99: one ``Reconciler.reconcile`` call (claim, observe, plan, act, record);
- late p50/p99: how long after the rollout's ``next_check_at`` its pass started (the 1 s
  tick adds up to 1 s; all N are due at once at the start, so the start's burst is in the
  p99), and the p99 of the passes after every rollout had its first (the steady state:
  analysis looks, weight steps, promotions);
- CPU: the replica process's CPU time over the round, as a share of one core, per 100
  rollouts; RSS: the process's peak resident memory (and per 100 rollouts);
- API req/rollout/min: requests the replica sent (counted in its client: gets, lists,
  applies, deletes, and the cache's lists and watches), per rollout per minute of the round;
- 50% / done: seconds until every rollout had 50% of the traffic, and had finished.

    python -m benchmarks.scale [--sizes 100,300,1000] [--off-sizes 100,300,1000]
                               [--off-cap 300] [--cap 900] [--workers 4]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select

from controlplane import db, telemetry
from controlplane.analysis.verdict import Verdict
from controlplane.db import Database
from controlplane.kube import KubeDriver
from controlplane.kube.cache import ObjectCache
from controlplane.kube.client import DEPLOYMENT, HTTPROUTE, POD, SERVICE, KubeApi
from controlplane.models import (
    ModelCreate,
    Phase,
    Rollout,
    RoutingMode,
    VersionCreate,
    utcnow,
)
from controlplane.registry import models as model_service
from controlplane.registry import versions as version_service
from controlplane.rollout import service
from controlplane.rollout.reconciler import ProbeResult, Reconciler
from controlplane.rollout.strategy import Analysis, SetWeight, Strategy
from controlplane.scheduler import ReconcileScheduler
from controlplane.simulate import harness
from tests.support import postgres

STRATEGY = Strategy(
    steps=(
        SetWeight(weight=20),
        Analysis(interval_seconds=10, count=3),
        SetWeight(weight=50),
        Analysis(interval_seconds=10, count=3),
        SetWeight(weight=100),
    )
)


def model_name(i: int) -> str:
    return f"m{i:04d}"


# --- one round, in its own process ------------------------------------------------------


@dataclass
class Spec:
    mode: str  # "off" (before), "on" (after), "drain" (finish what a capped round left)
    size: int
    version: str
    url: str
    kubeconfig: str
    namespace: str
    workers: int
    cap: float
    first: bool = False  # the stable versions' first rollouts (not measured)


@dataclass
class Result:
    mode: str
    size: int
    seconds: float
    passes: int
    pass_p50: float
    pass_p99: float
    late_p50: float
    late_p99: float
    late_steady_p99: float  # passes after every rollout of the round had its first
    cpu_seconds: float
    rss_base_mb: float
    rss_peak_mb: float
    requests: dict[str, float]
    half: int  # rollouts that reached 50%
    finished: int
    succeeded: int
    half_at: float | None
    done_at: float | None
    skipped_applies: float = 0.0
    cache_reads: dict[str, float] = field(default_factory=dict)


class Passing:
    """The analysis's prober: every look passes at once (see the module docstring)."""

    def measure(self, **_: Any) -> ProbeResult:
        return ProbeResult(Verdict.PASS, "benchmark: pass", [{"metric": "ttft", "verdict": "pass"}])


class Timed(Reconciler):
    """The reconciler, timing each pass and how late it started after it was due."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.due_at: dict[int, datetime] = {}
        # (duration, lateness, whether every rollout of the round had had a pass before)
        self.samples: list[tuple[float, float, bool]] = []
        self.started: set[int] = set()
        self.expected = 0
        self.stopping = False

    def due(self) -> list[int]:
        ids = super().due()
        if ids:
            with self.database.session() as session:
                rows = session.exec(
                    select(Rollout.id, Rollout.next_check_at).where(col(Rollout.id).in_(ids))
                ).all()
            self.due_at.update({i: at for i, at in rows if i is not None})
        return ids

    def reconcile(self, rollout_id: int, *, max_moves: int = 5) -> bool:
        if self.stopping:
            return False
        due_at = self.due_at.get(rollout_id)
        started_at = utcnow()
        started = time.perf_counter()
        steady = len(self.started) >= self.expected
        done = super().reconcile(rollout_id, max_moves=max_moves)
        if done:
            self.started.add(rollout_id)
            late = (started_at - due_at).total_seconds() if due_at is not None else 0.0
            self.samples.append((time.perf_counter() - started, max(0.0, late), steady))
        return done


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def counters() -> dict[str, float]:
    totals: dict[str, float] = {}
    for metric in telemetry.REGISTRY.collect():
        for sample in metric.samples:
            if sample.name == "controlplane_kube_requests_total":
                verb = sample.labels["verb"]
                totals[verb] = totals.get(verb, 0.0) + sample.value
            elif sample.name == "controlplane_kube_cache_reads_total":
                totals[f"cache:{sample.labels['outcome']}"] = sample.value
            elif sample.name == "controlplane_kube_applies_skipped_total":
                totals["skipped"] = sample.value
    return totals


def start_rollouts(database: Database, spec: Spec) -> list[int]:
    strategy = None if spec.first else STRATEGY
    ids = []
    for i in range(spec.size):
        with database.session() as session:
            version_service.register_version(
                session,
                model_name=model_name(i),
                data=VersionCreate(
                    version=spec.version, artifact_uri=f"s3://models/{i}/{spec.version}"
                ),
                actor="bench",
            )
            rollout = service.start_rollout(
                session,
                model_name=model_name(i),
                version=spec.version,
                strategy=strategy,
                actor="bench",
            )
            assert rollout.id is not None
            ids.append(rollout.id)
    return ids


def round_ids(database: Database, spec: Spec) -> list[int]:
    """The round's rollouts, all due at the same instant."""
    if spec.mode == "drain":  # finish what a capped round left (not measured)
        live = [p for p in Phase if p.is_live]
        with database.session() as session:
            found = session.exec(select(Rollout.id).where(col(Rollout.phase).in_(live))).all()
        ids = [i for i in found if i is not None]
    else:
        ids = start_rollouts(database, spec)
    with database.session() as session:
        session.execute(
            sa.update(Rollout).where(col(Rollout.id).in_(ids)).values(next_check_at=utcnow())
        )
        session.commit()
    return ids


@dataclass
class Progress:
    rss_peak: float
    half: int = 0
    finished: int = 0
    succeeded: int = 0
    half_at: float | None = None
    done_at: float | None = None

    def look(self, database: Database, ids: list[int], elapsed: float) -> bool:
        """Read where the rollouts are; True once every one has finished."""
        self.rss_peak = max(self.rss_peak, rss_mb())
        with database.session() as session:
            rows = [
                (Phase(phase), int(weight))
                for phase, weight in session.exec(
                    select(Rollout.phase, Rollout.routed_weight).where(col(Rollout.id).in_(ids))
                ).all()
            ]
        self.half = sum(1 for phase, weight in rows if weight >= 50 or phase is Phase.SUCCEEDED)
        self.finished = sum(1 for phase, _ in rows if phase.is_terminal)
        self.succeeded = sum(1 for phase, _ in rows if phase is Phase.SUCCEEDED)
        if self.half == len(ids) and self.half_at is None:
            self.half_at = elapsed
        if self.finished == len(ids):
            self.done_at = elapsed
            return True
        return False


def run_round(spec: Spec) -> Result:
    database = Database(spec.url, pool_size=max(10, spec.workers * 2))
    api = KubeApi.from_kubeconfig(spec.kubeconfig)
    rss_base = rss_mb()
    cache = None
    if spec.mode != "off":
        cache = ObjectCache(api)
        for kind in (DEPLOYMENT, POD, SERVICE, HTTPROUTE):
            if cache.wait_synced(kind, spec.namespace, timeout=300) is None:
                raise RuntimeError(f"the cache did not sync {kind.plural} in 300 s")
    driver = KubeDriver(api, cache=cache)
    workers = 1 if spec.mode == "off" else spec.workers
    reconciler = Timed(database, driver, Passing(), workers=workers)
    ids = round_ids(database, spec)
    reconciler.expected = len(ids)
    before, cpu_before, began = counters(), cpu_seconds(), time.monotonic()
    scheduler = ReconcileScheduler(reconciler, interval_seconds=1.0)
    scheduler.start()
    progress = Progress(rss_peak=rss_base)
    try:
        while time.monotonic() - began < spec.cap:
            time.sleep(1.0)
            if progress.look(database, ids, time.monotonic() - began):
                break
    finally:
        seconds = time.monotonic() - began
        cpu = cpu_seconds() - cpu_before
        after = counters()
        reconciler.stopping = True  # a capped round stops without finishing its tick
        scheduler.stop()
        api.close()
        database.dispose()
    durations = sorted(d for d, _, _ in reconciler.samples) or [0.0]
    lateness = sorted(late for _, late, _ in reconciler.samples) or [0.0]
    steady = sorted(late for _, late, after in reconciler.samples if after) or [0.0]
    delta = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
    return Result(
        mode=spec.mode,
        size=len(ids),
        seconds=seconds,
        passes=len(reconciler.samples),
        pass_p50=quantile(durations, 0.5),
        pass_p99=quantile(durations, 0.99),
        late_p50=quantile(lateness, 0.5),
        late_p99=quantile(lateness, 0.99),
        late_steady_p99=quantile(steady, 0.99),
        cpu_seconds=cpu,
        rss_base_mb=rss_base,
        rss_peak_mb=progress.rss_peak,
        requests={k: v for k, v in delta.items() if not k.startswith("cache:") and k != "skipped"},
        half=progress.half,
        finished=progress.finished,
        succeeded=progress.succeeded,
        half_at=progress.half_at,
        done_at=progress.done_at,
        skipped_applies=delta.get("skipped", 0.0),
        cache_reads={k[6:]: v for k, v in delta.items() if k.startswith("cache:")},
    )


def quantile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))]


# --- the whole run ----------------------------------------------------------------------


def setup_models(url: str, namespace: str, count: int) -> None:
    database = Database(url)
    try:
        for i in range(count):
            with database.session() as session:
                model_service.create_model(
                    session,
                    data=ModelCreate(
                        name=model_name(i),
                        namespace=namespace,
                        image="vllm/vllm-openai:v0.11.0",
                        gpus_per_replica=0,
                        replicas=1,
                        routing_mode=RoutingMode.GATEWAY_API,
                        gateway="gw",
                    ),
                    actor="bench",
                )
    finally:
        database.dispose()


def in_child(spec: Spec) -> Result:
    """The round in a fresh process: its CPU and memory are the replica's alone."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.scale", "--round", json.dumps(asdict(spec))],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    if done.returncode != 0:
        raise RuntimeError(f"round {spec.mode} {spec.size} failed:\n{done.stderr[-4000:]}")
    return Result(**json.loads(done.stdout.strip().splitlines()[-1]))


def fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table(results: list[Result]) -> str:
    header = (
        "| rollouts | path | passes | pass p50 / p99 (s) | late p50 / p99 / p99 after start (s) "
        "| CPU % of a core per 100 | RSS peak MB (per 100) | API req / rollout / min "
        "| all at 50% (s) | all done (s) |"
    )
    lines = [header, "|" + " --- |" * 10]
    for r in results:
        minutes = r.seconds / 60
        cpu = 100 * r.cpu_seconds / r.seconds / (r.size / 100)
        requests = sum(r.requests.values()) / r.size / minutes
        path = (
            "before (no cache, 1 pass at a time)" if r.mode == "off" else "after (cache + workers)"
        )
        half = fmt(r.half_at, 0) if r.half_at is not None else f"{r.half}/{r.size} at cap"
        done = (
            fmt(r.done_at, 0)
            if r.done_at is not None
            else f"{r.finished}/{r.size} at {r.seconds:.0f} s (cap)"
        )
        lines.append(
            f"| {r.size} | {path} | {r.passes} | {fmt(r.pass_p50, 3)} / {fmt(r.pass_p99, 3)} "
            f"| {fmt(r.late_p50, 1)} / {fmt(r.late_p99, 1)} / {fmt(r.late_steady_p99, 1)} "
            f"| {cpu:.1f} "
            f"| {r.rss_peak_mb:.0f} ({r.rss_peak_mb / (r.size / 100):.0f}) | {requests:.1f} "
            f"| {half} | {done} |"
        )
    return "\n".join(lines)


def details(results: list[Result]) -> str:
    lines = []
    for r in results:
        verbs = ", ".join(f"{k} {v:.0f}" for k, v in sorted(r.requests.items()) if v)
        reads = ", ".join(f"{k} {v:.0f}" for k, v in sorted(r.cache_reads.items()) if v)
        line = f"{r.mode:>3} {r.size:>5}: requests {verbs or 'none'}"
        if r.mode == "on":
            line += f"; cache reads {reads or 'none'}; applies skipped {r.skipped_applies:.0f}"
        line += f"; {r.succeeded}/{r.size} succeeded"
        lines.append(line)
    return "\n".join(lines)


@contextmanager
def cluster_and_database(models: int) -> Iterator[tuple[str, str, str]]:
    """The cluster, a fresh database and namespace (its own name: the namespace of an
    earlier run may still be on its way out), and the models."""
    namespace = f"scale-{uuid.uuid4().hex[:6]}"
    with harness.local_cluster() as kubeconfig, postgres.postgres_server() as admin:
        url = postgres.create_database(admin, "scale")
        db.upgrade(url)
        with harness.namespace(kubeconfig, namespace):
            setup_models(url, namespace, models)
            yield kubeconfig, url, namespace


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,300,1000", help="rollouts per round, after")
    parser.add_argument(
        "--off-sizes", default="100,300,1000", help="rounds before (no cache); '' for none"
    )
    parser.add_argument("--off-cap", type=float, default=300, help="s; a before round's cap")
    parser.add_argument("--cap", type=float, default=900, help="s; an after round's cap")
    parser.add_argument("--workers", type=int, default=4, help="passes side by side, after")
    parser.add_argument("--round", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.round:  # a child: one round, its result as JSON on the last line
        print(json.dumps(asdict(run_round(Spec(**json.loads(args.round))))))
        return 0
    sizes = sorted(int(s) for s in args.sizes.split(",") if s)
    off_sizes = {int(s) for s in args.off_sizes.split(",") if s}
    models = max([*sizes, *off_sizes])
    began = time.monotonic()
    results: list[Result] = []
    with cluster_and_database(models) as (kubeconfig, url, namespace):
        version = 1

        def spec(mode: str, size: int, cap: float, *, first: bool = False) -> Spec:
            return Spec(
                mode, size, f"v{version}", url, kubeconfig, namespace, args.workers, cap, first
            )

        seeded = in_child(spec("on", models, 1800, first=True))
        print(
            f"stable versions of {models} models deployed in {seeded.seconds:.0f} s "
            f"({seeded.succeeded} succeeded)",
            flush=True,
        )
        for size in sorted({*sizes, *off_sizes}):
            for mode in ("off", "on"):
                if (mode == "off" and size not in off_sizes) or (
                    mode == "on" and size not in sizes
                ):
                    continue
                version += 1
                cap = args.off_cap if mode == "off" else args.cap
                result = in_child(spec(mode, size, cap))
                results.append(result)
                print(
                    f"{mode:>3} {size:>5}: {result.seconds:.0f} s, {result.finished}/{size} "
                    f"finished, pass p99 {result.pass_p99:.3f} s",
                    flush=True,
                )
                if result.finished < size:
                    drained = in_child(spec("drain", size, 1800))
                    print(f"  the rest finished in {drained.seconds:.0f} s (not measured)")
    print()
    print(table(results))
    print()
    print(details(results))
    print(f"\nload average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"run time {(time.monotonic() - began) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
