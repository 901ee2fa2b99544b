"""Request-scoped dependencies: the database session and the authenticated principal."""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BeforeValidator
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from controlplane import auth
from controlplane.config import Settings
from controlplane.db import Database
from controlplane.models import MAX_ID, Role


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_session(request: Request) -> AsyncIterator[Session]:
    """The request's session, opened in the event loop (a session does no I/O before its
    first query: no thread needed). Closing it ends its transaction: on SQLite a call into
    the library, done here; on a server (PostgreSQL) a round trip, done in the thread pool
    so that the event loop never waits on the network."""
    database: Database = request.app.state.database
    session = database.open_session()
    try:
        yield session
    finally:
        if database.is_local or not session.in_transaction():
            session.close()
        else:
            await run_in_threadpool(session.close)


SessionDep = Annotated[Session, Depends(get_session)]

T = TypeVar("T")


class Writes:
    """Where an endpoint runs a service call that writes.

    On SQLite, in one thread of its own: SQLite takes one writer at a time (the process's
    writers queue for it anyway, controlplane.db.SQLiteWriter), and 40 pool threads
    queueing there, each woken in turn and each taking the GIL from the event loop, cost
    more than the writes (version registrations from 50 clients: 12% more a second
    with the thread, make bench). On PostgreSQL, in the thread pool: writes there run side
    by side. The registry's endpoints (models, versions) use it; the other routers' sync
    endpoints still run in the pool.
    """

    def __init__(self, database: Database) -> None:
        self._thread = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writes")
            if database.is_local
            else None
        )

    async def run(self, call: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        if self._thread is None:
            return await run_in_threadpool(call, *args, **kwargs)
        context = contextvars.copy_context()  # as the thread pool does: log fields, etc.
        bound = functools.partial(context.run, call, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._thread, bound)

    def close(self) -> None:
        if self._thread is not None:
            self._thread.shutdown(wait=True)


async def get_writes(request: Request) -> Writes:
    writes: Writes = request.app.state.writes
    return writes


WritesDep = Annotated[Writes, Depends(get_writes)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


async def get_token_cache(request: Request) -> auth.TokenCache:
    cache: auth.TokenCache = request.app.state.token_cache
    return cache


TokenCacheDep = Annotated[auth.TokenCache, Depends(get_token_cache)]

_bearer = HTTPBearer(
    auto_error=False, description="A token from POST /v1/tokens, or the admin token."
)


async def get_principal(
    request: Request,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> auth.Principal:
    """The caller: the admin token and recently seen tokens are told in the event loop; a
    token not seen lately is read from the database in the thread pool. (Settings and the
    cache are read from the app's state, not as dependencies: each dependency costs every
    request its resolution.)"""
    secret = credentials.credentials if credentials is not None else None
    settings: Settings = request.app.state.settings
    cache: auth.TokenCache = request.app.state.token_cache
    admin_token = settings.effective_admin_token
    principal = auth.known_principal(secret=secret, admin_token=admin_token, cache=cache)
    if principal is not None:
        return principal
    return await run_in_threadpool(
        lambda: auth.authenticate(session, secret=secret, admin_token=admin_token, cache=cache)
    )


_ROLE_CHECKS: dict[Callable[..., Awaitable[auth.Principal]], Role] = {}


def require(role: Role) -> Callable[..., Awaitable[auth.Principal]]:
    """A dependency that authenticates the caller and checks that its role is enough."""

    async def dependency(
        principal: Annotated[auth.Principal, Depends(get_principal)],
    ) -> auth.Principal:
        principal.require(role)
        return principal

    dependency.__name__ = f"require_{role.value}"
    _ROLE_CHECKS[dependency] = role
    return dependency


def required_role(call: Callable[..., Any] | None) -> Role | None:
    """The role a dependency made by :func:`require` checks (None for any other), so that
    the OpenAPI document can say which operations answer 401 and 403."""
    return _ROLE_CHECKS.get(call) if call is not None else None


Viewer = Annotated[auth.Principal, Depends(require(Role.VIEWER))]
Operator = Annotated[auth.Principal, Depends(require(Role.OPERATOR))]
Admin = Annotated[auth.Principal, Depends(require(Role.ADMIN))]


def whole_number(value: Any) -> Any:
    """An integer in a path or query is digits only: without this check '1.0' (or '+1',
    ' 1', '1_0') would be read as 1, and /v1/rollouts/1.0 would answer for rollout 1."""
    if isinstance(value, str) and not (value.isascii() and value.isdigit()):
        raise ValueError(f"{value!r} is not a whole number: give digits only (e.g. 42)")
    return value


# Path first, then the check: in this order FastAPI keeps the bounds in the OpenAPI schema.
RolloutId = Annotated[
    int,
    Path(ge=1, le=MAX_ID, description="The rollout's id."),
    BeforeValidator(whole_number),
]
SuiteVersion = Annotated[
    int,
    Path(ge=1, le=MAX_ID, description="The suite's version number."),
    BeforeValidator(whole_number),
]


async def page_limit(
    settings: SettingsDep,
    limit: Annotated[
        int, Query(ge=1, description="Items per page."), BeforeValidator(whole_number)
    ] = 50,
) -> int:
    return min(limit, settings.page_size_max)


Limit = Annotated[int, Depends(page_limit)]
Cursor = Annotated[
    str | None, Query(description="The next_cursor of the previous page; omit for the first.")
]
