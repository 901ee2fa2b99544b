"""/v1/eval-suites: named, versioned, immutable sets of prompts for the evaluation step;
/v1/rollouts/{id}/evaluations: what each version answered, item by item."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response, status

from controlplane.api.deps import (
    Cursor,
    Limit,
    Operator,
    RolloutId,
    SessionDep,
    SuiteVersion,
    Viewer,
)
from controlplane.api.routing import StrictRoute
from controlplane.models import (
    EvalScorePublic,
    EvalScoresImport,
    EvalSuiteCreate,
    EvalSuitePage,
    EvalSuitePublic,
    EvalSuiteSummary,
)
from controlplane.registry import evals as registry
from controlplane.registry import versions
from controlplane.rollout import service

router = APIRouter(tags=["evals"], route_class=StrictRoute)


@router.post(
    "/v1/eval-suites",
    status_code=status.HTTP_201_CREATED,
    summary="Create an eval suite, or its next version (the same items again: 200, no copy)",
    responses={
        status.HTTP_200_OK: {
            "model": EvalSuiteSummary,
            "description": "The items are those of the latest version: that version, no copy.",
        }
    },
)
def create_suite(
    body: EvalSuiteCreate, session: SessionDep, principal: Operator, response: Response
) -> EvalSuiteSummary:
    suite, created = registry.create_suite(session, data=body, actor=principal.name)
    response.headers["Location"] = f"/v1/eval-suites/{suite.name}/versions/{suite.version}"
    if not created:
        response.status_code = status.HTTP_200_OK
    return registry.to_summary(suite)


@router.get("/v1/eval-suites", summary="List eval suites (every version), newest first")
def list_suites(
    session: SessionDep,
    _: Viewer,
    limit: Limit,
    cursor: Cursor = None,
    name: Annotated[str | None, Query(max_length=63, description="Only this suite.")] = None,
) -> EvalSuitePage:
    items, next_cursor = registry.list_suites(session, name=name, cursor=cursor, limit=limit)
    return EvalSuitePage(
        items=[registry.to_summary(item) for item in items], next_cursor=next_cursor
    )


@router.get("/v1/eval-suites/{name}", summary="An eval suite's latest version, with its items")
def get_suite(name: str, session: SessionDep, _: Viewer) -> EvalSuitePublic:
    return registry.to_public(registry.get_suite(session, name))


@router.get("/v1/eval-suites/{name}/versions/{version}", summary="One version of an eval suite")
def get_suite_version(
    name: str,
    version: SuiteVersion,
    session: SessionDep,
    _: Viewer,
) -> EvalSuitePublic:
    return registry.to_public(registry.get_suite(session, name, version))


@router.get(
    "/v1/rollouts/{rollout_id}/evaluations",
    summary="A rollout's evaluation runs: cost, judgement and the two answers per item",
)
def rollout_evaluations(
    rollout_id: RolloutId,
    session: SessionDep,
    _: Viewer,
    items: Annotated[
        Literal["regressed", "differ", "all"],
        Query(description="Which items to show: regressed (default), differ, or all."),
    ] = "regressed",
    limit: Annotated[
        int, Query(ge=1, le=5000, description="At most this many items per run.")
    ] = 500,
) -> list[dict[str, Any]]:
    service.get_rollout(session, rollout_id)  # 404 for an unknown rollout
    return registry.runs_of(session, rollout_id, answers=items, limit=limit)


@router.post(
    "/v1/models/{model}/versions/{version}/eval-scores",
    status_code=status.HTTP_201_CREATED,
    summary="Import a version's scores from lm-evaluation-harness or OpenAI evals output",
)
def import_scores(
    model: str, version: str, body: EvalScoresImport, session: SessionDep, principal: Operator
) -> list[EvalScorePublic]:
    scores = registry.import_scores(
        session, model_name=model, version=version, data=body, actor=principal.name
    )
    return [registry.score_public(s) for s in scores]


@router.get(
    "/v1/models/{model}/versions/{version}/eval-scores",
    summary="A version's imported scores, with their provenance",
)
def list_scores(model: str, version: str, session: SessionDep, _: Viewer) -> list[EvalScorePublic]:
    _owner, row = versions.get_version(session, model_name=model, version=version)
    assert row.id is not None
    return [registry.score_public(s) for s in registry.scores_of_version(session, row.id)]
