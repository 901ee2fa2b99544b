from __future__ import annotations

import pytest
from pydantic import ValidationError

from controlplane.config import DEV_ADMIN_TOKEN, Settings


def test_refuses_to_start_without_admin_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONTROLPLANE_ADMIN_TOKEN", raising=False)
    monkeypatch.delenv("CONTROLPLANE_DEV_MODE", raising=False)
    with pytest.raises(ValidationError, match="CONTROLPLANE_ADMIN_TOKEN is not set"):
        Settings()


def test_dev_mode_uses_a_well_known_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONTROLPLANE_ADMIN_TOKEN", raising=False)
    monkeypatch.setenv("CONTROLPLANE_DEV_MODE", "true")
    assert Settings().effective_admin_token == DEV_ADMIN_TOKEN


def test_reads_environment_with_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTROLPLANE_ADMIN_TOKEN", "s3cret")
    monkeypatch.setenv("CONTROLPLANE_DATABASE_URL", "postgresql://u@h/db")
    settings = Settings()
    assert settings.effective_admin_token == "s3cret"
    assert settings.database_url == "postgresql://u@h/db"
    assert not settings.is_sqlite


def test_admin_token_never_appears_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTROLPLANE_ADMIN_TOKEN", "super-secret-value")
    settings = Settings()
    assert "super-secret-value" not in repr(settings)
    assert "super-secret-value" not in str(settings.model_dump())


def test_blank_admin_token_is_refused() -> None:
    with pytest.raises(ValidationError, match="empty"):
        Settings(admin_token="  ")
