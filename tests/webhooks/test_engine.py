"""The reconciler writes deliveries with its events: a canary promoted through its steps,
and an aborted one, on the real API server (marker ``cluster``), both databases."""

from __future__ import annotations

import pytest

from controlplane.analysis.verdict import Verdict
from controlplane.db import Database
from controlplane.kube import KubeDriver
from controlplane.kube.client import KubeApi
from controlplane.models import Command, Phase
from controlplane.rollout import reconciler as reconciler_module
from controlplane.rollout import service
from controlplane.rollout.reconciler import Reconciler
from tests.rollout.test_engine import STRATEGY, Clock, ScriptedProber, deploy_v1, drive, setup_model
from tests.webhooks.helpers import deliveries, subscribe

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.skipif(
        not hasattr(reconciler_module, "webhooks"),
        reason="the reconciler does not call controlplane.webhooks.service.enqueue yet",
    ),
]


def test_a_promoted_canary_announces_started_steps_and_promoted(
    database: Database, kube_api: KubeApi, namespace: str
) -> None:
    setup_model(database, namespace)
    clock = Clock()
    reconciler = Reconciler(
        database, KubeDriver(kube_api), ScriptedProber(Verdict.PASS), clock=clock
    )
    deploy_v1(database, reconciler, clock)
    subscribe(database, "all", "http://127.0.0.1:9/hook")
    with database.session() as session:
        rollout = service.start_rollout(
            session, model_name="chat", version="v2", strategy=STRATEGY, actor="ci", now=clock()
        )
    assert rollout.id is not None
    drive(reconciler, clock, database, rollout.id, until={Phase.SUCCEEDED})
    sent = [(d.event, d.payload["rollout"]["step_index"]) for d in deliveries(database)]
    assert sent == [("started", 0), ("step_passed", 1), ("step_passed", 2), ("promoted", 3)]
    assert {d.rollout_id for d in deliveries(database)} == {rollout.id}


def test_an_aborted_canary_announces_rolled_back(
    database: Database, kube_api: KubeApi, namespace: str
) -> None:
    setup_model(database, namespace)
    clock = Clock()
    reconciler = Reconciler(database, KubeDriver(kube_api), ScriptedProber(), clock=clock)
    deploy_v1(database, reconciler, clock)
    subscribe(database, "failures", "http://127.0.0.1:9/hook", events=["rolled_back"])
    with database.session() as session:
        rollout = service.start_rollout(
            session, model_name="chat", version="v2", strategy=STRATEGY, actor="ci", now=clock()
        )
    assert rollout.id is not None
    drive(reconciler, clock, database, rollout.id, until={Phase.PROGRESSING})
    with database.session() as session:
        service.request_command(
            session, rollout_id=rollout.id, command=Command.ABORT, actor="alice", now=clock()
        )
    drive(reconciler, clock, database, rollout.id, until={Phase.ABORTED})
    [delivery] = deliveries(database)
    assert delivery.event == "rolled_back"
    assert delivery.payload["rollout"]["phase"] == "aborted"
    assert "aborted by alice" in delivery.payload["message"]
