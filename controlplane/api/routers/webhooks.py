"""/v1/webhooks: subscriptions to rollout events and their deliveries (admin only: a
webhook's URL can be a credential, and deliveries carry the rollouts' evidence)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from controlplane.api.deps import Admin, Cursor, Limit, SessionDep
from controlplane.api.routing import StrictRoute
from controlplane.webhooks import service
from controlplane.webhooks.schemas import (
    DeliveryPage,
    DeliveryPublic,
    DeliveryStatus,
    WebhookCreate,
    WebhookCreated,
    WebhookPage,
    WebhookPublic,
)

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"], route_class=StrictRoute)


def _kick(request: Request) -> None:
    dispatcher = getattr(request.app.state, "webhooks", None)
    if dispatcher is not None:
        dispatcher.kick()


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create a webhook (its signing secret is shown once)",
)
def create_webhook(
    body: WebhookCreate,
    session: SessionDep,
    principal: Admin,
    request: Request,
    response: Response,
) -> WebhookCreated:
    created = service.create_webhook(
        session,
        data=body,
        actor=principal.name,
        policy=request.app.state.webhook_policy,
        sealer=request.app.state.sealer,
    )
    response.headers["Location"] = f"/v1/webhooks/{created.name}"
    return created


@router.get("", summary="List webhooks (never their secrets)")
def list_webhooks(
    session: SessionDep, _: Admin, request: Request, limit: Limit, cursor: Cursor = None
) -> WebhookPage:
    items, next_cursor = service.list_webhooks(session, cursor=cursor, limit=limit)
    sealer = request.app.state.sealer
    return WebhookPage(items=[service.public(h, sealer) for h in items], next_cursor=next_cursor)


@router.get("/{name}", summary="One webhook")
def get_webhook(name: str, session: SessionDep, _: Admin, request: Request) -> WebhookPublic:
    return service.public(service.get_webhook(session, name), request.app.state.sealer)


@router.delete("/{name}", summary="Delete a webhook and its delivery records")
def delete_webhook(
    name: str, session: SessionDep, principal: Admin, request: Request
) -> WebhookPublic:
    deleted = service.delete_webhook(session, name=name, actor=principal.name)
    return service.public(deleted, request.app.state.sealer)


@router.get("/{name}/deliveries", summary="A webhook's deliveries, newest first")
def list_deliveries(
    name: str,
    session: SessionDep,
    _: Admin,
    limit: Limit,
    cursor: Cursor = None,
    status: Annotated[DeliveryStatus | None, Query(description="Only this status.")] = None,
) -> DeliveryPage:
    hook, items, next_cursor = service.list_deliveries(
        session, name=name, status=status, cursor=cursor, limit=limit
    )
    return DeliveryPage(
        items=[DeliveryPublic.of(d, hook.name) for d in items], next_cursor=next_cursor
    )


@router.post(
    "/{name}/test",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Queue a 'ping' delivery to the webhook; watch it under /deliveries",
)
def test_webhook(
    name: str, session: SessionDep, principal: Admin, request: Request
) -> DeliveryPublic:
    delivery = service.send_test(session, name=name, actor=principal.name)
    _kick(request)
    return DeliveryPublic.of(delivery, name)
