"""What a delivery says: the event document (format ``json``) or a one-line Slack message.

Built when the event is recorded and stored with the delivery, so a retry sends what was
true then, not what is true when the receiver comes back.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from controlplane.models import Rollout
from controlplane.webhooks.schemas import PING, WebhookEvent, WebhookFormat

SLACK_TEXT_MAX = 500

_VERBS = {
    WebhookEvent.STARTED: "rollout started",
    WebhookEvent.STEP_PASSED: "step passed",
    WebhookEvent.PAUSED: "paused",
    WebhookEvent.PROMOTED: "promoted",
    WebhookEvent.ROLLED_BACK: "rolled back",
    WebhookEvent.FAILED: "FAILED",
}


def event_document(
    rollout: Rollout,
    event: WebhookEvent,
    message: str,
    evidence: dict[str, Any] | None,
    *,
    at: datetime,
) -> dict[str, Any]:
    return {
        "event": event.value,
        "occurred_at": at.isoformat(),
        "message": message,
        "rollout": {
            "id": rollout.id,
            "model": rollout.model,
            "version": rollout.canary_version,
            "stable_version": rollout.stable_version,
            "phase": rollout.phase.value,
            "step_index": rollout.step_index,
            "weight": rollout.routed_weight,
            "reason": rollout.reason,
        },
        "evidence": dict(evidence or {}),
    }


def slack_text(document: dict[str, Any]) -> str:
    """One readable line, e.g. ``chat v3: rolled back (rollout #12, weight 0%) - analysis
    failed at 25% ...``."""
    rollout = document.get("rollout") or {}
    event = document["event"]
    verb = _VERBS.get(WebhookEvent(event), event) if event != PING else "test delivery"
    head = f"{rollout.get('model', 'controlplane')}"
    if rollout.get("version"):
        head += f" {rollout['version']}"
    where = []
    if rollout.get("id") is not None:
        where.append(f"rollout #{rollout['id']}")
    if rollout.get("weight") is not None:
        where.append(f"weight {rollout['weight']}%")
    text = f"{head}: {verb}"
    if where:
        text += f" ({', '.join(where)})"
    message = " ".join(str(document.get("message", "")).split())
    if message:
        text += f" - {message}"
    if len(text) > SLACK_TEXT_MAX:
        text = text[: SLACK_TEXT_MAX - 3] + "..."
    return text


def render(document: dict[str, Any], fmt: WebhookFormat) -> dict[str, Any]:
    if fmt is WebhookFormat.SLACK:
        return {"text": slack_text(document)}
    return document


def ping_document(webhook_name: str, actor: str, *, at: datetime) -> dict[str, Any]:
    return {
        "event": PING,
        "occurred_at": at.isoformat(),
        "message": f"test delivery to webhook {webhook_name!r}, requested by {actor}",
        "rollout": None,
        "evidence": {},
    }
