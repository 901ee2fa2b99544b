"""A replica that lost its claim on a rollout mid-pass (stalled, cut off, its lease taken
by another replica) changes nothing: no cluster write once it knows, and never its decision
in the database. Against a real API server, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import col, select

from controlplane.analysis.verdict import Verdict
from controlplane.db import Database
from controlplane.kube import KubeDriver
from controlplane.kube.client import DEPLOYMENT, KubeApi
from controlplane.models import Measurement, Phase, RolloutEvent
from controlplane.naming import workload_name
from controlplane.rollout.reconciler import ProbeResult, Reconciler
from controlplane.rollout.strategy import Analysis, SetWeight, Strategy
from controlplane.telemetry import REGISTRY
from tests.rollout.test_engine import (
    Clock,
    ScriptedProber,
    deploy_v1,
    drive,
    rollout_row,
    setup_model,
    start_v2,
)

pytestmark = pytest.mark.cluster


# one look decides: a pass moves the rollout from the analysis to 100% and scales
ONE_LOOK = Strategy(
    steps=(SetWeight(weight=50), Analysis(interval_seconds=60, count=1), SetWeight(weight=100))
)


class HeldProber:
    """A passing look that waits until the test lets it answer."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def measure(self, **_: Any) -> ProbeResult:
        self.entered.set()
        assert self.release.wait(30), "the test never let the look answer"
        return ProbeResult(Verdict.PASS, "held look: pass", [{"metric": "ttft"}])


def at_the_analysis(database: Database, kube_api: KubeApi, namespace: str, clock: Clock) -> int:
    setup_model(database, namespace)
    quick = Reconciler(database, KubeDriver(kube_api), ScriptedProber(), clock=clock, owner="q")
    deploy_v1(database, quick, clock)
    rollout_id = start_v2(database, clock, ONE_LOOK)
    drive(quick, clock, database, rollout_id, until={Phase.PROGRESSING})
    deadline = time.monotonic() + 60
    while rollout_row(database, rollout_id).step_index != 1:
        assert time.monotonic() < deadline, rollout_row(database, rollout_id).reason
        quick.run_due()
        clock.now += timedelta(seconds=5)
        time.sleep(0.3)
    quick.close()
    clock.now += timedelta(seconds=61)  # the look is due
    return rollout_id


def cluster_state(kube_api: KubeApi, namespace: str) -> dict[str, Any]:
    state = {}
    for version in ("v1", "v2"):
        deployment = kube_api.get(DEPLOYMENT, namespace, workload_name("chat", version))
        assert deployment is not None
        state[version] = (deployment["metadata"]["resourceVersion"], deployment["spec"]["replicas"])
    return state


def written_by_the_pass(database: Database, rollout_id: int) -> tuple[int, int]:
    with database.session() as session:
        looks = session.exec(
            select(Measurement).where(col(Measurement.rollout_id) == rollout_id)
        ).all()
        said = session.exec(
            select(RolloutEvent).where(col(RolloutEvent.rollout_id) == rollout_id)
        ).all()
    return len(looks), len(said)


def lost_count() -> float:
    return REGISTRY.get_sample_value("controlplane_rollout_leases_lost_total") or 0.0


@pytest.mark.parametrize("knows_before_acting", [True, False], ids=["renewal", "commit"])
def test_a_replica_that_lost_its_lease_mid_pass_changes_nothing(
    database: Database,
    kube_api: KubeApi,
    namespace: str,
    knows_before_acting: bool,
) -> None:
    clock = Clock()
    rollout_id = at_the_analysis(database, kube_api, namespace, clock)
    prober = HeldProber()
    stalled = Reconciler(database, KubeDriver(kube_api), prober, clock=clock, owner="stalled")
    other = Reconciler(database, KubeDriver(kube_api), ScriptedProber(), clock=clock, owner="b")
    cluster_before = cluster_state(kube_api, namespace)
    written_before = written_by_the_pass(database, rollout_id)
    lost_before = lost_count()
    acted: list[bool] = []
    pass_ = threading.Thread(target=lambda: acted.append(stalled.reconcile(rollout_id)))
    pass_.start()
    try:
        assert prober.entered.wait(30), "the pass never reached its look"
        stalled.leases.close()  # the replica stalls mid-look: its heartbeat stops
        clock.now += timedelta(minutes=1)  # its lease lapses, and b claims the rollout
        claim = other.leases.claim(rollout_id)
        assert claim is not None, "b could not take over a lapsed lease"
        if knows_before_acting:
            stalled.leases.renew()  # a beat that got through: it learns the token moved on
        prober.release.set()
        pass_.join(30)
        assert acted == [False], "the stalled pass reported that it acted"
        assert written_by_the_pass(database, rollout_id) == written_before, (
            "a look or event of the stalled pass was written"
        )
        assert lost_count() == lost_before + 1
        row = rollout_row(database, rollout_id)
        assert (row.lease_owner, row.lease_token, row.step_index) == ("b", claim.token, 1)
        if knows_before_acting:
            assert cluster_state(kube_api, namespace) == cluster_before, (
                "the stalled replica changed the cluster after it learnt it lost the lease"
            )
        # b goes on from where the rollout was: the look is made again, by b
        other.leases.release(claim)
        done = drive(other, clock, database, rollout_id, until={Phase.SUCCEEDED})
        assert done.phase is Phase.SUCCEEDED
    finally:
        prober.release.set()
        pass_.join(30)
        stalled.close()
        other.close()
