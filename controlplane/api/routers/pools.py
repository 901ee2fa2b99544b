"""/v1/pools: base pools, the pods of a base model with LoRA enabled that adapter models
share."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from controlplane.api.deps import Admin, Cursor, Limit, Operator, SessionDep, Viewer
from controlplane.api.routing import StrictRoute
from controlplane.models import PoolCreate, PoolPage, PoolPublic, PoolUpdate
from controlplane.registry import pools as registry

router = APIRouter(prefix="/v1/pools", tags=["pools"], route_class=StrictRoute)


@router.post("", status_code=status.HTTP_201_CREATED, summary="Record a base pool")
def create_pool(
    body: PoolCreate, session: SessionDep, principal: Operator, response: Response
) -> PoolPublic:
    pool = registry.create_pool(session, data=body, actor=principal.name)
    response.headers["Location"] = f"/v1/pools/{pool.name}"
    return registry.to_public(pool)


@router.get("", summary="List base pools")
def list_pools(session: SessionDep, _: Viewer, limit: Limit, cursor: Cursor = None) -> PoolPage:
    items, next_cursor = registry.list_pools(session, cursor=cursor, limit=limit)
    return PoolPage(items=[registry.to_public(item) for item in items], next_cursor=next_cursor)


@router.get("/{pool}", summary="Get a base pool")
def get_pool(pool: str, session: SessionDep, _: Viewer) -> PoolPublic:
    return registry.to_public(registry.get_pool(session, pool))


@router.patch("/{pool}", summary="Change a base pool (its pods, port or capacity)")
def update_pool(
    pool: str, body: PoolUpdate, session: SessionDep, principal: Operator
) -> PoolPublic:
    updated = registry.update_pool(session, name=pool, data=body, actor=principal.name)
    return registry.to_public(updated)


@router.delete(
    "/{pool}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a base pool (refused while a model uses it)",
)
def delete_pool(pool: str, session: SessionDep, principal: Admin) -> None:
    registry.delete_pool(session, name=pool, actor=principal.name)
