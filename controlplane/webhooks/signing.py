"""Signatures. Every POST carries::

    X-Controlplane-Delivery: <delivery id, the same on every retry>
    X-Controlplane-Timestamp: <unix seconds when this attempt was sent>
    X-Controlplane-Signature: sha256=<hex HMAC-SHA256(secret, "<id>.<timestamp>." + raw body)>

(the signed content is laid out as in the Standard Webhooks specification). A receiver
recomputes the HMAC over the delivery id, the timestamp and the exact bytes it received,
with the secret it was given when the webhook was created, compares in constant time,
refuses a timestamp more than a few minutes from its own clock, and dedupes on the
delivery id: a captured delivery can neither be replayed later nor passed off as a new one
(:func:`verify` does the first three, with 5 minutes: what a Python receiver would run).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from typing import Any

SIGNATURE_HEADER = "X-Controlplane-Signature"
TIMESTAMP_HEADER = "X-Controlplane-Timestamp"
DELIVERY_HEADER = "X-Controlplane-Delivery"
EVENT_HEADER = "X-Controlplane-Event"
SECRET_PREFIX = "whsec_"  # noqa: S105 - a public prefix, not a secret
TOLERANCE_SECONDS = 300


def secret_purpose(webhook_name: str) -> str:
    """What a webhook's sealed secret is bound to (controlplane/sealing.py): the webhook, so
    a sealed value copied onto another webhook's row does not open there."""
    return f"webhook-secret:{webhook_name}"


def url_purpose(webhook_name: str) -> str:
    """The same for its URL (a Slack URL is a credential too)."""
    return f"webhook-url:{webhook_name}"


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def body_of(payload: dict[str, Any]) -> bytes:
    """The bytes POSTed for a stored payload: compact, key-sorted, UTF-8 (deterministic, so
    a retry sends the very same bytes)."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


def signed_content(delivery_id: str, timestamp: int, body: bytes) -> bytes:
    return f"{delivery_id}.{timestamp}.".encode() + body


def sign(secret: str, body: bytes, timestamp: int, delivery_id: str) -> str:
    mac = hmac.new(secret.encode(), signed_content(delivery_id, timestamp, body), hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(
    secret: str,
    body: bytes,
    signature: str | None,
    timestamp: str | None,
    delivery_id: str | None,
    *,
    tolerance: float = TOLERANCE_SECONDS,
    now: float | None = None,
) -> bool:
    """True when ``signature`` signs ``delivery_id``, ``timestamp`` and ``body`` with
    ``secret`` and the timestamp is within ``tolerance`` seconds of ``now`` (the wall
    clock by default). Never raises on what a sender put in the headers."""
    if signature is None or timestamp is None or delivery_id is None:
        return False
    if not (timestamp.isascii() and timestamp.isdigit() and delivery_id.isascii()):
        return False
    sent = int(timestamp)
    if abs((time.time() if now is None else now) - sent) > tolerance:
        return False
    expected = sign(secret, body, sent, delivery_id)
    return hmac.compare_digest(expected.encode(), signature.encode(errors="replace"))
