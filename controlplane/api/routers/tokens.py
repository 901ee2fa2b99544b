"""/v1/tokens: named bearer tokens with a role (admin only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status
from sqlmodel import SQLModel

from controlplane import auth
from controlplane.api.deps import Admin, Cursor, Limit, SessionDep, TokenCacheDep
from controlplane.api.routing import StrictRoute
from controlplane.models import TokenCreate, TokenCreated, TokenPublic

router = APIRouter(prefix="/v1/tokens", tags=["tokens"], route_class=StrictRoute)


class TokenPage(SQLModel):
    items: list[TokenPublic]
    next_cursor: str | None = None


@router.post("", status_code=status.HTTP_201_CREATED, summary="Create a token (secret shown once)")
def create_token(body: TokenCreate, session: SessionDep, principal: Admin) -> TokenCreated:
    return auth.create_token(session, data=body, actor=principal.name)


@router.get("", summary="List tokens (never their secrets)")
def list_tokens(
    session: SessionDep,
    _: Admin,
    limit: Limit,
    cursor: Cursor = None,
    include_revoked: Annotated[bool, Query(description="Include revoked tokens.")] = False,
) -> TokenPage:
    items, next_cursor = auth.list_tokens(
        session, include_revoked=include_revoked, cursor=cursor, limit=limit
    )
    return TokenPage(items=[auth.to_public(item) for item in items], next_cursor=next_cursor)


@router.delete("/{name}", summary="Revoke a token")
def revoke_token(
    name: str, session: SessionDep, principal: Admin, cache: TokenCacheDep
) -> TokenPublic:
    revoked = auth.revoke_token(session, name=name, actor=principal.name, cache=cache)
    return auth.to_public(revoked)
