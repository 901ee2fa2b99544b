"""Liveness, readiness and metrics, without authentication (kubelet probes and Prometheus
scrapes carry no token; none of them reveals a secret)."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import col, select

from controlplane import telemetry
from controlplane.api.problems import problem_response
from controlplane.api.routing import StrictRoute
from controlplane.db import Database
from controlplane.models import Phase, Rollout

router = APIRouter(tags=["health"], route_class=StrictRoute)


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:  # no I/O: answered in the event loop
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: the database answers", response_model=None)
def readyz(request: Request) -> dict[str, str] | JSONResponse:
    database: Database = request.app.state.database
    try:
        database.ping()
    except SQLAlchemyError as error:
        return problem_response(
            status=503,
            code="database_unavailable",
            title="Not ready",
            detail=f"the database is not reachable ({type(error).__name__}); check "
            "CONTROLPLANE_DATABASE_URL and the database server",
        )
    return {"status": "ready", "database": database.dialect}


@router.get(
    "/metrics",
    summary="The control plane's own metrics (Prometheus text format)",
    response_class=Response,
)
def metrics(request: Request) -> Response:
    database: Database = request.app.state.database
    counts = dict.fromkeys(Phase, 0)
    try:
        with database.session() as session:
            rows = session.exec(
                select(Rollout.phase, sa.func.count(col(Rollout.id))).group_by(Rollout.phase)
            ).all()
        counts.update({Phase(phase): int(count) for phase, count in rows})
        for phase, count in counts.items():
            telemetry.ROLLOUTS.labels(phase.value).set(count)
    except SQLAlchemyError:  # the metrics still answer; /readyz reports the database
        pass
    return Response(generate_latest(telemetry.REGISTRY), media_type=CONTENT_TYPE_LATEST)
