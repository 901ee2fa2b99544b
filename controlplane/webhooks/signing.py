"""Signatures: ``X-Controlplane-Signature: sha256=<hex HMAC-SHA256 of the raw body>``.

A receiver recomputes the HMAC over the exact bytes it received, with the secret it was
given when the webhook was created, and compares in constant time (:func:`verify` is what a
Python receiver would run). ``X-Controlplane-Delivery`` is unique per delivery and stays the
same across retries: receivers dedupe on it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from typing import Any

SIGNATURE_HEADER = "X-Controlplane-Signature"
DELIVERY_HEADER = "X-Controlplane-Delivery"
EVENT_HEADER = "X-Controlplane-Event"
SECRET_PREFIX = "whsec_"  # noqa: S105 - a public prefix, not a secret
SECRET_PURPOSE = "webhook-secret"  # noqa: S105 - what a sealed secret is for (sealing.py)


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def body_of(payload: dict[str, Any]) -> bytes:
    """The bytes POSTed for a stored payload: compact, key-sorted, UTF-8 (deterministic, so
    a retry sends the very same bytes with the very same signature)."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str | None) -> bool:
    return header is not None and hmac.compare_digest(sign(secret, body), header)
