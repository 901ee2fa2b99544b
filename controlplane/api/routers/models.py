"""/v1/models: named deployables and their serving defaults.

Coroutines that await the service call in the thread pool, as in versions.py.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from starlette.concurrency import run_in_threadpool

from controlplane.api.deps import Admin, Cursor, Limit, Operator, SessionDep, Viewer, WritesDep
from controlplane.api.routing import StrictRoute
from controlplane.models import ModelCreate, ModelPage, ModelPublic, ModelUpdate
from controlplane.registry import models as registry

router = APIRouter(prefix="/v1/models", tags=["models"], route_class=StrictRoute)


@router.post("", status_code=status.HTTP_201_CREATED, summary="Create a model")
async def create_model(
    body: ModelCreate,
    session: SessionDep,
    principal: Operator,
    response: Response,
    writes: WritesDep,
) -> ModelPublic:
    model = await writes.run(registry.create_model, session, data=body, actor=principal.name)
    response.headers["Location"] = f"/v1/models/{model.name}"
    return registry.to_public(model)


@router.get("", summary="List models, newest first")
async def list_models(
    session: SessionDep,
    _: Viewer,
    limit: Limit,
    cursor: Cursor = None,
    namespace: Annotated[str | None, Query(description="Only models in this namespace.")] = None,
) -> ModelPage:
    items, next_cursor = await run_in_threadpool(
        registry.list_models, session, namespace=namespace, cursor=cursor, limit=limit
    )
    return ModelPage(items=[registry.to_public(item) for item in items], next_cursor=next_cursor)


@router.get("/{model}", summary="Get a model")
async def get_model(model: str, session: SessionDep, _: Viewer) -> ModelPublic:
    return registry.to_public(await run_in_threadpool(registry.get_model, session, model))


@router.patch("/{model}", summary="Change a model's serving defaults")
async def update_model(
    model: str, body: ModelUpdate, session: SessionDep, principal: Operator, writes: WritesDep
) -> ModelPublic:
    updated = await writes.run(
        registry.update_model, session, name=model, data=body, actor=principal.name
    )
    return registry.to_public(updated)


@router.delete(
    "/{model}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a model and its versions (refused while a version is live)",
)
async def delete_model(
    model: str, session: SessionDep, principal: Admin, writes: WritesDep
) -> None:
    await writes.run(registry.delete_model, session, name=model, actor=principal.name)
