"""/v1/models/{model}/rollouts and /v1/rollouts/{id}: start, watch and steer rollouts."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from controlplane.api.deps import Cursor, Limit, Operator, RolloutId, SessionDep, Viewer
from controlplane.api.routing import StrictRoute
from controlplane.models import Command
from controlplane.rollout import service
from controlplane.rollout.schemas import (
    CommandBody,
    EventPage,
    MeasurementPage,
    MeasurementPublic,
    PromoteBody,
    RolloutCreate,
    RolloutEventPublic,
    RolloutPage,
    RolloutPublic,
)

router = APIRouter(tags=["rollouts"], route_class=StrictRoute)


def _kick(request: Request) -> None:
    scheduler = getattr(request.app.state, "scheduler", None)
    if scheduler is not None:
        scheduler.kick()


@router.post(
    "/v1/models/{model}/rollouts",
    status_code=status.HTTP_201_CREATED,
    summary="Start a rollout of a registered version",
)
def start_rollout(
    model: str,
    body: RolloutCreate,
    session: SessionDep,
    principal: Operator,
    request: Request,
    response: Response,
) -> RolloutPublic:
    rollout = service.start_rollout(
        session,
        model_name=model,
        version=body.version,
        strategy=body.strategy,
        actor=principal.name,
    )
    response.headers["Location"] = f"/v1/rollouts/{rollout.id}"
    _kick(request)
    public = RolloutPublic.of(rollout)
    public.warnings = service.rollout_warnings(session, rollout)
    return public


@router.get("/v1/models/{model}/rollouts", summary="A model's rollouts, newest first")
def list_rollouts(
    model: str, session: SessionDep, _: Viewer, limit: Limit, cursor: Cursor = None
) -> RolloutPage:
    items, next_cursor = service.list_rollouts(
        session, model_name=model, cursor=cursor, limit=limit
    )
    return RolloutPage(items=[RolloutPublic.of(r) for r in items], next_cursor=next_cursor)


@router.get("/v1/rollouts/{rollout_id}", summary="One rollout")
def get_rollout(rollout_id: RolloutId, session: SessionDep, _: Viewer) -> RolloutPublic:
    return RolloutPublic.of(service.get_rollout(session, rollout_id))


def _command(
    request: Request,
    session: SessionDep,
    rollout_id: int,
    command: Command,
    actor: str,
    reason: str,
) -> RolloutPublic:
    rollout = service.request_command(
        session, rollout_id=rollout_id, command=command, actor=actor, reason=reason
    )
    _kick(request)
    return RolloutPublic.of(rollout)


@router.post(
    "/v1/rollouts/{rollout_id}/promote",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Promote to the next step, or with full=true past every step",
)
def promote(
    rollout_id: RolloutId,
    session: SessionDep,
    principal: Operator,
    request: Request,
    body: PromoteBody | None = None,
) -> RolloutPublic:
    body = body or PromoteBody()
    command = Command.PROMOTE_FULL if body.full else Command.PROMOTE
    return _command(request, session, rollout_id, command, principal.name, body.reason)


def _register_command(command: Command, name: str, summary: str) -> None:
    """abort, pause and resume take the same body and differ only in the command."""

    def endpoint(
        rollout_id: RolloutId,
        session: SessionDep,
        principal: Operator,
        request: Request,
        body: CommandBody | None = None,
    ) -> RolloutPublic:
        reason = (body or CommandBody()).reason
        return _command(request, session, rollout_id, command, principal.name, reason)

    router.add_api_route(
        f"/v1/rollouts/{{rollout_id}}/{name}",
        endpoint,
        methods=["POST"],
        status_code=status.HTTP_202_ACCEPTED,
        summary=summary,
        name=name,
        response_model=RolloutPublic,
    )


_register_command(Command.ABORT, "abort", "Abort: traffic back to stable, the canary removed")
_register_command(Command.PAUSE, "pause", "Pause at the current step")
_register_command(
    Command.RESUME, "resume", "Resume a paused rollout (its current step starts over)"
)


@router.get("/v1/rollouts/{rollout_id}/events", summary="What happened, newest first")
def events(
    rollout_id: RolloutId, session: SessionDep, _: Viewer, limit: Limit, cursor: Cursor = None
) -> EventPage:
    items, next_cursor = service.list_events(
        session, rollout_id=rollout_id, cursor=cursor, limit=limit
    )
    return EventPage(items=[RolloutEventPublic.of(e) for e in items], next_cursor=next_cursor)


@router.get(
    "/v1/rollouts/{rollout_id}/measurements",
    summary="Analysis measurements with their evidence, newest first",
)
def measurements(
    rollout_id: RolloutId, session: SessionDep, _: Viewer, limit: Limit, cursor: Cursor = None
) -> MeasurementPage:
    items, next_cursor = service.list_measurements(
        session, rollout_id=rollout_id, cursor=cursor, limit=limit
    )
    return MeasurementPage(items=[MeasurementPublic.of(m) for m in items], next_cursor=next_cursor)
