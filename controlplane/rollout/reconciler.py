"""The reconcile loop: for each due rollout, observe, plan, act, record.

Level-triggered and idempotent, like a Kubernetes controller. A rollout is claimed with a
short lease and a fencing token (controlplane.rollout.leases: a conditional UPDATE, the
same on SQLite and PostgreSQL, so any number of replicas share the work without a database
lock held across Kubernetes calls); a heartbeat renews the lease while the pass runs, so a
crashed replica's rollouts are taken over within seconds, and a replica that lost its lease
writes neither to the cluster (checked before every change) nor its decision (the commit is
fenced by the token). The cluster is changed first, then the new facts and the event are
committed together; a process killed in between decides again on restart and re-applies
the same (idempotent) target, so no traffic move is repeated in a way that matters.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

import sqlalchemy as sa
from sqlmodel import Session, col, select

from controlplane import logs, telemetry
from controlplane.analysis.evals import judge_evals, scores_of
from controlplane.analysis.verdict import (
    Inconclusive,
    MeasurementOutcome,
    Verdict,
    Window,
    most_actionable,
)
from controlplane.db import Database
from controlplane.kube import KubeDriver, KubeError, PermanentKubeError, TemporaryKubeError
from controlplane.kube.adapters import PoolState
from controlplane.kube.render import Backend, Track, workload_for
from controlplane.models import (
    Command,
    Measurement,
    Model,
    ModelVersion,
    Phase,
    Rollout,
    RoutingMode,
    VersionStatus,
    utcnow,
)
from controlplane.registry import evals, pools
from controlplane.registry.pools import adapter_name
from controlplane.rollout.base_pools import pool_of, pool_ref
from controlplane.rollout.evaluation import Evaluator
from controlplane.rollout.leases import DEFAULT_LEASE, LeaseLost, RolloutLeases
from controlplane.rollout.passes import RolloutPasses
from controlplane.rollout.planner import (
    Decision,
    Facts,
    Limits,
    Observed,
    Target,
    plan,
    rollback,
)
from controlplane.rollout.service import add_event
from controlplane.rollout.strategy import (
    Analysis,
    Bake,
    EvalGate,
    Evaluation,
    Step,
    Strategy,
)
from controlplane.webhooks import service as webhooks

log = logging.getLogger(__name__)

# the routing modes whose weights are an HTTPRoute's, read back and drift-checked
ROUTES = (RoutingMode.GATEWAY_API, RoutingMode.INFERENCE_POOL)


@dataclass(frozen=True)
class ProbeResult:
    verdict: Verdict
    summary: str
    metrics: list[dict[str, Any]] = field(default_factory=list)
    inconclusive: Inconclusive | None = None


class Prober(Protocol):
    """Takes one analysis measurement of a rollout's canary against its stable version."""

    def measure(
        self, *, model: Model, rollout: Rollout, step: Analysis | Bake, now: datetime
    ) -> ProbeResult: ...


class NoMetricsProber:
    """What runs when no metrics source is configured: every measurement is inconclusive,
    so analysis steps pause for a person instead of passing blindly."""

    def measure(
        self, *, model: Model, rollout: Rollout, step: Analysis | Bake, now: datetime
    ) -> ProbeResult:
        return ProbeResult(
            Verdict.INCONCLUSIVE,
            "no metrics source is configured (set CONTROLPLANE_PROMETHEUS_URL)",
        )


def facts_of(rollout: Rollout, model: Model) -> Facts:
    if model.base_pool is not None:
        # an adapter on a base pool is one "replica": loaded on every serving pod of the
        # pool (ready) or not; it takes no GPU of its own, and the rewrite's weights are
        # exact (no replica share)
        return replace(_facts(rollout, model), replicas=1, gpus_per_replica=0, gpu_budget=None)
    return _facts(rollout, model)


