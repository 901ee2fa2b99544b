"""Eval suites: named, versioned, immutable sets of prompts with what a good answer is.

Creating a suite under a name that exists makes its next version; sending the very same
items again (same canonical hash) returns the latest version instead of a copy, so a CI job
can push its suite on every run. Every item is checked (:mod:`controlplane.evalsuite`)
before anything is stored: a suite that cannot be scored is a 400 naming its bad lines.
Also here: the evaluation runs of a rollout, with each item's two answers, for the API.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from controlplane import audit, pagination
from controlplane.errors import ConflictError, FieldIssue, InvalidRequestError, NotFoundError
from controlplane.evalresults import ResultsError, lm_eval_scores, openai_evals_scores
from controlplane.evalsuite import SuiteError, parse_items
from controlplane.models import (
    EvalAnswer,
    EvalRun,
    EvalScore,
    EvalScorePublic,
    EvalScoresImport,
    EvalSuite,
    EvalSuiteCreate,
    EvalSuitePublic,
    EvalSuiteSummary,
    utcnow,
)
from controlplane.registry.versions import get_version


def to_summary(suite: EvalSuite) -> EvalSuiteSummary:
    return EvalSuiteSummary.model_validate(suite, from_attributes=True)


def to_public(suite: EvalSuite) -> EvalSuitePublic:
    return EvalSuitePublic.model_validate(suite, from_attributes=True)


def create_suite(
    session: Session, *, data: EvalSuiteCreate, actor: str, now: datetime | None = None
) -> tuple[EvalSuite, bool]:
    """The new version (True), or the latest one when its items are the same (False)."""
    now = now or utcnow()
    try:
        items = parse_items(list(data.items))
    except SuiteError as error:
        raise InvalidRequestError(
            f"eval suite {data.name!r} has items that cannot be scored: {error}",
            code="invalid_eval_items",
            issues=[FieldIssue("items", problem) for problem in error.problems[:50]],
        ) from error
    canonical = [item.model_dump(mode="json", exclude_defaults=True) for item in items]
    digest = hashlib.sha256(
        json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()
    latest = session.exec(
        select(EvalSuite).where(EvalSuite.name == data.name).order_by(col(EvalSuite.version).desc())
    ).first()
    if latest is not None and latest.sha256 == digest:
        return latest, False
    tags: dict[str, int] = {}
    for item in items:
        for tag in item.tags:
            tags[tag] = tags.get(tag, 0) + 1
    suite = EvalSuite(
        name=data.name,
        version=(latest.version + 1) if latest is not None else 1,
        description=data.description,
        items=canonical,
        item_count=len(items),
        tags=dict(sorted(tags.items())),
        sha256=digest,
        created_at=now,
        created_by=actor,
    )
    session.add(suite)
    audit.record(
        session,
        actor=actor,
        action="eval_suite.created",
        at=now,
        details={
            "name": suite.name,
            "version": suite.version,
            "items": suite.item_count,
            "sha256": digest,
        },
    )
    try:
        session.commit()
    except IntegrityError as error:  # a concurrent create took this version number
        session.rollback()
        raise ConflictError(
            f"eval suite {data.name!r} got a new version at the same moment; send it again",
            code="eval_suite_conflict",
        ) from error
    session.refresh(suite)
    return suite, True


def get_suite(session: Session, name: str, version: int | None = None) -> EvalSuite:
    statement = select(EvalSuite).where(EvalSuite.name == name)
    if version is not None:
        statement = statement.where(EvalSuite.version == version)
    suite = session.exec(statement.order_by(col(EvalSuite.version).desc())).first()
    if suite is None:
        which = f"{name!r} version {version}" if version is not None else repr(name)
        raise NotFoundError(
            f"eval suite {which} does not exist; list suites with GET /v1/eval-suites",
            code="eval_suite_not_found",
        )
    return suite


def list_suites(
    session: Session, *, name: str | None = None, cursor: str | None = None, limit: int = 50
) -> tuple[list[EvalSuite], str | None]:
    statement = select(EvalSuite)
    if name is not None:
        statement = statement.where(EvalSuite.name == name)
    statement = pagination.page_after(statement, col(EvalSuite.id), cursor, limit)
    rows = list(session.exec(statement).all())
    return pagination.split_page(rows, limit, lambda suite: suite.id)


def runs_of(
    session: Session, rollout_id: int, *, answers: str = "regressed", limit: int = 500
) -> list[dict[str, Any]]:
    """A rollout's evaluation runs, oldest first, each with its items side by side:
    ``regressed`` (stable passed, canary did not, or the canary complied with a probe),
    ``differ`` (the two disagree or one is unanswered), or ``all``."""
    runs = session.exec(
        select(EvalRun).where(EvalRun.rollout_id == rollout_id).order_by(col(EvalRun.id))
    ).all()
    shown = []
    for run in runs:
        rows = session.exec(select(EvalAnswer).where(EvalAnswer.run_id == run.id)).all()
        suite = session.get(EvalSuite, run.suite_id)
        prompts = {
            str(item.get("id")): _prompt_text(item) for item in (suite.items if suite else [])
        }
        pairs: dict[str, dict[str, EvalAnswer]] = {}
        for row in rows:
            pairs.setdefault(row.item_id, {})[row.side] = row
        items = []
        for item_id, sides in pairs.items():
            canary, stable = sides.get("canary"), sides.get("stable")
            c = canary.passed if canary is not None else None
            s = stable.passed if stable is not None else None
            regressed = bool(s) and c is False
            if answers == "regressed" and not regressed:
                continue
            if answers == "differ" and c == s and None not in (c, s):
                continue
            items.append(
                {
                    "item_id": item_id,
                    "tag": next(r.tag for r in (canary, stable) if r is not None),
                    "prompt": prompts.get(item_id, "")[:500],
                    "regressed": regressed,
                    "canary": _side(canary),
                    "stable": _side(stable),
                }
            )
        items.sort(key=lambda i: (not i["regressed"], i["tag"], i["item_id"]))
        shown_count = len(items)
        items = items[:limit]
        shown.append(
            {
                "id": run.id,
                "step_index": run.step_index,
                "suite": run.suite,
                "status": run.status,
                "canary_version": run.canary_version,
                "stable_version": run.stable_version,
                "started_at": run.started_at,
                "finished_at": run.finished_at,
                "error": run.error,
                "answered": {
                    side: sum(1 for r in rows if r.side == side) for side in ("canary", "stable")
                },
                "items_total": suite.item_count if suite else None,
                "cost": run.cost,
                "result": run.result,
                "items": items,
                "items_shown": len(items),
                "items_matching": shown_count,
            }
        )
    return shown


def _prompt_text(item: dict[str, Any]) -> str:
    if item.get("prompt"):
        return str(item["prompt"])
    messages = item.get("messages") or []
    return str(messages[-1].get("content", "")) if messages else ""


def _side(row: EvalAnswer | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {
        "answer": row.answer,
        "passed": row.passed,
        "detail": row.detail,
        "error": row.error,
        "seconds": row.seconds,
        "tokens": row.prompt_tokens + row.completion_tokens,
        "reused_from": row.reused_from,
    }


# --- scores measured elsewhere ----------------------------------------------------------


def import_scores(
    session: Session,
    *,
    model_name: str,
    version: str,
    data: EvalScoresImport,
    actor: str,
    now: datetime | None = None,
) -> list[EvalScore]:
    """Record a version's scores from an evaluation harness's output; a score of the same
    name is replaced (the newest measurement counts), with the import audited."""
    now = now or utcnow()
    owner, row = get_version(session, model_name=model_name, version=version)
    assert row.id is not None
    try:
        if data.format == "lm-eval-harness":
            measured = lm_eval_scores(data.document, tasks=data.tasks, metric=data.metric)
        else:
            if not isinstance(data.document, str):
                raise ResultsError("openai-evals: send the JSONL log as text")
            measured = openai_evals_scores(data.document, metric=data.metric)
    except ResultsError as error:
        raise InvalidRequestError(
            f"cannot read the {data.format} results: {error}", code="invalid_eval_results"
        ) from error
    existing = {
        s.name: s
        for s in session.exec(select(EvalScore).where(EvalScore.version_id == row.id)).all()
    }
    kept = []
    for score in measured:
        record = existing.get(score.name) or EvalScore(
            version_id=row.id,
            name=score.name,
            value=score.value,
            source=data.format,
            recorded_at=now,
            recorded_by=actor,
        )
        record.value, record.source, record.provenance = score.value, data.format, score.provenance
        record.recorded_at, record.recorded_by = now, actor
        session.add(record)
        kept.append(record)
    audit.record(
        session,
        actor=actor,
        action="eval_scores.imported",
        at=now,
        model=owner.name,
        version=version,
        details={
            "format": data.format,
            "sha256": measured[0].provenance.get("sha256"),
            "scores": {s.name: s.value for s in measured if ":" not in s.name},
        },
    )
    session.commit()
    for record in kept:
        session.refresh(record)
    return sorted(kept, key=lambda record: record.name)


def scores_of_version(session: Session, version_id: int) -> list[EvalScore]:
    return list(
        session.exec(
            select(EvalScore)
            .where(EvalScore.version_id == version_id)
            .order_by(col(EvalScore.name))
        ).all()
    )


def score_public(score: EvalScore) -> EvalScorePublic:
    return EvalScorePublic.model_validate(score, from_attributes=True)


def provenance_text(score: EvalScore) -> str:
    """Where a measured score came from, in a few words for a verdict's message."""
    p = score.provenance
    parts = [f"measured: {score.source}", f"sha256 {str(p.get('sha256', ''))[:12]}"]
    if p.get("metric"):
        parts.append(f"metric {p['metric']}")
    if p.get("limit") is not None:
        parts.append(f"limit {p['limit']}")
    if p.get("samples") is not None:
        parts.append(f"{p['samples']} samples")
    return ", ".join(parts)
