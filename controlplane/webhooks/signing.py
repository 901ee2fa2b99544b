"""Signatures. Every POST carries::

    X-Controlplane-Timestamp: <unix seconds when it was sent>
    X-Controlplane-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + raw body)>

A receiver recomputes the HMAC over the timestamp, a dot and the exact bytes it received,
with the secret it was given when the webhook was created, compares in constant time, and
refuses a timestamp more than a few minutes from its own clock, so that a captured delivery
cannot be replayed later (:func:`verify` does all of it, with 5 minutes: what a Python
receiver would run). ``X-Controlplane-Delivery`` is unique per delivery and the same on
every retry (each retry has a fresh timestamp and signature): receivers dedupe on it.
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
SECRET_PURPOSE = "webhook-secret"  # noqa: S105 - what a sealed secret is for (sealing.py)
TOLERANCE_SECONDS = 300


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def body_of(payload: dict[str, Any]) -> bytes:
    """The bytes POSTed for a stored payload: compact, key-sorted, UTF-8 (deterministic, so
    a retry sends the very same bytes)."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


def sign(secret: str, body: bytes, timestamp: int) -> str:
    signed = f"{timestamp}.".encode() + body
    return "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def verify(
    secret: str,
    body: bytes,
    signature: str | None,
    timestamp: str | None,
    *,
    tolerance: float = TOLERANCE_SECONDS,
    now: float | None = None,
) -> bool:
    """True when ``signature`` signs ``timestamp`` and ``body`` with ``secret`` and the
    timestamp is within ``tolerance`` seconds of ``now`` (the wall clock by default)."""
    if signature is None or timestamp is None or not timestamp.isdigit():
        return False
    sent = int(timestamp)
    if abs((time.time() if now is None else now) - sent) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, body, sent), signature)
