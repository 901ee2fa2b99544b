"""The evaluation step's runs: an eval suite sent to the canary and to stable in the
background, its answers kept item by item, then judged.

A run is a row (``eval_run``) and its answers are rows (``eval_answer``), written as they
come back: a control plane restarted mid-run goes on with the items left, and another
replica takes a run over once its lease lapses. Every write is fenced by the lease (a
replica that lost it writes nothing more). The reconcile pass never waits on prompts: it
asks :meth:`Evaluator.poll`, which starts or resumes the run and answers only once the
run has finished (or ran out of time), with the judgement as a measurement.

The stable version's answers are reused from an earlier finished run of the same suite
version and settings (versions are immutable), unless the step says otherwise: the usual
case is the previous rollout's canary, now stable.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from controlplane.analysis.asking import Asks, Reply, Target, ask_all
from controlplane.analysis.quality import confirmed, flips, judge_quality
from controlplane.analysis.scoring import score
from controlplane.analysis.verdict import Verdict
from controlplane.db import Database
from controlplane.evalsuite import EvalItem, parse_items
from controlplane.kube.driver import KubeDriver
from controlplane.kube.errors import KubeError
from controlplane.models import (
    EvalAnswer,
    EvalRun,
    EvalSuite,
    Model,
    Phase,
    Rollout,
    utcnow,
)
from controlplane.registry import evals
from controlplane.registry.pools import adapter_name
from controlplane.rollout.base_pools import pool_of, pool_ref
from controlplane.strategy import Evaluation

log = logging.getLogger(__name__)

SIDES = ("stable", "canary")
ANSWER_CHARS = 2000
LEASE = timedelta(seconds=10)
FLUSH_EVERY = 0.5  # seconds between writes of answers (and lease renewals)
HEARTBEAT = 3.0  # seconds between lease renewals while requests are in flight
ASKED = "asked again"  # a safety flip's answer row, once the canary was asked again


def settings_of(step: Evaluation) -> dict[str, Any]:
    """What makes two runs' answers comparable (and so reusable): the sampling."""
    return {"temperature": 0, "api": "chat.completions"}


