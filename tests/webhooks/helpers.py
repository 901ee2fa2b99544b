"""Shared steps: subscribe through the service, announce an event as the reconciler does."""

from __future__ import annotations

import ipaddress
from typing import Any

from sqlmodel import select

from controlplane.db import Database
from controlplane.models import Rollout, WebhookDelivery
from controlplane.rollout.service import add_event
from controlplane.sealing import Sealer
from controlplane.webhooks import service
from controlplane.webhooks.guard import AddressPolicy
from controlplane.webhooks.schemas import WebhookCreate, WebhookCreated, WebhookEvent

# the test receivers listen on loopback, which webhooks may not reach by default
LOOPBACK = AddressPolicy(allowed=(ipaddress.ip_network("127.0.0.0/8"),))


def subscribe(
    database: Database, name: str, url: str, *, sealer: Sealer | None = None, **fields: Any
) -> WebhookCreated:
    data = WebhookCreate.model_validate(
        {"name": name, "url": url, "events": [e.value for e in WebhookEvent], **fields}
    )
    with database.session() as session:
        return service.create_webhook(
            session, data=data, actor="admin", policy=LOOPBACK, sealer=sealer or Sealer()
        )


def announce(
    database: Database,
    rollout: Rollout,
    event: WebhookEvent,
    message: str = "weight 25% in force",
    *,
    commit: bool = True,
) -> list[int]:
    """What the reconciler's _record does: the rollout event and the deliveries, one
    transaction."""
    with database.session() as session:
        row = session.get(Rollout, rollout.id)
        assert row is not None
        add_event(session, row, at=row.updated_at, actor="system", kind="step", message=message)
        deliveries = service.enqueue(session, row, event, message, {"weight": 25})
        if commit:
            session.commit()
        else:
            session.rollback()
        return [d.id for d in deliveries if d.id is not None]


def deliveries(database: Database) -> list[WebhookDelivery]:
    with database.session() as session:
        return list(session.exec(select(WebhookDelivery).order_by(WebhookDelivery.id)).all())
