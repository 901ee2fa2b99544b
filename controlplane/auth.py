"""API tokens: issue, list, revoke, and resolve a bearer secret to a principal.

Secrets are 256-bit random values shown once; only their SHA-256 is stored (a slow hash
buys nothing for secrets of this entropy). The bootstrap admin token comes from settings
and is compared in constant time. Nothing here may log a secret.

A process remembers the tokens it resolved for a few seconds (:class:`TokenCache`), so
that a busy client does not cost a database read per request. The bound: a revocation
made through this process is refused at once; one made through another process or
replica is refused there within the cache's time to live. Expiry is always checked
against the clock, never cached.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from controlplane import audit, pagination
from controlplane.errors import (
    AlreadyExistsError,
    AuthenticationError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
)
from controlplane.models import ApiToken, Role, TokenCreate, TokenCreated, TokenPublic, utcnow

TOKEN_PREFIX = "cpt_"  # noqa: S105 - a public prefix, not a secret
BOOTSTRAP_ADMIN = "admin"
RESERVED_NAMES = frozenset({BOOTSTRAP_ADMIN, "system"})


@dataclass(frozen=True)
class Principal:
    """Who is calling: the name recorded as actor, and what they may do."""

    name: str
    role: Role

    def require(self, role: Role) -> None:
        if not self.role.allows(role):
            raise PermissionDeniedError(
                f"token {self.name!r} has role {self.role.value!r}; this call needs "
                f"{role.value!r} or higher: ask an admin for a token with that role",
                code="insufficient_role",
            )


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class KnownToken:
    """What authentication needs of a stored, unrevoked token."""

    name: str
    role: Role
    expires_at: datetime | None


class TokenCache:
    """Unrevoked tokens by the hash of their secret, each kept ``ttl_seconds`` from the
    database read that found it (0: nothing is kept). Only tokens found valid are kept, so
    guessed secrets cannot fill it; at most ``max_entries``, the oldest dropped first.
    Safe to share between the event loop and the thread pool."""

    def __init__(
        self,
        ttl_seconds: float,
        *,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, KnownToken]] = OrderedDict()
        self._lock = threading.Lock()
        # bumped by every forget(): a lookup that began before a revocation and ends
        # after it must not put the token back (see put's ``seen``)
        self.revocations = 0

    def get(self, token_hash: str) -> KnownToken | None:
        with self._lock:
            entry = self._entries.get(token_hash)
            if entry is None:
                return None
            if self._clock() >= entry[0]:
                del self._entries[token_hash]
                return None
            return entry[1]

    def put(self, token_hash: str, token: KnownToken, *, seen: int) -> None:
        """Keep ``token``, read from the database when ``revocations`` was ``seen``."""
        if self.ttl_seconds <= 0:
            return
        with self._lock:
            if seen != self.revocations:
                return
            self._entries[token_hash] = (self._clock() + self.ttl_seconds, token)
            self._entries.move_to_end(token_hash)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def forget(self, name: str) -> None:
        """Drop the token named ``name`` (it was just revoked)."""
        with self._lock:
            self.revocations += 1
            for token_hash, (_, token) in list(self._entries.items()):
                if token.name == name:
                    del self._entries[token_hash]


def _missing() -> AuthenticationError:
    return AuthenticationError(
        "missing bearer token: send 'Authorization: Bearer <token>'", code="unauthenticated"
    )


def _principal(token: KnownToken, now: datetime) -> Principal:
    if token.expires_at is not None and token.expires_at <= now:
        raise AuthenticationError(
            f"token {token.name!r} expired at {token.expires_at.isoformat()}: ask an admin "
            "for a new one",
            code="token_expired",
        )
    return Principal(name=token.name, role=token.role)


def known_principal(
    *,
    secret: str | None,
    admin_token: str,
    cache: TokenCache | None,
    now: datetime | None = None,
) -> Principal | None:
    """The caller, when it can be told without the database (the admin token, or a token
    in ``cache``); None when the token must be looked up (:func:`authenticate`)."""
    if not secret:
        raise _missing()
    if hmac.compare_digest(secret.encode(), admin_token.encode()):
        return Principal(name=BOOTSTRAP_ADMIN, role=Role.ADMIN)
    token = cache.get(hash_secret(secret)) if cache is not None else None
    return _principal(token, now or utcnow()) if token is not None else None


def authenticate(
    session: Session,
    *,
    secret: str | None,
    admin_token: str,
    now: datetime | None = None,
    cache: TokenCache | None = None,
) -> Principal:
    now = now or utcnow()
    known = known_principal(secret=secret, admin_token=admin_token, cache=cache, now=now)
    if known is not None:
        return known
    assert secret is not None  # known_principal refused a missing one
    seen = cache.revocations if cache is not None else 0
    token_hash = hash_secret(secret)
    token = session.exec(select(ApiToken).where(ApiToken.token_hash == token_hash)).first()
    if token is None or token.revoked_at is not None:
        raise AuthenticationError(
            "invalid or revoked token: check the token, or ask an admin for a new one",
            code="invalid_token",
        )
    known_token = KnownToken(name=token.name, role=token.role, expires_at=token.expires_at)
    if cache is not None:
        cache.put(token_hash, known_token, seen=seen)
    return _principal(known_token, now)


def to_public(token: ApiToken) -> TokenPublic:
    return TokenPublic.model_validate(token, from_attributes=True)


def create_token(
    session: Session, *, data: TokenCreate, actor: str, now: datetime | None = None
) -> TokenCreated:
    now = now or utcnow()
    if data.name in RESERVED_NAMES:
        raise InvalidRequestError(
            f"token name {data.name!r} is reserved (it names the bootstrap admin or the "
            "control plane itself in the audit trail): pick another name",
            code="reserved_name",
        )
    if session.exec(select(ApiToken.id).where(ApiToken.name == data.name)).first() is not None:
        raise AlreadyExistsError(
            f"a token named {data.name!r} already exists (names stay taken after revocation, "
            "for the audit trail): pick another name",
            code="token_exists",
        )
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        name=data.name,
        role=data.role,
        description=data.description,
        token_hash=hash_secret(secret),
        prefix=secret[: len(TOKEN_PREFIX) + 6],
        created_at=now,
        created_by=actor,
        expires_at=now + timedelta(days=data.expires_in_days) if data.expires_in_days else None,
    )
    session.add(token)
    audit.record(
        session,
        actor=actor,
        action="token.created",
        at=now,
        details={"name": data.name, "role": data.role.value},
    )
    try:
        session.commit()
    except IntegrityError as error:
        session.rollback()
        raise AlreadyExistsError(
            f"a token named {data.name!r} already exists", code="token_exists"
        ) from error
    session.refresh(token)
    return TokenCreated.model_validate({**to_public(token).model_dump(), "token": secret})


def list_tokens(
    session: Session, *, include_revoked: bool = False, cursor: str | None = None, limit: int = 50
) -> tuple[list[ApiToken], str | None]:
    statement = select(ApiToken)
    if not include_revoked:
        statement = statement.where(col(ApiToken.revoked_at).is_(None))
    statement = pagination.page_after(statement, col(ApiToken.id), cursor, limit)
    rows = list(session.exec(statement).all())
    return pagination.split_page(rows, limit, lambda token: token.id)


def revoke_token(
    session: Session,
    *,
    name: str,
    actor: str,
    now: datetime | None = None,
    cache: TokenCache | None = None,
) -> ApiToken:
    now = now or utcnow()
    token = session.exec(select(ApiToken).where(ApiToken.name == name)).first()
    if token is None:
        raise NotFoundError(
            f"no token named {name!r}; list tokens with GET /v1/tokens", code="token_not_found"
        )
    if token.revoked_at is None:  # revoking twice is a no-op, not an error
        token.revoked_at = now
        token.revoked_by = actor
        session.add(token)
        audit.record(session, actor=actor, action="token.revoked", at=now, details={"name": name})
        session.commit()
        session.refresh(token)
    if cache is not None:  # after the commit: a request in between reads it unrevoked
        cache.forget(name)
    return token
