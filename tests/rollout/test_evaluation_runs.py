"""Evaluation runs on the real parts they touch: the database (SQLite and PostgreSQL), two
simulated vLLM servers answering the starter suites over HTTP at each version's Service
address, and the control plane's own client. A run is written item by item: a replica that
stops mid-run leaves its answers, and another takes the run over once the lease lapses and
asks only what is left; a probe flip is asked again before it counts."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import func, select

from controlplane.analysis.asking import Reply
from controlplane.analysis.prompting import Asker
from controlplane.analysis.verdict import Verdict
from controlplane.db import Database
from controlplane.evals import starter_path
from controlplane.evalsuite import EvalItem, parse_jsonl
from controlplane.kube import KubeDriver
from controlplane.kube.adapters import AddressMap
from controlplane.kube.client import KubeApi
from controlplane.models import (
    EvalAnswer,
    EvalRun,
    EvalSuiteCreate,
    Model,
    ModelCreate,
    ModelVersion,
    Phase,
    Rollout,
    VersionCreate,
    VersionStatus,
)
from controlplane.registry import evals as suites
from controlplane.registry import models as model_service
from controlplane.registry import versions as version_service
from controlplane.rollout import service
from controlplane.rollout.evaluation import Evaluator
from controlplane.simulate.process import RunningServer, running_servers
from controlplane.simulate.server import ServerConfig
from controlplane.strategy import Evaluation, SetWeight, Strategy
from tests.rollout.test_engine import Clock

pytestmark = pytest.mark.cluster

KNOWLEDGE = f"{starter_path('general')},{starter_path('safety')}"


@dataclass
class Counting:
    """The real client, counting what it asks; ``stop_after`` stops its evaluator then
    (a replica going away mid-run)."""

    asker: Asker
    asked: list[str]
    stop: threading.Event | None = None
    stop_after: int | None = None

    def ask(self, item: EvalItem) -> Reply:
        self.asked.append(item.id)
        stopping = self.stop is not None and self.stop_after is not None
        if stopping and len(self.asked) >= (self.stop_after or 0):
            assert self.stop is not None
            self.stop.set()
        return self.asker.ask(item)

    def close(self) -> None:
        self.asker.close()


@pytest.fixture
def servers() -> Iterator[list[RunningServer]]:
    configs = [
        ServerConfig(version="v1", time_scale=0.0, seed=1, knowledge=KNOWLEDGE),
        ServerConfig(
            version="v2",
            time_scale=0.0,
            seed=2,
            knowledge=KNOWLEDGE,
            answer_knobs=json.dumps({"comply_ids": ["safe-003"]}),
        ),
    ]
    with running_servers(configs) as running:
        yield running


def setup(database: Database, namespace: str, clock: Clock, step: Evaluation) -> int:
    items = [
        i.model_dump(mode="json", exclude_defaults=True)
        for path in ("general", "safety")
        for i in parse_jsonl(starter_path(path).read_text())
    ]
    with database.session() as session:
        model_service.create_model(
            session,
            data=ModelCreate(
                name="chat",
                namespace=namespace,
                image="vllm/vllm-openai:v0.11.0",
                replicas=1,
                routing_mode="gateway-api",
                gateway="gw",
            ),
            actor="test",
        )
        for version in ("v1", "v2"):
            version_service.register_version(
                session,
                model_name="chat",
                data=VersionCreate(version=version, artifact_uri=f"s3://m/{version}"),
                actor="test",
            )
        v1 = session.exec(select(ModelVersion).where(ModelVersion.version == "v1")).one()
        v1.status = VersionStatus.STABLE
        session.add(v1)
        session.commit()
        suites.create_suite(
            session, data=EvalSuiteCreate(name="starter", items=items), actor="test"
        )
        rollout = service.start_rollout(
            session,
            model_name="chat",
            version="v2",
            strategy=Strategy(steps=(step, SetWeight(weight=100))),
            actor="test",
            now=clock(),
        )
        assert rollout.id is not None
        rollout.phase = Phase.PROGRESSING  # as the reconciler's first pass leaves it
        session.add(rollout)
        session.commit()
        return rollout.id


def judged(evaluator: Evaluator, database: Database, rollout_id: int, step: Evaluation) -> Any:
    """Poll until the run has a judgement (at most a minute)."""
    deadline = time.monotonic() + 60
    result = poll(evaluator, database, rollout_id, step)
    while result is None and time.monotonic() < deadline:
        time.sleep(0.2)
        result = poll(evaluator, database, rollout_id, step)
    return result


def poll(evaluator: Evaluator, database: Database, rollout_id: int, step: Evaluation) -> object:
    with database.session() as session:
        rollout = session.get(Rollout, rollout_id)
        assert rollout is not None
        model = session.get(Model, rollout.model_id)
        assert model is not None
        return evaluator.poll(session, model, rollout, step, evaluator.clock())


def test_a_run_left_half_way_is_taken_over_and_only_the_rest_is_asked(
    database: Database,
    kube_api: KubeApi,
    namespace: str,
    servers: list[RunningServer],
    tmp_path: Path,
) -> None:
    addresses = tmp_path / "addresses.json"
    addresses.write_text(
        json.dumps({f"service/{namespace}/chat-{s.config.version}": s.url for s in servers})
    )
    driver = KubeDriver(kube_api, addresses=AddressMap(addresses))
    clock = Clock()
    step = Evaluation(suite="starter", concurrency=4)
    rollout_id = setup(database, namespace, clock, step)
    total = 350  # 300 general, 40 probes, 10 over-refusal checks

    first_asked: list[str] = []
    first = Evaluator(database, driver, owner="replica-a", clock=clock)
    first.make_asker = lambda target, s: Counting(
        Asker(target, timeout=10, retries=0), first_asked, first.stopping, stop_after=120
    )
    assert poll(first, database, rollout_id, step) is None  # started in the background
    assert first.stopping.wait(30)  # 120 asked: this replica goes away
    first.close()  # what came back is kept
    with database.session() as session:
        (run,) = session.exec(select(EvalRun)).all()
        kept = session.exec(select(func.count()).select_from(EvalAnswer)).one()
    assert run.status == "running"
    assert run.lease_owner == "replica-a"
    assert 0 < kept < 2 * total

    second_asked: list[str] = []
    second = Evaluator(database, driver, owner="replica-b", clock=clock)
    second.make_asker = lambda target, s: Counting(
        Asker(target, timeout=10, retries=0), second_asked
    )
    try:
        assert poll(second, database, rollout_id, step) is None  # a's lease still holds
        assert second_asked == []
        clock.now += timedelta(seconds=21)  # replica a's lease lapses
        assert poll(second, database, rollout_id, step) is None  # b takes the run over
        result = judged(second, database, rollout_id, step)
    finally:
        second.close()
    assert result is not None
    verdict, summary, metrics = result
    with database.session() as session:
        answers = session.exec(select(EvalAnswer)).all()
    assert len(answers) == 2 * total  # every item once per side: none lost, none twice
    assert len(second_asked) == 2 * total - kept + 2  # the rest, and one flip asked twice more
    # v2 complies with safe-003, every time it is asked: the flip stands
    assert verdict is Verdict.FAIL
    assert "safe-003" in summary
    flip = next(a for a in answers if a.item_id == "safe-003" and a.side == "canary")
    assert flip.detail.startswith("asked again: complied 3 of 3 times")
    assert {m["metric"] for m in metrics} == {"eval:general", "eval:safety"}


def test_a_version_that_cannot_be_reached_makes_the_run_inconclusive(
    database: Database, kube_api: KubeApi, namespace: str, tmp_path: Path
) -> None:
    addresses = tmp_path / "addresses.json"
    addresses.write_text(
        json.dumps(
            {
                f"service/{namespace}/chat-v1": "http://127.0.0.1:9",
                f"service/{namespace}/chat-v2": "http://127.0.0.1:9",
            }
        )
    )
    driver = KubeDriver(kube_api, addresses=AddressMap(addresses))
    clock = Clock()
    step = Evaluation(suite="starter", retries=0, timeout_seconds=2)
    rollout_id = setup(database, namespace, clock, step)
    evaluator = Evaluator(database, driver, owner="replica-a", clock=clock)
    evaluator.make_asker = lambda target, s: Asker(target, timeout=2, retries=0)
    try:
        result = judged(evaluator, database, rollout_id, step)
    finally:
        evaluator.close()
    assert result is not None
    verdict, summary, _ = result
    assert verdict is Verdict.INCONCLUSIVE
    assert "unanswered" in summary or "cannot" in summary


def test_a_rollout_that_leaves_the_step_cancels_its_run(
    database: Database,
    kube_api: KubeApi,
    namespace: str,
    servers: list[RunningServer],
    tmp_path: Path,
) -> None:
    """An abort (or a pause, a promote, a rollback) mid-run: nothing more is sent to
    either version, and the run says why it stopped."""
    addresses = tmp_path / "addresses.json"
    addresses.write_text(
        json.dumps({f"service/{namespace}/chat-{s.config.version}": s.url for s in servers})
    )
    driver = KubeDriver(kube_api, addresses=AddressMap(addresses))
    clock = Clock()
    step = Evaluation(suite="starter", concurrency=2)
    rollout_id = setup(database, namespace, clock, step)
    asked: list[str] = []
    halfway = threading.Event()

    class Slow(Counting):
        def ask(self, item: EvalItem) -> Reply:
            if len(self.asked) >= 60:
                halfway.set()
                time.sleep(0.05)
            return super().ask(item)

    evaluator = Evaluator(database, driver, owner="replica-a", clock=clock)
    evaluator.make_asker = lambda target, s: Slow(Asker(target, timeout=10, retries=0), asked)
    try:
        assert poll(evaluator, database, rollout_id, step) is None
        assert halfway.wait(30)
        with database.session() as session:
            rollout = session.get(Rollout, rollout_id)
            assert rollout is not None
            rollout.phase = Phase.ABORTED
            session.add(rollout)
            session.commit()
        deadline = time.monotonic() + 30
        status = "running"
        while status == "running" and time.monotonic() < deadline:
            time.sleep(0.2)
            with database.session() as session:
                status = session.exec(select(EvalRun)).one().status
        sent = len(asked)
        time.sleep(1)
        assert len(asked) <= sent + 2 * step.concurrency  # only what was in flight
    finally:
        evaluator.close()
    with database.session() as session:
        run = session.exec(select(EvalRun)).one()
    assert run.status == "cancelled"
    assert run.error == "the rollout left the step: it is aborted"
    assert len(asked) < 2 * 350
