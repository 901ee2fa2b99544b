"""Liveness and readiness, without authentication (kubelet probes carry no token)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from controlplane.api.problems import problem_response
from controlplane.db import Database

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process answers")
def healthz() -> dict[str, str]:
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
