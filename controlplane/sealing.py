"""Secrets the control plane must be able to read back, sealed at rest.

A webhook's signing secret cannot be stored as a hash, as API tokens are: the dispatcher
needs it to sign every delivery. So it is sealed with AES-256-GCM under a key derived
(HKDF-SHA256) from ``CONTROLPLANE_SECRET_KEYS``; whoever reads the database (a backup, a
replica, a leaked dump) without the key learns nothing, and cannot alter a sealed value
or move it to another purpose (for a webhook secret: another webhook) without the check
failing. What sealing does not stop: someone who can write to the database can replace a
sealed value with one stored as given (read as is, as values from before a key was set
are), or change a webhook's URL; database write access must be guarded in any case.

Stored form: ``sealed:v1:<key id>:<base64url(nonce | ciphertext | tag)>``. The key id (a
digest of the key, not the key) says which key sealed it, so keys can be rotated: put the
new key first (it seals from then on), keep the old ones after it (they still unseal), run
``controlplane db reseal`` to move every stored secret to the new key, then drop the old.

Without any key, values are stored as given (and ``serve`` warns once at start); values
stored before a key was set stay readable and are sealed by ``controlplane db reseal``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from controlplane.config import SealingSettings

PREFIX = "sealed:v1:"
NONCE_BYTES = 12
_INFO = b"controlplane sealing v1"


class SealingError(Exception):
    """A sealed value cannot be opened; the message says what to fix (never the value)."""


def _derive(passphrase: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(
        passphrase.encode()
    )


def _key_id(key: bytes) -> str:
    return hashlib.sha256(b"controlplane key id|" + key).hexdigest()[:12]


@dataclass(frozen=True)
class Sealer:
    keys: tuple[bytes, ...] = ()  # derived keys; the first one seals

    @classmethod
    def from_passphrases(cls, passphrases: Sequence[str]) -> Sealer:
        return cls(tuple(_derive(p) for p in passphrases))

    @classmethod
    def from_settings(cls, settings: SealingSettings) -> Sealer:
        return cls.from_passphrases(settings.secret_key_list)

    @property
    def enabled(self) -> bool:
        return bool(self.keys)

    def seal(self, value: str, *, purpose: str) -> str:
        """``value`` sealed with the first key for ``purpose`` (authenticated, so a value
        sealed for one purpose does not open as another); as given when there is no key."""
        if not self.keys:
            return value
        key = self.keys[0]
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(key).encrypt(nonce, value.encode(), purpose.encode())
        body = base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")
        return f"{PREFIX}{_key_id(key)}:{body}"

    def unseal(self, stored: str, *, purpose: str) -> str:
        if not stored.startswith(PREFIX):
            return stored  # stored before a key was set: readable as is
        key_id, _, body = stored.removeprefix(PREFIX).partition(":")
        key = next((k for k in self.keys if _key_id(k) == key_id), None)
        if key is None:
            raise SealingError(
                f"this secret was sealed with key {key_id}, which is not among "
                "CONTROLPLANE_SECRET_KEYS"
                + ("" if self.keys else " (none is set)")
                + ": add that key back (after the current one) to read it"
            )
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            plain = AESGCM(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], purpose.encode())
        except (InvalidTag, ValueError, binascii.Error) as error:
            raise SealingError(
                f"a secret sealed with key {key_id} does not authenticate: the stored value "
                "was altered or truncated"
            ) from error
        return plain.decode()

    def is_current(self, stored: str) -> bool:
        """Sealed with the first key (or, with no key, stored as is): nothing to reseal."""
        if not self.keys:
            return not stored.startswith(PREFIX)
        return stored.startswith(f"{PREFIX}{_key_id(self.keys[0])}:")
