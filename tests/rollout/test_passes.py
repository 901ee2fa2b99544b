"""Reconcile passes side by side (controlplane/rollout/passes.py), on both databases: passes
of different rollouts overlap, one rollout never has two passes at once (a tick that comes
while its pass runs skips it), and the rollouts of one base pool go one after another.

The pass itself is replaced by a recorder here (the reconciler's own passes are tested in
test_engine.py and test_adapters.py); the database and the grouping by pool are real.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from controlplane.db import Database
from controlplane.models import ModelCreate, PoolCreate, VersionCreate
from controlplane.registry import models as model_service
from controlplane.registry import pools as pool_service
from controlplane.registry import versions as version_service
from controlplane.rollout import service
from controlplane.rollout.passes import RolloutPasses

BASE = "meta-llama/Llama-3.1-8B-Instruct"


def rollouts(database: Database, *, full: int, adapters: int) -> tuple[list[int], list[int]]:
    """``full`` full-weights models and ``adapters`` adapter models on one base pool, each
    with a rollout started; their ids."""
    with database.session() as session:
        pool_service.create_pool(
            session,
            data=PoolCreate(
                name="llama",
                namespace="ml",
                base_model=BASE,
                deployment="llama-base",
                max_loras=4,
                max_lora_rank=16,
            ),
            actor="test",
        )
    ids: dict[str, list[int]] = {"full": [], "adapter": []}
    for kind, count in (("full", full), ("adapter", adapters)):
        for i in range(count):
            name = f"{kind}-{i}"
            with database.session() as session:
                if kind == "full":
                    data = ModelCreate(name=name, namespace="ml", image="vllm/vllm-openai:v0.11.0")
                    version = VersionCreate(version="v1", artifact_uri=f"s3://m/{name}")
                else:
                    data = ModelCreate(name=name, base_pool="llama")
                    version = VersionCreate(
                        version="v1",
                        artifact_uri=f"s3://adapters/{name}",
                        artifact_kind="lora_adapter",
                        base_model=BASE,
                        lora_rank=8,
                    )
                model_service.create_model(session, data=data, actor="test")
                version_service.register_version(
                    session, model_name=name, data=version, actor="test"
                )
                rollout = service.start_rollout(
                    session, model_name=name, version="v1", strategy=None, actor="test"
                )
                assert rollout.id is not None
                ids[kind].append(rollout.id)
    return ids["full"], ids["adapter"]


@dataclass
class Recorder:
    """A pass that takes a while and notes who ran beside whom."""

    adapters: set[int]
    seconds: float = 0.2
    quick: set[int] = field(default_factory=set)  # these take 10 ms
    lock: threading.Lock = field(default_factory=threading.Lock)
    running: Counter[int] = field(default_factory=Counter)
    passes: Counter[int] = field(default_factory=Counter)
    most_at_once: int = 0
    most_adapters_at_once: int = 0
    twice_at_once: list[int] = field(default_factory=list)

    def __call__(self, rollout_id: int) -> bool:
        with self.lock:
            self.running[rollout_id] += 1
            self.passes[rollout_id] += 1
            if self.running[rollout_id] > 1:
                self.twice_at_once.append(rollout_id)
            live = [i for i, n in self.running.items() if n]
            self.most_at_once = max(self.most_at_once, len(live))
            self.most_adapters_at_once = max(
                self.most_adapters_at_once, len([i for i in live if i in self.adapters])
            )
        time.sleep(0.01 if rollout_id in self.quick else self.seconds)
        with self.lock:
            self.running[rollout_id] -= 1
        return True


def test_passes_of_different_rollouts_run_side_by_side_and_one_pool_one_at_a_time(
    database: Database,
) -> None:
    full, adapters = rollouts(database, full=6, adapters=3)
    recorder = Recorder(adapters=set(adapters))
    passes = RolloutPasses(workers=4)
    try:
        started = time.monotonic()
        assert passes.run(database, full + adapters, recorder, wait=True) == 9
        took = time.monotonic() - started
    finally:
        passes.close()
    assert recorder.passes == Counter(dict.fromkeys(full + adapters, 1))
    assert recorder.most_at_once == 4  # every worker busy at once
    assert recorder.most_adapters_at_once == 1  # the pool's rollouts one after another
    assert took < 9 * recorder.seconds  # not one by one
    assert passes.in_flight == 0


def test_a_tick_skips_the_rollouts_whose_pass_is_still_running(database: Database) -> None:
    full, adapters = rollouts(database, full=4, adapters=2)
    # the full-weights passes outlast the tick (which waits for the pool's lane)
    recorder = Recorder(adapters=set(adapters), seconds=1.0, quick=set(adapters))
    passes = RolloutPasses(workers=8)
    try:
        # the scheduler's tick: start and return (waiting only for the pool's lane)
        started = passes.run(database, full + adapters, recorder, wait=False)
        assert started == 6
        assert passes.in_flight == 4  # the full-weights passes go on after the tick
        # the next tick, while they run: every one of them is in flight, none is started
        assert passes.run(database, full + adapters, recorder, wait=False) == 2
        deadline = time.monotonic() + 10
        while passes.in_flight and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        passes.close()
    assert recorder.twice_at_once == []
    assert recorder.passes == Counter({**dict.fromkeys(full, 1), **dict.fromkeys(adapters, 2)})


def test_a_pass_that_raises_does_not_stop_its_lane_or_stay_in_flight(database: Database) -> None:
    _, adapters = rollouts(database, full=0, adapters=3)
    seen: list[int] = []

    def flaky(rollout_id: int) -> bool:
        seen.append(rollout_id)
        if rollout_id == adapters[0]:
            raise RuntimeError("broken rollout")
        return True

    passes = RolloutPasses(workers=2)
    try:
        assert passes.run(database, adapters, flaky, wait=True) == 2
    finally:
        passes.close()
    assert seen == adapters
    assert passes.in_flight == 0
