"""/v1/audit: who changed what, newest first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from controlplane import audit
from controlplane.api.deps import Cursor, Limit, SessionDep, Viewer
from controlplane.api.routing import StrictRoute
from controlplane.models import AuditEventPublic, AuditPage

router = APIRouter(prefix="/v1/audit", tags=["audit"], route_class=StrictRoute)


@router.get("", summary="The audit trail of every write")
def list_audit_events(
    session: SessionDep,
    _: Viewer,
    limit: Limit,
    cursor: Cursor = None,
    model: Annotated[str | None, Query()] = None,
    actor: Annotated[str | None, Query()] = None,
    action: Annotated[str | None, Query(description="e.g. 'version.registered'")] = None,
) -> AuditPage:
    items, next_cursor = audit.list_events(
        session, model=model, actor=actor, action=action, cursor=cursor, limit=limit
    )
    return AuditPage(
        items=[AuditEventPublic.model_validate(item, from_attributes=True) for item in items],
        next_cursor=next_cursor,
    )
