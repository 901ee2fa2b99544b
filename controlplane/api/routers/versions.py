"""/v1/models/{model}/versions: immutable version records.

The endpoints are coroutines that await the service call in the thread pool (the
database's I/O) and build the answer in the event loop: one thread hop a request (a sync
endpoint costs two: FastAPI validates its answer in the pool as well).

The answers are built from the stored rows by :func:`controlplane.registry.versions.shown`
and sent as they are (a :class:`JSONAnswer`): their schema is still the declared
``response_model``'s, but pydantic does not validate each version of a page again.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status
from pydantic_core import to_json
from starlette.concurrency import run_in_threadpool

from controlplane.api.deps import Cursor, Limit, Operator, SessionDep, Viewer, WritesDep
from controlplane.api.routing import StrictRoute
from controlplane.models import VersionCreate, VersionPage, VersionPublic, VersionStatus
from controlplane.registry import versions as registry

router = APIRouter(prefix="/v1/models/{model}/versions", tags=["versions"], route_class=StrictRoute)


class JSONAnswer(Response):
    """An answer already shaped as its documented model: encoded, not validated again."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return to_json(content)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Register a version",
    response_model=VersionPublic,
)
async def register_version(
    model: str, body: VersionCreate, session: SessionDep, principal: Operator, writes: WritesDep
) -> JSONAnswer:
    owner, row = await writes.run(
        registry.register_version, session, model_name=model, data=body, actor=principal.name
    )
    return JSONAnswer(
        registry.shown(row, owner),
        status_code=status.HTTP_201_CREATED,
        headers={"Location": f"/v1/models/{owner}/versions/{row['version']}"},
    )


@router.get("", summary="List a model's versions, newest first", response_model=VersionPage)
async def list_versions(
    model: str,
    session: SessionDep,
    _: Viewer,
    limit: Limit,
    cursor: Cursor = None,
    status: Annotated[VersionStatus | None, Query(description="Only this status.")] = None,
    label: Annotated[
        str | None, Query(description="Label selector, equality only: 'team=nlp,stage=prod'.")
    ] = None,
) -> JSONAnswer:
    labels = registry.parse_label_selector(label) if label else None
    owner, items, next_cursor = await run_in_threadpool(
        registry.list_versions,
        session,
        model_name=model,
        status=status,
        labels=labels,
        cursor=cursor,
        limit=limit,
    )
    return JSONAnswer(
        {
            "items": [registry.shown(item, owner) for item in items],
            "next_cursor": next_cursor,
        }
    )


@router.get("/{version}", summary="Get a version", response_model=VersionPublic)
async def get_version(model: str, version: str, session: SessionDep, _: Viewer) -> JSONAnswer:
    row = await run_in_threadpool(registry.find_version, session, model_name=model, version=version)
    return JSONAnswer(registry.shown(row, model))
