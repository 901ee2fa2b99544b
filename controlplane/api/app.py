"""The FastAPI application factory.

The app owns one ``Database`` for its lifetime (created in the lifespan, disposed at
shutdown). Schema migrations are not run here: ``controlplane serve`` runs them before
the server starts, so that several replicas never race to migrate from request handlers.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI

import controlplane
from controlplane import auth
from controlplane.analysis.prometheus import PrometheusClient, http_client
from controlplane.analysis.prompting import Asker
from controlplane.api import contract, problems
from controlplane.api.deps import Writes
from controlplane.api.limits import BodySizeLimit
from controlplane.api.methods import HeadAsGet
from controlplane.api.routers import (
    audit,
    evals,
    health,
    models,
    pools,
    rollouts,
    tokens,
    ui,
    versions,
    webhooks,
)
from controlplane.api.timing import ServerTiming
from controlplane.config import Settings, get_settings
from controlplane.db import Database
from controlplane.kube import KubeDriver
from controlplane.kube.adapters import pod_addresses
from controlplane.kube.cache import ObjectCache
from controlplane.kube.client import KubeApi
from controlplane.kube.vllm import VllmAdmin
from controlplane.logs import configure_logging
from controlplane.rollout.keeper import PoolKeeper
from controlplane.rollout.probe import PrometheusProber
from controlplane.rollout.reconciler import Reconciler
from controlplane.scheduler import ReconcileScheduler
from controlplane.sealing import Sealer
from controlplane.webhooks.dispatcher import Dispatcher
from controlplane.webhooks.guard import AddressPolicy

log = logging.getLogger(__name__)


def _start_reconciler(app: FastAPI, settings: Settings) -> ReconcileScheduler | None:
    """The rollout loop runs in the API process, when there is a cluster to talk to."""
    if not settings.reconcile_enabled:
        return None
    try:
        api = KubeApi.from_kubeconfig(settings.kubeconfig, settings.kube_context)
    except Exception as error:
        log.warning(
            "no Kubernetes configuration (%s): rollouts will be recorded but will not "
            "progress; set CONTROLPLANE_KUBECONFIG or run in a cluster",
            error,
        )
        return None
    prober = None
    if settings.prometheus_url:
        prober = PrometheusProber(
            PrometheusClient(http_client(settings.prometheus_url)),
            unit_label=settings.prometheus_pod_label,
        )
    else:
        log.warning(
            "CONTROLPLANE_PROMETHEUS_URL is not set: analysis steps will be "
            "inconclusive and pause for a person"
        )
    cache = (
        ObjectCache(api, stale_after=settings.kube_cache_stale_seconds)
        if settings.kube_cache
        else None
    )
    driver = KubeDriver(
        api, addresses=pod_addresses(settings.pod_address_map), vllm=VllmAdmin(), cache=cache
    )
    reconciler = Reconciler(
        app.state.database,
        driver,
        prober,
        lease=timedelta(seconds=settings.rollout_lease_seconds),
        workers=settings.reconcile_workers,
    )
    reconciler.evaluator.make_asker = lambda target, step: Asker(
        target, timeout=step.timeout_seconds, retries=step.retries
    )
    scheduler = ReconcileScheduler(
        reconciler,
        interval_seconds=settings.reconcile_interval_seconds,
        keeper=PoolKeeper(
            app.state.database, driver, owner=reconciler.owner, leases=reconciler.leases
        ),
    )
    scheduler.start()
    return scheduler


def create_app(
    settings: Settings | None = None,
    database: Database | None = None,
    *,
    start_reconciler: bool = True,
) -> FastAPI:
    settings = settings or get_settings()
    owns_database = database is None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not app.state.sealer.enabled:
            log.warning(
                "CONTROLPLANE_SECRET_KEYS is not set: webhook secrets and URLs are stored "
                "unsealed in the database; set it (e.g. `openssl rand -hex 32`) and run "
                "`controlplane db reseal`"
            )
        app.state.scheduler = _start_reconciler(app, settings) if start_reconciler else None
        # webhook deliveries go out from their own thread: a slow receiver never slows rollouts
        app.state.webhooks = (
            Dispatcher.from_settings(app.state.database, settings)
            if start_reconciler and settings.webhook_enabled
            else None
        )
        if app.state.webhooks is not None:
            app.state.webhooks.start()
        try:
            yield
        finally:
            if app.state.webhooks is not None:
                app.state.webhooks.stop()
            if app.state.scheduler is not None:
                app.state.scheduler.stop()
            app.state.writes.close()
            if owns_database:
                app.state.database.dispose()

    app = FastAPI(
        title="controlplane",
        version=controlplane.__version__,
        summary="Deployment control plane for fine-tuned LLMs on Kubernetes.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.token_cache = auth.TokenCache(settings.token_cache_seconds)
    app.state.sealer = Sealer.from_settings(settings)
    app.state.webhook_policy = AddressPolicy.from_settings(settings)
    app.state.database = database or Database(
        settings.database_url, pool_size=settings.database_pool_size
    )
    app.state.writes = Writes(app.state.database)
    problems.install(app)
    routers = (
        health.router,
        models.router,
        pools.router,
        evals.router,
        versions.router,
        rollouts.router,
        tokens.router,
        audit.router,
        webhooks.router,
        ui.router,
    )
    for router in routers:
        app.include_router(router)
    contract.install(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(HeadAsGet)
    if settings.server_timing:  # added last: the outermost of ours, it times the others
        app.add_middleware(ServerTiming)
    return app


def from_environment() -> FastAPI:
    """The app of one worker of ``controlplane serve --workers N``: settings and logging
    from the environment, as the serving process had them (it checked them first)."""
    settings = get_settings()
    configure_logging(settings)
    return create_app(settings)