def _facts(rollout: Rollout, model: Model) -> Facts:
    return Facts(
        phase=rollout.phase,
        steps=Strategy.model_validate(rollout.strategy).steps,
        step_index=rollout.step_index,
        step_started_at=rollout.step_started_at,
        routed_weight=rollout.routed_weight,
        replicas=model.replicas,
        gpus_per_replica=model.gpus_per_replica,
        gpu_budget=model.gpu_budget,
        has_stable=rollout.stable_version is not None,
        stable_replicas=rollout.stable_replicas,
        problem_since=rollout.problem_since,
        outcome_on_rollback=rollout.outcome_on_rollback,
        reason=rollout.reason,
        command=rollout.command,
        command_by=rollout.command_by,
        command_reason=rollout.command_reason,
        replica_routing=model.routing_mode is RoutingMode.REPLICAS and model.base_pool is None,
        analysis_windows=tuple(Window.from_json(w) for w in rollout.analysis_windows),
        canary_replicas=rollout.canary_replicas,
        drift_count=rollout.drift_count,
        stable_short_since=rollout.stable_short_since,
    )


class Reconciler:
    def __init__(
        self,
        database: Database,
        driver: KubeDriver,
        prober: Prober | None = None,
        *,
        owner: str | None = None,
        clock: Callable[[], datetime] = utcnow,
        limits: Limits | None = None,
        lease: timedelta = DEFAULT_LEASE,
        evaluator: Evaluator | None = None,
        workers: int = 1,
    ) -> None:
        self.database = database
        self.driver = driver
        self.prober = prober or NoMetricsProber()
        self.owner = owner or f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
        self.clock = clock
        # evaluation steps' runs: prompts sent in the background, judged when done
        self.evaluator = evaluator or Evaluator(database, driver, owner=self.owner, clock=clock)
        self.limits = limits or Limits()
        self.leases = RolloutLeases(database, owner=self.owner, clock=clock, lease=lease)
        self._local = threading.local()  # the claim of the pass running on this thread
        # an adapter rollout's placement read during the current pass, written at its end
        self._placing: dict[int, tuple[dict[str, Any], list[tuple[datetime, str, Any]]]] = {}
        # passes of different rollouts side by side, ``workers`` at a time (1: one by one,
        # in the caller's thread)
        self.passes = RolloutPasses(workers) if workers > 1 else None

    # --- the loop ---------------------------------------------------------------------

    def due(self) -> list[int]:
        live = [p for p in Phase if p.is_live]
        with self.database.session() as session:
            ids = session.exec(
                select(Rollout.id)
                .where(
                    col(Rollout.phase).in_(live),
                    Rollout.next_check_at <= self.clock(),
                )
                .order_by(col(Rollout.next_check_at))
            ).all()
        return [i for i in ids if i is not None]

    def run_due(self, *, wait: bool = True) -> int:
        """One tick: reconcile every due rollout this replica can claim. Returns how many.

        With ``workers`` above 1 the passes run side by side (see
        :mod:`controlplane.rollout.passes`); ``wait=False`` (the scheduler's tick) returns
        once they are started, with how many, so that a slow pass never holds back the
        rollouts that fall due behind it; the next tick skips those still in flight."""

        def one(rollout_id: int) -> bool:
            started = time.perf_counter()
            try:
                if self.reconcile(rollout_id):
                    telemetry.RECONCILE_SECONDS.observe(time.perf_counter() - started)
                    return True
            except Exception:  # one broken rollout must not stop the others
                telemetry.RECONCILE_ERRORS.inc()
                log.exception(
                    "reconcile of rollout %s failed", rollout_id, extra={"rollout_id": rollout_id}
                )
            return False

        if self.passes is not None:
            return self.passes.run(self.database, self.due(), one, wait=wait)
        return sum(one(rollout_id) for rollout_id in self.due())

    def close(self) -> None:
        """Stop the lease heartbeat and the evaluation runs (their answers are kept; they
        resume on whichever replica claims their rollout next)."""
        self.leases.close()
        self.evaluator.close()

    def reconcile(self, rollout_id: int, *, max_moves: int = 5) -> bool:
        """Claim the rollout and act on it; a decision that asks to be followed at once (a
        transition: a rollback must move traffic now, not at the next tick) is followed in
        the same call, up to ``max_moves`` times."""
        for _ in range(max_moves):
            claim = self.leases.claim(rollout_id)
            if claim is None:
                return False
            self._local.claim = claim
            try:
                with self.database.session() as session:
                    rollout = session.get(Rollout, rollout_id)
                    if rollout is None or rollout.phase.is_terminal:
                        return False
                    model = session.get(Model, rollout.model_id)
                    assert model is not None
                    with logs.context(
                        rollout_id=rollout.id, model=model.name, version=rollout.canary_version
                    ):
                        again = self._reconcile(session, rollout, model)
            except LeaseLost as lost:
                # nothing of this pass was written; the holder of the lease decides again
                log.warning(
                    "%s: the pass stopped, its decision unwritten",
                    lost,
                    extra={"rollout_id": rollout_id},
                )
                return False
            finally:
                # a pass that broke, or lost the lease without it being taken (not renewed
                # in time), gives it back: nobody waits it out, no heartbeat keeps it
                self.leases.settle(claim)
                self._local.claim = None
                self._placing.pop(rollout_id, None)
            if not again:
                break
        return True

    def _fence_check(self) -> None:
        """Before a change to the cluster: this pass's lease must still be held."""
        claim = getattr(self._local, "claim", None)
        if claim is not None:
            self.leases.check(claim)

    def _fence(self, session: Session) -> None:
        """Just before a pass commits: release the lease if its token is still ours; raise
        LeaseLost (the transaction rolled back) if not."""
        claim = getattr(self._local, "claim", None)
        if claim is not None:
            self.leases.fence(session, claim)

    # --- one rollout ------------------------------------------------------------------

    def _observe(self, session: Session, model: Model, rollout: Rollout) -> Observed:
        if model.base_pool is not None:
            return self._observe_adapters(session, model, rollout)
        pools = model.routing_mode is RoutingMode.INFERENCE_POOL
        canary = self.driver.observe_version(
            model.namespace,
            model.name,
            rollout.canary_version,
            gpu_resource=model.gpu_resource,
            endpoint_picker=pools,
        )
        stable = None
        if rollout.stable_version is not None:
            stable = self.driver.observe_version(
                model.namespace,
                model.name,
                rollout.stable_version,
                gpu_resource=model.gpu_resource,
                with_free_gpus=False,
                endpoint_picker=pools,
            )
        route = None
        if model.routing_mode in ROUTES and rollout.stable_version is not None:
            route = self.driver.read_weight(
                routing_mode=model.routing_mode,
                model=model.name,
                namespace=model.namespace,
                stable_version=rollout.stable_version,
                canary_version=rollout.canary_version,
            )
        return Observed(canary=canary, stable=stable, route=route)

    def _observe_adapters(self, session: Session, model: Model, rollout: Rollout) -> Observed:
        """An adapter model: what every pod of its base pool holds, and the rewrite's
        weights read back."""
        pool = pool_of(session, model)
        state = self.driver.adapters.observe_pool(pool_ref(pool))
        canary = state.version_state(adapter_name(model.name, rollout.canary_version))
        stable = route = None
        if rollout.stable_version is not None:
            stable_name = adapter_name(model.name, rollout.stable_version)
            stable = state.version_state(stable_name)
            route = self.driver.adapters.read_rewrite(
                model=model.name,
                namespace=model.namespace,
                stable=stable_name,
                canary=canary.name,
            )
        return Observed(canary=canary, stable=stable, route=route, pool=state)

    def _place(
        self, session: Session, rollout: Rollout, model: Model, state: PoolState, now: datetime
    ) -> None:
        """Keep on the rollout which pod of the pool holds which adapters, and say in an
        event when the stable or canary adapter arrived on or left a pod (a load, an
        unload, a pod restarted or added): the history of where the adapters were."""
        canary = adapter_name(model.name, rollout.canary_version)
        stable = (
            adapter_name(model.name, rollout.stable_version)
            if rollout.stable_version is not None
            else None
        )
        pods = state.as_json()

        def shape(rows: list[dict[str, Any]]) -> list[tuple[str, bool, bool, bool]]:
            return [
                (
                    row["pod"],
                    bool(row["serving"]),
                    canary in (row["adapters"] or ()),
                    stable is not None and stable in (row["adapters"] or ()),
                )
                for row in rows
            ]

        assert rollout.id is not None
        pending = self._placing.get(rollout.id)
        last = pending[0] if pending is not None else rollout.placement
        events = list(pending[1]) if pending is not None else []
        if shape(list(last.get("pods") or [])) != shape(pods):
            notes = [state.version_state(canary).note]
            if stable is not None:
                notes.append(state.version_state(stable).note.replace(f" of pool {state.name}", ""))
            message = f"{canary}: {notes[0]}" + (
                f"; {stable}: {notes[1]}" if stable is not None else ""
            )
            events.append((now, message, {"pool": state.name, "pods": pods}))
        placement = {
            "pool": state.name,
            "stable_adapter": stable,
            "canary_adapter": canary,
            "observed_at": now.isoformat(),
            "pods": pods,
        }
        # written with the pass's decision (_record or _release), not now: a row changed
        # in the session would be flushed by the next query and hold the database's write
        # lock through every adapter load of the pass
        self._placing[rollout.id] = (placement, events)

    def _write_placement(self, session: Session, rollout: Rollout) -> None:
        """What _place kept during this pass, onto the rollout and its history."""
        assert rollout.id is not None
        pending = self._placing.pop(rollout.id, None)
        if pending is None:
            return
        placement, events = pending
        rollout.placement = placement
        for at, message, evidence in events:
            add_event(
                session,
                rollout,
                at=at,
                actor="system",
                kind="placement",
                message=message,
                evidence=evidence,
            )

    def _measurements(self, session: Session, rollout: Rollout) -> list[MeasurementOutcome]:
        rows = session.exec(
            select(Measurement)
            .where(
                Measurement.rollout_id == rollout.id,
                Measurement.step_index == rollout.step_index,
                Measurement.at >= rollout.step_started_at,
                col(Measurement.discarded).is_(None),
            )
            .order_by(col(Measurement.id))
        ).all()
        return [
            MeasurementOutcome(
                at=r.at,
                verdict=Verdict(r.verdict),
                summary=r.summary,
                step_index=r.step_index,
                inconclusive=_inconclusive_of(r),
            )
            for r in rows
        ]

    def _judge_evals(
        self, session: Session, model: Model, rollout: Rollout, step: EvalGate, now: datetime
    ) -> ProbeResult:
        """The eval gate's measurement: the scores recorded with the two versions."""
        canary = _version_row(session, model, rollout.canary_version)
        stable = None
        if rollout.stable_version is not None:
            stable = _version_row(session, model, rollout.stable_version)
        measured: dict[str, dict[str, str]] = {}
        scores: dict[str, dict[str, Any]] = {}
        for row in (canary, stable):
            if row is None:
                continue
            assert row.id is not None
            imported = evals.scores_of_version(session, row.id)
            # measured scores over typed ones of the same name
            scores[row.version] = {**scores_of(row.meta), **{s.name: s.value for s in imported}}
            measured[row.version] = {s.name: evals.provenance_text(s) for s in imported}
        result = judge_evals(
            step.checks,
            scores[canary.version],
            scores[stable.version] if stable is not None else None,
            canary_version=rollout.canary_version,
            stable_version=rollout.stable_version,
            at=now,
            measured=measured,
        )
        return ProbeResult(result.verdict, result.summary, result.evidence()["metrics"])

    def _reconcile(self, session: Session, rollout: Rollout, model: Model) -> bool:
        """One pass; an adapter model's under its base pool's lease (shared with the pool
        keepers of every replica): one replica at a time reads and changes a pool's pods,
        so none acts on what it read before another's change."""
        if model.base_pool is None:
            return self._pass(session, rollout, model)
        pool, now = model.base_pool, self.clock()
        # claimed before the pass writes (SQLite has one writer), renewed by the heartbeat
        if not self.leases.claim_pool(pool):
            self._release(
                session,
                rollout,
                now,
                timedelta(seconds=2),
                f"base pool {pool} is being changed by another replica (its keeper, or "
                "a rollout of another model on it): trying again in a moment",
            )
            return False
        try:
            return self._pass(session, rollout, model)
        finally:
            self.leases.release_pool(pool)

    def _pass(self, session: Session, rollout: Rollout, model: Model) -> bool:
        """One observe-plan-act-record pass. True when the next pass should follow now."""
        now = self.clock()
        assert rollout.id is not None
        self._placing.pop(rollout.id, None)  # nothing left from a pass that broke off
        facts = facts_of(rollout, model)
        try:
            observed = self._observe(session, model, rollout)
            if observed.pool is not None:
                self._place(session, rollout, model, observed.pool, now)
        except KubeError as error:
            self._release(
                session, rollout, now, _delay(error), f"cannot observe the cluster: {error.message}"
            )
            return False
        measurements = self._measurements(session, rollout)
        decision = plan(facts, observed, measurements, now, self.limits)
        if decision.measure:
            result = self._measure(session, model, rollout, facts.steps[facts.step_index], now)
            if result is None:  # an evaluation run goes on in the background: look again soon
                decision = replace(
                    decision, measure=False, requeue_after=self.limits.evaluation_poll
                )
            else:
                self._add_measurement(session, rollout, now, result, measurements)
                decision = plan(facts, observed, measurements, now, self.limits)
        followed = False  # this pass made the canary ready itself: the next one follows now
        if decision.target is not None:
            try:
                followed = self._apply(
                    session, model, rollout, decision.target, facts.routed_weight, observed
                )
            except TemporaryKubeError as error:
                self._release(
                    session,
                    rollout,
                    now,
                    _delay(error),
                    f"cluster change deferred: {error.message}",
                )
                return False
            except PermanentKubeError as error:
                if facts.phase is Phase.ROLLING_BACK:
                    self._release(
                        session,
                        rollout,
                        now,
                        timedelta(seconds=30),
                        f"rollback blocked: {error.message}",
                    )
                    return False
                decision = rollback(
                    facts, f"the cluster refused a change: {error.message}", now=now
                )
        if followed and decision.requeue_after > timedelta(0):
            decision = replace(decision, requeue_after=timedelta(0))
        self._record(session, rollout, model, decision, now)
        return decision.requeue_after <= timedelta(0) and not decision.facts.phase.is_terminal

    def _measure(
        self, session: Session, model: Model, rollout: Rollout, step: Step, now: datetime
    ) -> ProbeResult | None:
        """The step's measurement; None while an evaluation run has not finished."""
        if isinstance(step, Evaluation):
            judged = self.evaluator.poll(session, model, rollout, step, now)
            return None if judged is None else ProbeResult(*judged)
        if isinstance(step, EvalGate):
            return self._judge_evals(session, model, rollout, step, now)
        assert isinstance(step, Analysis | Bake)
        return self.prober.measure(model=model, rollout=rollout, step=step, now=now)

    def _add_measurement(
        self,
        session: Session,
        rollout: Rollout,
        now: datetime,
        result: ProbeResult,
        measurements: list[MeasurementOutcome],
    ) -> None:
        assert rollout.id is not None
        session.add(
            Measurement(
                rollout_id=rollout.id,
                step_index=rollout.step_index,
                at=now,
                weight=rollout.routed_weight,
                verdict=result.verdict.value,
                summary=result.summary[:4000],
                metrics=result.metrics,
            )
        )
        measurements.append(
            MeasurementOutcome(
                now, result.verdict, result.summary, rollout.step_index, result.inconclusive
            )
        )
        telemetry.VERDICTS.labels(result.verdict.value).inc()

    def _apply(
        self,
        session: Session,
        model: Model,
        rollout: Rollout,
        target: Target,
        routed_before: int,
        observed: Observed,
    ) -> bool:
        """Converge the cluster to ``target``; True when that made the canary ready then
        and there (an adapter loaded on every pod: no reason to wait a poll to route it)."""
        canary_version = _version_row(session, model, rollout.canary_version)
        stable_version = (
            _version_row(session, model, rollout.stable_version)
            if rollout.stable_version is not None
            else None
        )
        if model.base_pool is not None:
            state = self._apply_adapters(session, model, rollout, target, observed, canary_version)
            adapter = adapter_name(model.name, canary_version.version)
            return (
                target.canary_replicas > 0
                and observed.canary.ready == 0
                and state.version_state(adapter).ready > 0
            )
        canary = workload_for(
            model, canary_version, track=target.canary_track, replicas=target.canary_replicas
        )
        stable = (
            workload_for(model, stable_version, track=Track.STABLE, replicas=target.stable_replicas)
            if stable_version
            else None
        )
        gateway = model.routing_mode in ROUTES

        def route(weight: int) -> None:
            self._fence_check()
            if not gateway:
                # all the traffic on the canary with the old stable still warm (a bake): the
                # model's Service selects the canary alone; otherwise every ready pod
                warm = stable is not None and target.stable_replicas > 0
                alone = weight == 100 and warm and not target.retire_stable
                self.driver.apply_routing(
                    routing_mode=RoutingMode.REPLICAS,
                    model=model.name,
                    namespace=model.namespace,
                    port=model.port,
                    gateway=None,
                    backends=[Backend(canary.version, 100)] if alone else [],
                )
            elif stable is None or target.retire_stable:
                self.driver.apply_routing(
                    routing_mode=model.routing_mode,
                    model=model.name,
                    namespace=model.namespace,
                    port=model.port,
                    gateway=model.gateway,
                    backends=[Backend(canary.version, 100)],
                )
            else:
                self.driver.set_weight(
                    model=model.name,
                    namespace=model.namespace,
                    port=model.port,
                    gateway=model.gateway or "",
                    stable_version=stable.version,
                    canary_version=canary.version,
                    weight=weight,
                    routing_mode=model.routing_mode,
                )

        lowering = target.weight < routed_before
        if lowering:
            route(target.weight)  # traffic moves to stable before anything scales down
        # the replicas each Deployment is asked for now, as observed at the start of this pass
        current = {canary.name: observed.canary.desired}
        if stable is not None and observed.stable is not None:
            current[stable.name] = observed.stable.desired
        workloads = [w for w in (canary, stable) if w is not None]
        # free GPUs before asking for them: shrink first, then grow
        for w in sorted(workloads, key=lambda w: w.replicas - current.get(w.name, 0)):
            self._fence_check()
            self.driver.apply_version(w)
        if not lowering:
            route(target.weight)
        if target.retire_stable and stable is not None:
            self._fence_check()
            self.driver.delete_version(model.namespace, model.name, stable.version)
        return False

    def _apply_adapters(
        self,
        session: Session,
        model: Model,
        rollout: Rollout,
        target: Target,
        observed: Observed,
        canary_version: ModelVersion,
    ) -> PoolState:
        """An adapter model's target on its base pool, in the one safe order: load what
        the target keeps (every serving pod), then route the model name by weight, then
        unload the canary it no longer keeps (only in a later pass than the one that took
        its traffic away); gated pods take traffic only once they hold what the routing
        needs."""
        pool = pool_of(session, model)
        state = observed.pool
        assert state is not None
        canary = adapter_name(model.name, canary_version.version)
        stable_row = (
            _version_row(session, model, rollout.stable_version)
            if rollout.stable_version is not None
            else None
        )
        stable = adapter_name(model.name, stable_row.version) if stable_row else None
        keep: dict[str, str] = {}
        if target.canary_replicas > 0:
            keep[canary] = canary_version.artifact_uri
        if stable_row is not None and stable and target.stable_replicas > 0:
            keep[stable] = stable_row.artifact_uri
        self._fence_check()
        state = self.driver.adapters.ensure_loaded(state, keep)
        refused = {name: why for name, why in state.failures.items() if name in keep}
        if refused:
            raise PermanentKubeError(
                f"base pool {pool.name} refused adapter "
                + "; ".join(f"{name} ({why})" for name, why in sorted(refused.items())),
                reason="AdapterRefused",
            )
        weight = target.weight
        targets: list[tuple[str, int]] = []
        if stable is not None and not target.retire_stable and weight < 100:
            targets.append((stable, 100 - weight))
        if weight > 0:
            targets.append((canary, weight))
        self._fence_check()
        if targets:
            self.driver.adapters.apply_rewrite(
                model=model.name,
                namespace=model.namespace,
                pool=pool.inference_pool or pool.name,
                targets=targets,
            )
        else:  # a first version rolled back: nothing of the model is left to route to
            self.driver.adapters.delete_rewrite(model=model.name, namespace=model.namespace)
        # unload only what no traffic was routed to when this pass began: a gateway follows
        # a rewrite within moments, and a request it routed just before must still find
        # its adapter; the old stable after a promotion is the keeper's to unload, once
        # it has been out of the route for the drain time
        route = observed.route
        drop = [canary] if canary not in keep and (route is None or route.canary == 0) else []
        self._fence_check()
        state = self.driver.adapters.unload(state, drop)
        _, gate = pools.pool_needs(session, pool)
        gate = (gate - {canary, *(n for n in (stable,) if n and n not in keep)}) | {
            name for name, w in targets if w > 0
        }
        self._fence_check()
        self.driver.adapters.set_gates(state, gate)
        self._place(session, rollout, model, state, self.clock())
        return state

    def _record(
        self, session: Session, rollout: Rollout, model: Model, decision: Decision, now: datetime
    ) -> None:
        self._write_placement(session, rollout)
        before, step_before = rollout.phase, rollout.step_index
        started_before = rollout.step_started_at
        new = decision.facts
        rollout.phase = new.phase
        rollout.step_index = new.step_index
        rollout.step_started_at = new.step_started_at
        rollout.routed_weight = new.routed_weight
        rollout.stable_replicas = new.stable_replicas
        rollout.canary_replicas = new.canary_replicas
        if decision.target is not None:  # what was just applied is what we now own
            rollout.canary_replicas = decision.target.canary_replicas
            if rollout.stable_version is not None:
                rollout.stable_replicas = (
                    0 if decision.target.retire_stable else decision.target.stable_replicas
                )
        rollout.analysis_windows = [w.to_json() for w in new.analysis_windows]
        rollout.drift_count = new.drift_count
        rollout.stable_short_since = new.stable_short_since
        if decision.discard is not None:
            _discard(session, rollout, decision.discard, step=step_before, since=started_before)
        rollout.problem_since = new.problem_since
        rollout.outcome_on_rollback = new.outcome_on_rollback
        rollout.reason = new.reason
        consumed = _consumed_command(rollout, new)
        if consumed is None:
            rollout.command, rollout.command_by = new.command, new.command_by
            rollout.command_reason = new.command_reason
        rollout.updated_at = now
        rollout.next_check_at = now + decision.requeue_after
        if new.phase.is_terminal:
            rollout.live_model_id = None
            rollout.finished_at = now
        if new.phase is not before:
            self._version_statuses(session, rollout, model, new.phase, now)
        session.add(rollout)
        if decision.event is not None:
            add_event(
                session,
                rollout,
                at=now,
                actor=decision.actor,
                kind=decision.event.kind,
                message=decision.event.message,
                evidence=decision.event.evidence,
            )
            announced = webhooks.event_for(
                before,
                new.phase,
                decision.event.kind,
                step_before=step_before,
                step_after=new.step_index,
            )
            if announced is not None:  # the outbox: committed with the event, sent later
                webhooks.enqueue(
                    session,
                    rollout,
                    announced,
                    decision.event.message,
                    decision.event.evidence,
                    now=now,
                )
        if consumed is not None:
            _clear_command(session, rollout, consumed)
        _due_now_if_commanded(session, rollout, now)
        identity = {
            "rollout_id": rollout.id,
            "model": rollout.model,
            "version": rollout.canary_version,
        }
        self._fence(session)
        session.commit()
        # counted and said once the decision is in the database (a fenced-off pass is not)
        if new.phase is not before:
            telemetry.TRANSITIONS.labels(new.phase.value).inc()
        if decision.event is not None:
            telemetry.DECISIONS.labels(decision.event.kind).inc()
            log.info(
                "rollout %s: %s", identity["rollout_id"], decision.event.message, extra=identity
            )

    def _version_statuses(
        self, session: Session, rollout: Rollout, model: Model, phase: Phase, now: datetime
    ) -> None:
        def set_status(version: str | None, status: VersionStatus) -> None:
            if version is None:
                return
            row = _version_row(session, model, version)
            row.status, row.status_changed_at = status, now
            session.add(row)

        if phase is Phase.SUCCEEDED:
            set_status(rollout.canary_version, VersionStatus.STABLE)
            set_status(rollout.stable_version, VersionStatus.RETIRED)
        elif phase in (Phase.ROLLED_BACK, Phase.ABORTED):
            set_status(rollout.canary_version, VersionStatus.ROLLED_BACK)

    def _release(
        self, session: Session, rollout: Rollout, now: datetime, delay: timedelta, message: str
    ) -> None:
        """Keep the facts, try again later, and say why (once per distinct reason)."""
        self._write_placement(session, rollout)
        rollout.next_check_at = now + delay
        session.add(rollout)
        add_event(session, rollout, at=now, actor="system", kind="hold", message=message)
        _due_now_if_commanded(session, rollout, now)
        self._fence(session)
        session.commit()
        log.warning("rollout %s: %s", rollout.id, message, extra={"rollout_id": rollout.id})


