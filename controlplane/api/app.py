"""The FastAPI application factory.

The app owns one ``Database`` for its lifetime (created in the lifespan, disposed at
shutdown). Schema migrations are not run here: ``controlplane serve`` runs them before
the server starts, so that several replicas never race to migrate from request handlers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

import controlplane
from controlplane.api import problems
from controlplane.api.limits import BodySizeLimit
from controlplane.api.routers import audit, health, models, tokens, versions
from controlplane.config import Settings, get_settings
from controlplane.db import Database


def create_app(settings: Settings | None = None, database: Database | None = None) -> FastAPI:
    settings = settings or get_settings()
    owns_database = database is None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if owns_database:
            app.state.database.dispose()

    app = FastAPI(
        title="controlplane",
        version=controlplane.__version__,
        summary="Deployment control plane for fine-tuned LLMs on Kubernetes.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.database = database or Database(
        settings.database_url, pool_size=settings.database_pool_size
    )
    problems.install(app)
    for router in (health.router, models.router, versions.router, tokens.router, audit.router):
        app.include_router(router)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    return app