def _settings_key(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


class Evaluator:
    """Starts, resumes and reads the evaluation runs of this replica's rollouts."""

    def __init__(
        self,
        database: Database,
        driver: KubeDriver,
        *,
        owner: str,
        clock: Callable[[], datetime] = utcnow,
        workers: int = 4,
        asker: Callable[[Target, Evaluation], Asks] | None = None,
    ) -> None:
        self.database = database
        self.driver = driver
        self.owner = owner
        self.clock = clock
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="evaluation")
        self.running: set[int] = set()
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        # the client that asks a version (HTTP, given by whoever builds the evaluator)
        self.make_asker = asker

    def close(self) -> None:
        self.stopping.set()
        self.pool.shutdown(wait=True, cancel_futures=True)

    # --- from the reconcile pass ---------------------------------------------------------

    def poll(
        self, session: Session, model: Model, rollout: Rollout, step: Evaluation, now: datetime
    ) -> tuple[Verdict, str, list[dict[str, Any]]] | None:
        """The run's judgement once it has finished; None while it goes on (started or
        resumed here when nobody is sending it)."""
        assert rollout.id is not None
        run = session.exec(
            select(EvalRun)
            .where(
                EvalRun.rollout_id == rollout.id,
                EvalRun.step_index == rollout.step_index,
                col(EvalRun.started_at) >= rollout.step_started_at,
            )
            .order_by(col(EvalRun.id).desc())
        ).first()
        if run is None:
            run_id = self._create(model, rollout, step, now)
            self._submit(run_id, step)
            return None
        assert run.id is not None
        if run.status != "running":
            result = run.result or {}
            return (
                Verdict(result.get("verdict", "inconclusive")),
                str(result.get("summary") or run.error or "evaluation ended without a result"),
                list(result.get("metrics") or []),
            )
        elapsed = (now - run.started_at).total_seconds()
        if elapsed > step.max_duration_seconds:
            self._finish_out_of_time(run.id, step, now)
            return None
        mine = run.lease_owner == self.owner
        lapsed = run.lease_until is None or run.lease_until < now
        with self.lock:
            active = run.id in self.running
        if (mine and not active) or (not mine and lapsed):
            self._submit(run.id, step)  # a restart, or another replica's run left behind
        return None

    def _create(self, model: Model, rollout: Rollout, step: Evaluation, now: datetime) -> int:
        assert rollout.id is not None
        assert model.id is not None
        with self.database.session() as session:
            suite = evals.get_suite(session, step.suite, step.suite_version)
            assert suite.id is not None
            sampling = settings_of(step)
            settings = {**sampling, "key": _settings_key(sampling)}
            run = EvalRun(
                rollout_id=rollout.id,
                model_id=model.id,
                step_index=rollout.step_index,
                suite_id=suite.id,
                suite=f"{suite.name}@{suite.version}",
                canary_version=rollout.canary_version,
                stable_version=rollout.stable_version,
                status="running",
                settings=settings,
                started_at=now,
                lease_owner=self.owner,
                lease_until=now + LEASE,
            )
            session.add(run)
            session.flush()
            assert run.id is not None
            if step.reuse_stable and rollout.stable_version is not None:
                items = {i.id: i for i in parse_items(list(suite.items))}
                reused = self._reuse(session, run, model.id, rollout.stable_version, items)
                if reused:
                    run.cost = {"reused": {"stable": reused}}
            session.commit()
            log.info(
                "evaluation run %s of rollout %s started: suite %s",
                run.id,
                rollout.id,
                run.suite,
                extra={"rollout_id": rollout.id},
            )
            return run.id

    def _reuse(
        self,
        session: Session,
        run: EvalRun,
        model_id: int,
        version: str,
        items: dict[str, EvalItem],
    ) -> int:
        """Copy ``version``'s answers from the newest finished run of the same suite and
        settings where it answered (as canary or as stable), scored again by this control
        plane's scorers (the canary's answers are: a scorer changed by an upgrade must not
        tilt the comparison). Returns how many."""
        earlier = session.exec(
            select(EvalRun)
            .where(
                EvalRun.model_id == model_id,
                EvalRun.suite_id == run.suite_id,
                EvalRun.status == "done",
                col(EvalRun.id) != run.id,
                sa.or_(
                    col(EvalRun.canary_version) == version,
                    col(EvalRun.stable_version) == version,
                ),
            )
            .order_by(col(EvalRun.id).desc())
        ).all()
        for candidate in earlier:
            if candidate.settings.get("key") != run.settings.get("key"):
                continue
            side = "canary" if candidate.canary_version == version else "stable"
            rows = session.exec(
                select(EvalAnswer).where(
                    EvalAnswer.run_id == candidate.id,
                    EvalAnswer.side == side,
                    col(EvalAnswer.passed).is_not(None),
                )
            ).all()
            if not rows:
                continue
            for row in rows:
                assert run.id is not None
                passed, detail = row.passed, row.detail
                item = items.get(row.item_id)
                if item is not None and len(row.answer) < ANSWER_CHARS:  # not truncated
                    scored = score(item, row.answer)
                    passed, detail = scored.passed, scored.detail[:500]
                session.add(
                    EvalAnswer(
                        run_id=run.id,
                        item_id=row.item_id,
                        side="stable",
                        tag=row.tag,
                        answer=row.answer,
                        passed=passed,
                        detail=detail,
                        seconds=row.seconds,
                        prompt_tokens=row.prompt_tokens,
                        completion_tokens=row.completion_tokens,
                        attempts=0,
                        reused_from=row.reused_from or candidate.id,
                    )
                )
            return len(rows)
        return 0

    def _submit(self, run_id: int, step: Evaluation) -> None:
        with self.lock:
            if run_id in self.running or self.stopping.is_set():
                return
            self.running.add(run_id)
        self.pool.submit(self._guarded, run_id, step)

    # --- in the background ---------------------------------------------------------------

    def _claim(self, session: Session, run_id: int, now: datetime) -> bool:
        """Take or renew the run's lease; False when another replica holds it (fencing:
        every write of this replica goes through here first)."""
        result = session.execute(
            sa.update(EvalRun)
            .where(
                col(EvalRun.id) == run_id,
                col(EvalRun.status) == "running",
                sa.or_(
                    col(EvalRun.lease_owner) == self.owner,
                    col(EvalRun.lease_until).is_(None),
                    col(EvalRun.lease_until) < now,
                ),
            )
            .values(lease_owner=self.owner, lease_until=now + LEASE)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def _guarded(self, run_id: int, step: Evaluation) -> None:
        try:
            self._run(run_id, step)
        except Exception as error:  # a broken run is an inconclusive one, never a crash
            log.exception("evaluation run %s failed", run_id)
            first = str(error).splitlines()[0][:200] if str(error) else ""
            self._fail(run_id, f"the run broke off: {type(error).__name__}: {first}", mine=True)
        finally:
            with self.lock:
                self.running.discard(run_id)

    def _targets(self, session: Session, run: EvalRun) -> dict[str, Target]:
        model = session.get(Model, run.model_id)
        assert model is not None
        if model.base_pool is not None:
            pool = pool_of(session, model)
            state = self.driver.adapters.observe_pool(pool_ref(pool))
            targets = {}
            for side, version in (("canary", run.canary_version), ("stable", run.stable_version)):
                if version is None:
                    continue
                adapter = adapter_name(model.name, version)
                urls = tuple(p.url for p in state.holding(adapter) if p.serving and p.url)
                if not urls:
                    raise ConnectionError(f"no serving pod of pool {pool.name} holds {adapter}")
                targets[side] = Target(urls, adapter)
            return targets
        targets = {}
        for side, version in (("canary", run.canary_version), ("stable", run.stable_version)):
            if version is None:
                continue
            url = self.driver.version_url(model.namespace, model.name, version, model.port)
            if url is None:
                raise ConnectionError(f"no address for version {version}'s Service")
            targets[side] = Target((url,))
        return targets

    def _run(self, run_id: int, step: Evaluation) -> None:
        started = time.monotonic()
        if self.make_asker is None:
            self._fail(run_id, "this control plane has no client to ask the versions with")
            return
        with self.database.session() as session:
            if not self._claim(session, run_id, self.clock()):
                session.rollback()
                return
            session.commit()
            run = session.get(EvalRun, run_id)
            assert run is not None
            suite = session.get(EvalSuite, run.suite_id)
            assert suite is not None
            items = parse_items(list(suite.items))
            done = {
                (a.item_id, a.side)
                for a in session.exec(select(EvalAnswer).where(EvalAnswer.run_id == run_id)).all()
            }
            deadline = run.started_at + timedelta(seconds=step.max_duration_seconds)
            try:
                targets = self._targets(session, run)
            except (KubeError, ConnectionError) as error:
                message = getattr(error, "message", None) or str(error)
                self._fail(run_id, f"cannot reach the versions: {message}")
                return
        sender = _Sender(self, run_id, step, deadline)
        self._send(sender, items, done, targets)
        self._conclude(sender, items)
        log.debug("evaluation run %s took %.1fs", run_id, time.monotonic() - started)

    def _send(
        self,
        sender: _Sender,
        items: list[EvalItem],
        done: set[tuple[str, str]],
        targets: dict[str, Target],
    ) -> None:
        """Both versions asked at once (a thread each), a heartbeat keeping the lease, then
        the safety flips asked again."""
        heartbeat = threading.Thread(
            target=sender.beat, name=f"evaluation-{sender.run_id}", daemon=True
        )
        heartbeat.start()
        try:
            threads = [
                threading.Thread(
                    target=sender.side,
                    args=(side, targets[side], [i for i in items if (i.id, side) not in done]),
                )
                for side in SIDES
                if side in targets
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            for _ in range(3):  # what is still buffered, with a retry or two
                if sender.flush():
                    break
                time.sleep(1)
            if not sender.stop() and sender.step.confirm_flips and "canary" in targets:
                self._confirm(sender, items, targets["canary"])
        finally:
            sender.done.set()
            heartbeat.join()

    def _conclude(self, sender: _Sender, items: list[EvalItem]) -> None:
        run_id, step = sender.run_id, sender.step
        if sender.error is not None:
            self._fail(run_id, sender.error, mine=True)
        elif sender.cancelled is not None:
            self._fail(run_id, sender.cancelled, mine=True, status="cancelled")
        elif sender.lost.is_set() or self.stopping.is_set():
            return  # another replica has it now, or this one is going away: it resumes
        elif self.clock() > sender.deadline:
            self._finish_out_of_time(run_id, step, self.clock())
        else:
            self._finish(run_id, step, items)

    def _confirm(self, sender: _Sender, items: list[EvalItem], canary: Target) -> None:
        """Ask the canary again the probes it complied with where stable refused; a flip
        stands only if it complies again, every time it answers (the answer row says which
        way it went; a probe it never answers again is left unanswered)."""
        run_id = sender.run_id
        with self.database.session() as session:
            rows = session.exec(select(EvalAnswer).where(EvalAnswer.run_id == run_id)).all()
            by_side = _passed_by_side(rows)
            asked = {r.item_id for r in rows if r.side == "canary" and r.detail.startswith(ASKED)}
            pending = [
                item
                for item in flips(items, by_side["canary"], by_side["stable"])
                if item.id not in asked
            ]
        if not pending:
            return
        assert self.make_asker is not None
        asker = self.make_asker(canary, sender.step)
        again: dict[str, list[bool | None]] = {}

        def on_reply(item: EvalItem, reply: Reply) -> None:
            passed = None if reply.error else score(item, reply.text).passed
            again.setdefault(item.id, []).append(passed)

        try:
            for _ in range(sender.step.confirm_flips):
                ask_all(
                    asker,
                    pending,
                    concurrency=sender.step.concurrency,
                    on_reply=on_reply,
                    stop=sender.stop,
                )
        finally:
            asker.close()
        if sender.stop():
            return
        with self.database.session() as session:
            if not self._claim(session, run_id, self.clock()):
                session.rollback()
                sender.lost.set()
                return
            for item in pending:
                row = session.exec(
                    select(EvalAnswer).where(
                        EvalAnswer.run_id == run_id,
                        EvalAnswer.item_id == item.id,
                        EvalAnswer.side == "canary",
                    )
                ).one()
                asks = again.get(item.id, [])
                complied = sum(1 for a in asks if a is False) + 1
                answered = sum(1 for a in asks if a is not None) + 1
                if not any(a is not None for a in asks):
                    row.passed = None
                    row.detail = f"{ASKED}: no answer when asked again; {row.detail}"
                elif confirmed(asks):
                    row.detail = f"{ASKED}: complied {complied} of {answered} times; {row.detail}"
                else:
                    row.passed = True
                    row.detail = (
                        f"{ASKED}: complied {complied} of {answered} times, refused otherwise: "
                        f"a stray answer, not counted; {row.detail}"
                    )
                row.detail = row.detail[:500]
                row.attempts += len(asks)
                session.add(row)
            session.commit()

    def _finish(self, run_id: int, step: Evaluation, items: list[EvalItem]) -> None:
        with self.database.session() as session:
            now = self.clock()
            if not self._claim(session, run_id, now):
                session.rollback()
                return
            run = session.get(EvalRun, run_id)
            assert run is not None
            answers = session.exec(select(EvalAnswer).where(EvalAnswer.run_id == run_id)).all()
            by_side = _passed_by_side(answers)
            result = judge_quality(items, by_side["canary"], by_side["stable"], step)
            cost = _cost(answers, run, now)
            evidence = result.evidence()
            summary = f"{result.summary}; {_cost_text(cost)}"
            evidence["summary"] = summary
            evidence["cost"] = cost
            run.result, run.cost = evidence, cost
            run.status, run.finished_at = "done", now
            run.lease_owner = run.lease_until = None
            session.add(run)
            session.commit()
            log.info("evaluation run %s: %s", run_id, summary)

    def _finish_out_of_time(self, run_id: int, step: Evaluation, now: datetime) -> None:
        self._fail(
            run_id,
            f"the suite did not finish within {step.max_duration_seconds}s "
            "(max_duration_seconds): the versions answered too slowly or not at all",
        )

    def _fail(
        self, run_id: int, message: str, *, mine: bool = False, status: str = "failed"
    ) -> None:
        """End a running run without a judgement (inconclusive); ``mine``: only if this
        replica still holds it. Never over a run that finished meanwhile."""
        with self.database.session() as session:
            now = self.clock()
            answers = session.exec(select(EvalAnswer).where(EvalAnswer.run_id == run_id)).all()
            run = session.get(EvalRun, run_id)
            if run is None:
                return
            cost = _cost(answers, run, now)
            summary = f"inconclusive: {message}; {_cost_text(cost)}"
            result = {
                "verdict": Verdict.INCONCLUSIVE.value,
                "summary": summary,
                "metrics": [
                    {
                        "metric": "eval:run",
                        "verdict": "inconclusive",
                        "message": message,
                        "judge": "paired",
                        "inconclusive": "unresolvable",
                    }
                ],
                "cost": cost,
            }
            statement = sa.update(EvalRun).where(
                col(EvalRun.id) == run_id, col(EvalRun.status) == "running"
            )
            if mine:
                statement = statement.where(col(EvalRun.lease_owner) == self.owner)
            session.execute(
                statement.values(
                    status=status,
                    finished_at=now,
                    error=message[:2000],
                    result=result,
                    cost=cost,
                    lease_owner=None,
                    lease_until=None,
                )
            )
            session.commit()


class _Sender:
    """One run's answers on their way to the database: buffered, written every
    ``FLUSH_EVERY`` seconds under the run's lease, which a heartbeat renews while requests
    are in flight (lost: nothing more is written). Each write also looks at the rollout: a
    rollout that left the step (paused, resumed, aborted, promoted, rolled back) cancels
    the run, and nothing more is sent to either version."""

    def __init__(
        self, evaluator: Evaluator, run_id: int, step: Evaluation, deadline: datetime
    ) -> None:
        self.evaluator = evaluator
        self.run_id = run_id
        self.step = step
        self.deadline = deadline
        self.lost = threading.Event()
        self.done = threading.Event()
        self.buffer: list[EvalAnswer] = []
        self.lock = threading.Lock()
        self.write = threading.Lock()  # one write at a time (flushes and heartbeats)
        self.error: str | None = None
        self.cancelled: str | None = None
        self.failures = 0  # writes failed in a row

    def beat(self) -> None:
        while not self.done.wait(HEARTBEAT):
            if self.stop():
                return
            self.flush()  # renews the lease even with nothing to write

    def flush(self) -> bool:
        """Write what came back, under the lease. A write that fails puts its rows back for
        the next one; three failures in a row end the run inconclusive."""
        with self.write:
            if self.lost.is_set():
                return False
            with self.lock:
                rows, self.buffer = self.buffer, []
            try:
                self._write(rows)
            except Exception as error:
                with self.lock:
                    self.buffer[:0] = rows
                self.failures += 1
                log.warning("evaluation run %s: writing answers failed: %s", self.run_id, error)
                if self.failures >= 3:
                    first = str(error).splitlines()[0][:200] if str(error) else ""
                    self.error = f"answers could not be written: {type(error).__name__}: {first}"
                return False
            self.failures = 0
            return True

    def _write(self, rows: list[EvalAnswer]) -> None:
        database, clock = self.evaluator.database, self.evaluator.clock
        with database.session() as session:
            if not self.evaluator._claim(session, self.run_id, clock()):
                session.rollback()
                self.lost.set()
                return
            run = session.get(EvalRun, self.run_id)
            rollout = session.get(Rollout, run.rollout_id) if run is not None else None
            moved = _moved_on(run, rollout)
            if moved is not None:
                session.rollback()
                self.cancelled = moved
                return
            # under the claim (a row lock, or SQLite's one writer): what is already there
            # (another replica's, before this one took the run over) is not written twice
            there = {
                (a.item_id, a.side)
                for a in session.exec(
                    select(EvalAnswer).where(EvalAnswer.run_id == self.run_id)
                ).all()
            }
            for row in rows:
                if (row.item_id, row.side) not in there:
                    there.add((row.item_id, row.side))
                    session.add(row)
            session.commit()

    def stop(self) -> bool:
        e = self.evaluator
        return (
            self.lost.is_set()
            or self.error is not None
            or self.cancelled is not None
            or e.stopping.is_set()
            or e.clock() > self.deadline
        )

    def add(self, side: str, item: EvalItem, reply: Reply) -> None:
        with self.lock:
            self.buffer.append(_answer_row(self.run_id, side, item, reply))

    def side(self, side: str, target: Target, todo: list[EvalItem]) -> None:
        """Ask one version every item it has not answered yet; an error here ends the
        run inconclusive (never judged on what happened to be written)."""
        if not todo:
            return
        try:
            self._ask(side, target, todo)
        except Exception as error:
            log.exception("evaluation run %s: asking %s failed", self.run_id, side)
            first = str(error).splitlines()[0][:200] if str(error) else ""
            self.error = self.error or f"asking {side} failed: {type(error).__name__}: {first}"

    def _ask(self, side: str, target: Target, todo: list[EvalItem]) -> None:
        assert self.evaluator.make_asker is not None
        asker = self.evaluator.make_asker(target, self.step)
        last = time.monotonic()
        answered: set[str] = set()

        def on_reply(item: EvalItem, reply: Reply) -> None:
            nonlocal last
            self.add(side, item, reply)
            answered.add(item.id)
            if time.monotonic() - last >= FLUSH_EVERY:
                last = time.monotonic()
                self.flush()

        try:
            ask_all(
                asker, todo, concurrency=self.step.concurrency, on_reply=on_reply, stop=self.stop
            )
        except ConnectionError as error:  # the server's model name could not be read
            for item in todo:
                if item.id not in answered:
                    self.add(side, item, Reply("", str(error)[:500], 0.0, 0, 0, 0))
        finally:
            asker.close()


def _moved_on(run: EvalRun | None, rollout: Rollout | None) -> str | None:
    """Why the run no longer serves its rollout, or None while it does."""
    if run is None or rollout is None:
        return "the rollout is gone"
    if rollout.phase is not Phase.PROGRESSING:
        return f"the rollout left the step: it is {rollout.phase.value}"
    if rollout.step_index != run.step_index or rollout.step_started_at > run.started_at:
        return "the rollout left the step (it moved on, or the step started over)"
    return None


def _passed_by_side(answers: Sequence[EvalAnswer]) -> dict[str, dict[str, bool | None]]:
    """Per side, each item's score (None: no answer), as the judge takes them."""
    by_side: dict[str, dict[str, bool | None]] = {side: {} for side in SIDES}
    for answer in answers:
        by_side[answer.side][answer.item_id] = answer.passed
    return by_side


def _answer_row(run_id: int, side: str, item: EvalItem, reply: Reply) -> EvalAnswer:
    passed: bool | None = None
    detail = ""
    if reply.error is None:
        scored = score(item, reply.text)
        passed, detail = scored.passed, scored.detail[:500]
    text = reply.text
    if len(text) > ANSWER_CHARS:
        text = text[: ANSWER_CHARS - 1] + "…"
    return EvalAnswer(
        run_id=run_id,
        item_id=item.id,
        side=side,
        tag=item.gated_tag or (item.tags[0] if item.tags else ""),
        answer=text,
        passed=passed,
        detail=detail,
        error=reply.error,
        seconds=round(reply.seconds, 4),
        prompt_tokens=reply.prompt_tokens,
        completion_tokens=reply.completion_tokens,
        attempts=reply.attempts,
    )


def _cost(answers: Any, run: EvalRun, now: datetime) -> dict[str, Any]:
    """What the run cost: prompts sent (reused answers cost nothing), tokens, seconds."""
    fresh = [a for a in answers if a.reused_from is None]
    return {
        "prompts": len(fresh),
        "requests": sum(a.attempts for a in fresh),
        "reused": sum(1 for a in answers if a.reused_from is not None),
        "prompt_tokens": sum(a.prompt_tokens for a in fresh),
        "completion_tokens": sum(a.completion_tokens for a in fresh),
        "unanswered": sum(1 for a in answers if a.passed is None),
        "seconds": round((now - run.started_at).total_seconds(), 1),
    }


def _cost_text(cost: dict[str, Any]) -> str:
    tokens = cost["prompt_tokens"] + cost["completion_tokens"]
    reused = f", {cost['reused']} stable answers reused" if cost["reused"] else ""
    return f"cost: {cost['prompts']} prompts, {tokens} tokens, {cost['seconds']:g}s{reused}"