def _discard(
    session: Session, rollout: Rollout, reason: str, *, step: int, since: datetime
) -> None:
    """Mark the current step's looks since ``since`` (its start, before this decision
    restarts it) as no longer evidence, with the reason."""
    session.execute(
        sa.update(Measurement)
        .where(
            col(Measurement.rollout_id) == rollout.id,
            col(Measurement.step_index) == step,
            col(Measurement.at) >= since,
            col(Measurement.discarded).is_(None),
        )
        .values(discarded=reason[:1000])
        .execution_options(synchronize_session=False)
    )


_Command = tuple[Command, str | None, str]  # a command, who gave it, why


def _consumed_command(rollout: Rollout, new: Facts) -> _Command | None:
    """The command this pass read and acted on (or dropped), if it did."""
    if rollout.command is None or new.command is not None:
        return None
    return rollout.command, rollout.command_by, rollout.command_reason


def _clear_command(session: Session, rollout: Rollout, consumed: _Command) -> None:
    """Clear the command this pass consumed, and only that one: a command a person gave
    while the pass ran (an abort after the pause this pass carried out) was answered 202
    and stays for the next pass, instead of being overwritten with the pass's NULL."""
    command, by, reason = consumed
    session.flush()
    session.execute(
        sa.update(Rollout)
        .where(
            col(Rollout.id) == rollout.id,
            col(Rollout.command) == command,
            col(Rollout.command_by).is_not_distinct_from(by),
            col(Rollout.command_reason) == reason,
        )
        .values(command=None, command_by=None, command_reason="")
        .execution_options(synchronize_session=False)
    )


