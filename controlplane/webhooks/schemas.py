"""What the webhook API accepts and says, and the vocabularies stored as plain strings."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from controlplane.jsonlimits import JsonTypes
from controlplane.models import Webhook, WebhookDelivery
from controlplane.naming import DNS1123_LABEL_PATTERN, dns1123_label_problem


class WebhookEvent(StrEnum):
    """The public kinds of rollout events a webhook can subscribe to."""

    STARTED = "started"  # pending -> progressing
    STEP_PASSED = "step_passed"  # a step of the strategy was done and the next one began
    PAUSED = "paused"  # waiting for a person (a command, or inconclusive analysis)
    PROMOTED = "promoted"  # succeeded: the canary is the stable version
    ROLLED_BACK = "rolled_back"  # rolled back by the engine, or aborted by a person
    FAILED = "failed"  # reserved: a rollout that could not roll back
    DRIFT = "drift"  # someone else changed what the rollout owns; it was undone


PING = "ping"  # a test delivery (POST /v1/webhooks/{name}/test); never subscribed to


class WebhookFormat(StrEnum):
    JSON = "json"  # the event document below
    SLACK = "slack"  # {"text": "..."}: Slack (and Mattermost, Teams workflows) incoming hooks


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


def url_problem(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as error:
        return f"url {url!r} is not a valid URL: {error}"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return (
            "url must be an absolute http:// or https:// URL "
            "(e.g. 'https://hooks.example.com/controlplane')"
        )
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        return "url must not contain whitespace or control characters"
    return None


class WebhookCreate(JsonTypes, BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "oncall",
                    "url": "https://hooks.example.com/controlplane",
                    "events": ["rolled_back", "failed"],
                }
            ]
        },
    )

    name: str = Field(
        max_length=63,
        description="Unique name; an RFC 1123 label.",
        json_schema_extra={"pattern": DNS1123_LABEL_PATTERN},
    )
    url: str = Field(
        max_length=2048,
        description="Where events are POSTed (http or https).",
        examples=["https://hooks.example.com/controlplane"],
    )
    events: list[WebhookEvent] = Field(
        min_length=1, description="The event kinds to send: " + ", ".join(WebhookEvent)
    )
    format: WebhookFormat = Field(
        default=WebhookFormat.JSON, description="'json' (the event) or 'slack' ({'text': ...})."
    )
    description: str = Field(default="", max_length=500)
    active: bool = True

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        problem = dns1123_label_problem(value, "webhook name")
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        problem = url_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("events")
    @classmethod
    def _events(cls, value: list[WebhookEvent]) -> list[WebhookEvent]:
        return sorted(set(value), key=list(WebhookEvent).index)


class WebhookPublic(BaseModel):
    """A webhook as the API shows it: never its secret."""

    name: str
    url: str
    events: list[WebhookEvent]
    format: WebhookFormat
    description: str
    active: bool
    created_at: datetime
    created_by: str

    @classmethod
    def of(cls, webhook: Webhook, url: str) -> WebhookPublic:
        """``url``: the webhook's URL unsealed (webhooks.service.public does it)."""
        return cls(
            name=webhook.name,
            url=url,
            events=[WebhookEvent(e) for e in webhook.events],
            format=WebhookFormat(webhook.format),
            description=webhook.description,
            active=webhook.active,
            created_at=webhook.created_at,
            created_by=webhook.created_by,
        )


class WebhookCreated(WebhookPublic):
    secret: str = Field(
        description="The HMAC-SHA256 signing secret. Shown once: store it with the receiver."
    )


class WebhookPage(BaseModel):
    items: list[WebhookPublic]
    next_cursor: str | None = None


class DeliveryPublic(BaseModel):
    id: int
    webhook: str
    rollout_id: int | None
    event: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None = Field(description="When it is tried next; null when done.")
    last_status_code: int | None
    last_error: str | None
    payload: dict[str, Any] = Field(description="The body POSTed (JSON), as sent.")
    created_at: datetime
    delivered_at: datetime | None

    @classmethod
    def of(cls, delivery: WebhookDelivery, webhook: str) -> DeliveryPublic:
        assert delivery.id is not None
        status = DeliveryStatus(delivery.status)
        return cls(
            id=delivery.id,
            webhook=webhook,
            rollout_id=delivery.rollout_id,
            event=delivery.event,
            status=status,
            attempts=delivery.attempts,
            next_attempt_at=delivery.next_attempt_at if status is DeliveryStatus.PENDING else None,
            last_status_code=delivery.last_status_code,
            last_error=delivery.last_error,
            payload=delivery.payload,
            created_at=delivery.created_at,
            delivered_at=delivery.delivered_at,
        )


class DeliveryPage(BaseModel):
    items: list[DeliveryPublic]
    next_cursor: str | None = None
