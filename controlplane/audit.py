"""The audit trail: one row per write, in the same transaction as the write itself.

Services call :func:`record` before they commit, so a change and its record land together
or not at all. Details must never contain a secret (token values, passwords): they are
written through :func:`controlplane.redaction.redact_json` (env values and args that are
or look like credentials, URL passwords), whoever calls.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from controlplane import redaction
from controlplane.models import AuditEvent
from controlplane.pagination import page_after, split_page


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    at: datetime,
    model: str | None = None,
    version: str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    event = AuditEvent(
        **row(actor=actor, action=action, at=at, model=model, version=version, details=details)
    )
    session.add(event)
    return event


def row(
    *,
    actor: str,
    action: str,
    at: datetime,
    model: str | None = None,
    version: str | None = None,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The columns of an audit record (its details redacted), for a service that inserts
    it with its own statement (in its transaction, like :func:`record`)."""
    return {
        "at": at,
        "actor": actor,
        "action": action,
        "model": model,
        "version": version,
        "details": redaction.redact_json(details or {}),
    }


def list_events(
    session: Session,
    *,
    model: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> tuple[list[AuditEvent], str | None]:
    statement = select(AuditEvent)
    if model is not None:
        statement = statement.where(AuditEvent.model == model)
    if actor is not None:
        statement = statement.where(AuditEvent.actor == actor)
    if action is not None:
        statement = statement.where(AuditEvent.action == action)
    statement = page_after(statement, col(AuditEvent.id), cursor, limit)
    rows = list(session.exec(statement).all())
    return split_page(rows, limit, lambda event: event.id)
