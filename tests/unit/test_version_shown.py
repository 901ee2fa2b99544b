"""The registry builds a version's answer by hand (controlplane.registry.versions.shown) and
sends it without pydantic: it must be byte for byte what VersionPublic, the documented
model (and what the API sent before), gives for the same stored row, credentials
redacted the same way."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic_core import to_json

from controlplane.models import ArtifactKind, VersionPublic, VersionStatus
from controlplane.registry.versions import shown

HF = "hf_" + "a1B2" * 9
NAMES = st.sampled_from(
    ["HF_TOKEN", "OPENAI_API_KEY", "DB_PASSWORD", "MAX_TOKENS", "LOG_LEVEL", "sig", "url", "x"]
)
TEXT = st.one_of(
    st.sampled_from(
        [
            "",
            HF,
            f"token {HF} here",
            "postgres://app:hunter2@db/app",
            "https://h/x?sig=abc&b=1",
            "sk-" + "x" * 40,
            "plain",
            "Bearer abc.def.ghi",
            "ü ☃ \u2028",
        ]
    ),
    st.text(max_size=12),
)
SECRET_REF = st.fixed_dictionaries(
    {"secret": st.sampled_from(["hf-token", "db"]), "key": st.sampled_from(["token", "pw"])},
    optional={"optional": st.booleans()},
)
ENV = st.none() | st.dictionaries(NAMES, TEXT | SECRET_REF, max_size=5)
ARGS = st.none() | st.lists(
    st.sampled_from(["--api-key", "--hf-token=abc", "--port", "8000", "TOKEN=x", HF, "-"]) | TEXT,
    max_size=6,
)
SCALARS = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
)
JSON = st.recursive(
    SCALARS | TEXT,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(NAMES | st.just("env"), inner, max_size=3)
    ),
    max_leaves=12,
)
TIMES = st.datetimes(  # hypothesis takes naive bounds and adds the zone
    min_value=datetime(2000, 1, 1),  # noqa: DTZ001
    max_value=datetime(2100, 1, 1),  # noqa: DTZ001
    timezones=st.just(UTC),
)


@st.composite
def rows(draw: st.DrawFn) -> dict[str, Any]:
    """A stored row of model_version as the database gives it back (by column)."""
    return {
        "id": draw(st.integers(1, 2**31 - 1)),
        "model_id": 1,
        "version": draw(st.sampled_from(["v1", "v2-rc.1"])),
        "artifact_uri": draw(TEXT | st.just("s3://u:pw@bucket/v1")),
        "artifact_kind": draw(st.sampled_from(list(ArtifactKind))),
        "base_model": draw(st.none() | TEXT),
        "lora_rank": draw(st.none() | st.integers(1, 1024)),
        "image": draw(st.none() | st.just("vllm/vllm-openai:v0.11.0")),
        "args": draw(ARGS),
        "env": draw(ENV),
        "description": draw(TEXT),
        "labels": draw(st.dictionaries(st.sampled_from(["team", "a.b/c"]), st.text(max_size=5))),
        "metadata": draw(st.dictionaries(st.text(max_size=6) | NAMES, JSON, max_size=4)),
        "status": draw(st.sampled_from(list(VersionStatus))),
        "status_changed_at": draw(TIMES),
        "created_at": draw(TIMES),
        "created_by": draw(st.sampled_from(["ci", "alice@example.com"])),
    }


def documented(row: dict[str, Any], model: str) -> bytes:
    """The answer as the documented model writes it (as FastAPI did, by alias)."""
    fields = {key: value for key, value in row.items() if key not in ("id", "model_id")}
    public = VersionPublic.model_validate({**fields, "model": model})
    return public.model_dump_json(by_alias=True).encode()


@settings(max_examples=400, deadline=None)
@given(rows())
def test_a_version_is_shown_as_the_documented_model_shows_it(row: dict[str, Any]) -> None:
    assert to_json(shown(row, "chat")) == documented(row, "chat")


def test_credentials_are_redacted_in_every_field_that_can_hold_one() -> None:
    row = {
        "id": 1,
        "model_id": 1,
        "version": "v1",
        "artifact_uri": "s3://user:hunter2@bucket/v1",
        "artifact_kind": "weights",
        "base_model": None,
        "lora_rank": None,
        "image": None,
        "args": ["--api-key", "k-123", f"--note={HF}"],
        "env": {"HF_TOKEN": "abc", "REF": {"secret": "hf-token", "key": "token"}},
        "description": "",
        "labels": {},
        "metadata": {"notes": f"uses {HF}", "password": "p"},
        "status": "registered",
        "status_changed_at": datetime(2026, 1, 1, tzinfo=UTC),
        "created_at": datetime(2026, 1, 1, tzinfo=UTC),
        "created_by": "ci",
    }
    text = to_json(shown(row, "chat")).decode()
    for secret in ("hunter2", "k-123", HF, '"abc"', '"p"'):
        assert secret not in text
    assert shown(row, "chat")["env"]["REF"] == {
        "secret": "hf-token",
        "key": "token",
        "optional": False,
    }
