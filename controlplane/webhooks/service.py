"""Webhook subscriptions, and the outbox the rollout engine writes deliveries into.

:func:`enqueue` runs in the caller's transaction: a delivery exists if and only if the event
it announces was committed, whatever crashes afterwards. The dispatcher sends them later.
Nothing here sends anything, and nothing here may log or audit a secret or a whole URL (a
Slack URL is itself a credential).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from controlplane import audit, pagination
from controlplane.errors import (
    AlreadyExistsError,
    FieldIssue,
    InvalidRequestError,
    NotFoundError,
)
from controlplane.models import Phase, Rollout, Webhook, WebhookDelivery, utcnow
from controlplane.sealing import Sealer, SealingError
from controlplane.webhooks import payloads, signing
from controlplane.webhooks.guard import AddressPolicy
from controlplane.webhooks.schemas import (
    PING,
    DeliveryStatus,
    WebhookCreate,
    WebhookCreated,
    WebhookEvent,
    WebhookFormat,
    WebhookPublic,
)

# --- the mapping from the engine's events to the public kinds -------------------------------


_ENTERED = {
    Phase.PAUSED: WebhookEvent.PAUSED,
    Phase.SUCCEEDED: WebhookEvent.PROMOTED,
    Phase.ROLLED_BACK: WebhookEvent.ROLLED_BACK,
    Phase.ABORTED: WebhookEvent.ROLLED_BACK,
}


def event_for(
    before: Phase,
    after: Phase,
    event_kind: str,
    *,
    step_before: int | None = None,
    step_after: int | None = None,
) -> WebhookEvent | None:
    """The public kind of one recorded rollout event, or None when it is not announced.

    ``before``/``after`` are the phases around the decision and ``event_kind`` the planner's
    event kind (``transition``, ``step``, ``measure``, ``hold``). A ``step`` event also
    reports traffic moving part of the way to a step's weight; pass the step indices around
    the decision so that only a step actually passed is announced.
    """
    if after is not before:
        if before is Phase.PENDING and after in (Phase.PROGRESSING, Phase.PROMOTING):
            return WebhookEvent.STARTED
        return _ENTERED.get(after)
    if event_kind == "drift":
        return WebhookEvent.DRIFT
    if event_kind == "step" and (
        step_before is None or step_after is None or step_after > step_before
    ):
        return WebhookEvent.STEP_PASSED
    return None


def enqueue(
    session: Session,
    rollout: Rollout,
    event_kind: WebhookEvent | str,
    message: str,
    evidence: dict[str, Any] | None = None,
    *,
    now: datetime | None = None,
) -> list[WebhookDelivery]:
    """Add one pending delivery per active webhook subscribed to ``event_kind``, in the
    caller's transaction (not committed here). Call it after the rollout's new facts are set,
    so the payload shows them."""
    event = WebhookEvent(event_kind)
    now = now or utcnow()
    hooks = [
        hook
        for hook in session.exec(select(Webhook).where(col(Webhook.active))).all()
        if event.value in hook.events
    ]
    if not hooks:
        return []
    document = payloads.event_document(rollout, event, message, evidence, at=now)
    deliveries = [
        _delivery(hook, document, event.value, now=now, rollout_id=rollout.id) for hook in hooks
    ]
    session.add_all(deliveries)
    return deliveries


def _delivery(
    hook: Webhook, document: dict[str, Any], event: str, *, now: datetime, rollout_id: int | None
) -> WebhookDelivery:
    assert hook.id is not None
    return WebhookDelivery(
        webhook_id=hook.id,
        rollout_id=rollout_id,
        event=event,
        payload=payloads.render(document, WebhookFormat(hook.format)),
        status=DeliveryStatus.PENDING.value,
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )


# --- subscriptions ------------------------------------------------------------------------


def _host(url: str) -> str:
    return urlsplit(url).hostname or ""


def create_webhook(
    session: Session,
    *,
    data: WebhookCreate,
    actor: str,
    policy: AddressPolicy,
    sealer: Sealer,
    now: datetime | None = None,
) -> WebhookCreated:
    """Subscribe; the URL must point where ``policy`` lets webhooks go (see guard.py). The
    signing secret is returned once and stored sealed (see controlplane/sealing.py)."""
    now = now or utcnow()
    refused = policy.check(data.url)
    if refused is not None:
        raise InvalidRequestError(
            refused,
            code="webhook_url_forbidden",
            issues=[FieldIssue("url", refused, "forbidden_address")],
        )
    exists = AlreadyExistsError(
        f"a webhook named {data.name!r} already exists: pick another name, or delete it first",
        code="webhook_exists",
    )
    if session.exec(select(Webhook.id).where(Webhook.name == data.name)).first() is not None:
        raise exists
    secret = signing.new_secret()
    hook = Webhook(
        name=data.name,
        url=sealer.seal(data.url, purpose=signing.url_purpose(data.name)),
        events=[e.value for e in data.events],
        format=data.format.value,
        secret=sealer.seal(secret, purpose=signing.secret_purpose(data.name)),
        description=data.description,
        active=data.active,
        created_at=now,
        created_by=actor,
    )
    session.add(hook)
    audit.record(
        session,
        actor=actor,
        action="webhook.created",
        at=now,
        details={
            "name": data.name,
            "host": _host(data.url),  # never the whole URL: a Slack URL is a credential
            "events": hook.events,
            "format": hook.format,
        },
    )
    try:
        session.commit()
    except IntegrityError as error:
        session.rollback()
        raise exists from error
    session.refresh(hook)
    return WebhookCreated(**WebhookPublic.of(hook, data.url).model_dump(), secret=secret)


UNREADABLE_URL = "(sealed with a key this server does not have: see CONTROLPLANE_SECRET_KEYS)"


def public(hook: Webhook, sealer: Sealer) -> WebhookPublic:
    """The webhook as the API shows it: its URL unsealed, never its secret."""
    try:
        url = sealer.unseal(hook.url, purpose=signing.url_purpose(hook.name))
    except SealingError:
        url = UNREADABLE_URL
    return WebhookPublic.of(hook, url)


def get_webhook(session: Session, name: str) -> Webhook:
    hook = session.exec(select(Webhook).where(Webhook.name == name)).first()
    if hook is None:
        raise NotFoundError(
            f"no webhook named {name!r}; list webhooks with GET /v1/webhooks",
            code="webhook_not_found",
        )
    return hook


def list_webhooks(
    session: Session, *, cursor: str | None = None, limit: int = 50
) -> tuple[list[Webhook], str | None]:
    statement = pagination.page_after(select(Webhook), col(Webhook.id), cursor, limit)
    rows = list(session.exec(statement).all())
    return pagination.split_page(rows, limit, lambda hook: hook.id)


def delete_webhook(
    session: Session, *, name: str, actor: str, now: datetime | None = None
) -> Webhook:
    """Delete a webhook with its deliveries (pending ones are never sent)."""
    now = now or utcnow()
    hook = get_webhook(session, name)
    session.delete(hook)
    audit.record(session, actor=actor, action="webhook.deleted", at=now, details={"name": name})
    session.commit()
    return hook


def list_deliveries(
    session: Session,
    *,
    name: str,
    status: DeliveryStatus | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> tuple[Webhook, list[WebhookDelivery], str | None]:
    hook = get_webhook(session, name)
    statement = select(WebhookDelivery).where(WebhookDelivery.webhook_id == hook.id)
    if status is not None:
        statement = statement.where(WebhookDelivery.status == status.value)
    statement = pagination.page_after(statement, col(WebhookDelivery.id), cursor, limit)
    rows = list(session.exec(statement).all())
    items, next_cursor = pagination.split_page(rows, limit, lambda d: d.id)
    return hook, items, next_cursor


def send_test(
    session: Session, *, name: str, actor: str, now: datetime | None = None
) -> WebhookDelivery:
    """Queue a ``ping`` delivery (also for an inactive webhook: that is how to try it)."""
    now = now or utcnow()
    hook = get_webhook(session, name)
    document = payloads.ping_document(hook.name, actor, at=now)
    delivery = _delivery(hook, document, PING, now=now, rollout_id=None)
    session.add(delivery)
    audit.record(session, actor=actor, action="webhook.tested", at=now, details={"name": name})
    session.commit()
    session.refresh(delivery)
    return delivery


# --- sealing ------------------------------------------------------------------------------


def reseal_secrets(session: Session, *, sealer: Sealer, actor: str) -> tuple[int, int]:
    """Seal every webhook's signing secret and URL with ``sealer``'s first key: those
    stored before a key was set, and those sealed with an older key. One transaction: all
    or nothing (a value no key opens stops it with :class:`~controlplane.sealing.SealingError`).
    Returns (resealed, already current)."""
    if not sealer.enabled:
        raise InvalidRequestError(
            "no key to seal with: set CONTROLPLANE_SECRET_KEYS first", code="no_secret_key"
        )
    hooks = session.exec(select(Webhook).order_by(col(Webhook.id))).all()
    stale = [h for h in hooks if not (sealer.is_current(h.secret) and sealer.is_current(h.url))]
    for hook in stale:
        secret, url = signing.secret_purpose(hook.name), signing.url_purpose(hook.name)
        hook.secret = sealer.seal(sealer.unseal(hook.secret, purpose=secret), purpose=secret)
        hook.url = sealer.seal(sealer.unseal(hook.url, purpose=url), purpose=url)
        session.add(hook)
    if stale:
        audit.record(
            session,
            actor=actor,
            action="webhook.secrets_resealed",
            at=utcnow(),
            details={"webhooks": [h.name for h in stale]},
        )
    session.commit()
    return len(stale), len(hooks) - len(stale)
