"""The token cache: what it keeps, for how long, and that a revocation empties it."""

from __future__ import annotations

from datetime import UTC, datetime

from controlplane.auth import KnownToken, TokenCache
from controlplane.models import Role


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def token(name: str = "ci", expires_at: datetime | None = None) -> KnownToken:
    return KnownToken(name=name, role=Role.OPERATOR, expires_at=expires_at)


def test_a_token_is_kept_for_its_time_to_live_only() -> None:
    clock = Clock()
    cache = TokenCache(5, clock=clock)
    cache.put("h1", token(), seen=cache.revocations)
    clock.now += 4.9
    assert cache.get("h1") == token()
    clock.now += 0.1
    assert cache.get("h1") is None


def test_forgetting_a_name_drops_its_token_and_keeps_the_others() -> None:
    cache = TokenCache(5, clock=Clock())
    cache.put("h1", token("leaky"), seen=cache.revocations)
    cache.put("h2", token("other"), seen=cache.revocations)
    cache.forget("leaky")
    assert cache.get("h1") is None
    assert cache.get("h2") == token("other")


def test_a_lookup_that_began_before_a_revocation_does_not_put_the_token_back() -> None:
    cache = TokenCache(5, clock=Clock())
    seen = cache.revocations  # a request reads the token from the database ...
    cache.forget("leaky")  # ... while an admin revokes it
    cache.put("h1", token("leaky"), seen=seen)
    assert cache.get("h1") is None


def test_a_time_to_live_of_zero_keeps_nothing() -> None:
    cache = TokenCache(0, clock=Clock())
    cache.put("h1", token(), seen=cache.revocations)
    assert cache.get("h1") is None


def test_the_oldest_tokens_go_first_past_the_size_limit() -> None:
    cache = TokenCache(5, max_entries=2, clock=Clock())
    for name in ("a", "b", "c"):
        cache.put(f"h-{name}", token(name), seen=cache.revocations)
    assert cache.get("h-a") is None
    assert cache.get("h-b") == token("b")
    assert cache.get("h-c") == token("c")


def test_the_expiry_of_a_kept_token_is_kept_with_it() -> None:
    expires = datetime(2030, 1, 1, tzinfo=UTC)
    cache = TokenCache(5, clock=Clock())
    cache.put("h1", token(expires_at=expires), seen=cache.revocations)
    kept = cache.get("h1")
    assert kept is not None
    assert kept.expires_at == expires
