"""Sealing secrets at rest: AES-256-GCM under derived keys, with key ids for rotation."""

from __future__ import annotations

import pytest

from controlplane.config import SealingSettings
from controlplane.sealing import PREFIX, Sealer, SealingError

OLD = "o" * 40
NEW = "n" * 40
SECRET = "whsec_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


def test_a_sealed_value_hides_the_secret_and_opens_again() -> None:
    sealer = Sealer.from_passphrases([NEW])
    sealed = sealer.seal(SECRET, purpose="webhook-secret")
    assert sealed.startswith(PREFIX)
    assert SECRET not in sealed
    assert "whsec" not in sealed
    assert sealer.unseal(sealed, purpose="webhook-secret") == SECRET
    assert sealer.seal(SECRET, purpose="webhook-secret") != sealed  # a fresh nonce each time
    assert len(sealed) < 200  # fits the column (512) with room to spare


def test_another_purpose_or_an_altered_value_does_not_open() -> None:
    sealer = Sealer.from_passphrases([NEW])
    sealed = sealer.seal(SECRET, purpose="webhook-secret")
    with pytest.raises(SealingError, match="does not authenticate"):
        sealer.unseal(sealed, purpose="something-else")
    flipped = sealed[:-5] + ("A" if sealed[-5] != "A" else "B") + sealed[-4:]
    with pytest.raises(SealingError, match="altered or truncated"):
        sealer.unseal(flipped, purpose="webhook-secret")
    with pytest.raises(SealingError, match="altered or truncated"):
        sealer.unseal(sealed[:40], purpose="webhook-secret")


def test_rotation_new_key_first_old_keys_still_open() -> None:
    old = Sealer.from_passphrases([OLD])
    sealed_old = old.seal(SECRET, purpose="p")
    rotated = Sealer.from_passphrases([NEW, OLD])
    assert rotated.unseal(sealed_old, purpose="p") == SECRET
    assert not rotated.is_current(sealed_old)
    sealed_new = rotated.seal(SECRET, purpose="p")
    assert rotated.is_current(sealed_new)
    assert Sealer.from_passphrases([NEW]).unseal(sealed_new, purpose="p") == SECRET
    with pytest.raises(SealingError, match=r"sealed with key [0-9a-f]{12}, which is not among"):
        Sealer.from_passphrases([NEW]).unseal(sealed_old, purpose="p")
    with pytest.raises(SealingError, match=r"\(none is set\)"):
        Sealer().unseal(sealed_old, purpose="p")


def test_values_stored_before_a_key_was_set_stay_readable() -> None:
    assert Sealer().seal(SECRET, purpose="p") == SECRET
    assert Sealer().is_current(SECRET)
    keyed = Sealer.from_passphrases([NEW])
    assert keyed.unseal(SECRET, purpose="p") == SECRET
    assert not keyed.is_current(SECRET)


def test_keys_are_checked_when_the_settings_are_read() -> None:
    with pytest.raises(ValueError, match="key 2 has 5 characters; each key needs at least 32"):
        SealingSettings(secret_keys=f"{NEW},short")
    with pytest.raises(ValueError, match="CONTROLPLANE_SECRET_KEYS is empty"):
        SealingSettings(secret_keys=" , ")
    settings = SealingSettings(secret_keys=f" {NEW} , {OLD} ")
    assert settings.secret_key_list == [NEW, OLD]
    assert NEW not in repr(settings)


def test_a_refused_setting_does_not_echo_the_other_settings() -> None:
    with pytest.raises(ValueError, match="key 1 has 5 characters") as refused:
        SealingSettings(database_url="postgresql://cp:db-password-123@db/cp", secret_keys="short")
    assert "db-password-123" not in str(refused.value)
    assert "short" not in str(refused.value)