def _due_now_if_commanded(session: Session, rollout: Rollout, now: datetime) -> None:
    """A person's command written while this pass ran (after the rollout was read) must not
    wait for the rescheduling this pass decided: the UPDATE makes the rollout due at once
    whenever a command is pending in the row as it is when the UPDATE runs (PostgreSQL
    re-reads a row another transaction changed; SQLite serializes writers), so the command
    takes effect on the next tick, never a check period later."""
    session.flush()
    session.execute(
        sa.update(Rollout)
        .where(col(Rollout.id) == rollout.id, col(Rollout.command).is_not(None))
        .values(next_check_at=now)
        .execution_options(synchronize_session=False)
    )


def _inconclusive_of(row: Measurement) -> Inconclusive | None:
    """Why a stored measurement was inconclusive, from its metrics' records."""
    if row.verdict != Verdict.INCONCLUSIVE.value:
        return None
    return most_actionable(m.get("inconclusive") for m in row.metrics if isinstance(m, dict))


def _version_row(session: Session, model: Model, version: str) -> ModelVersion:
    return session.exec(
        select(ModelVersion).where(
            ModelVersion.model_id == model.id, ModelVersion.version == version
        )
    ).one()


def _delay(error: KubeError) -> timedelta:
    return timedelta(seconds=error.delay if isinstance(error, TemporaryKubeError) else 30)
