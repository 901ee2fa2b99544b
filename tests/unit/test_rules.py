"""Pure rules: roles, GPU budget checks, cursors, the database URL normalisation."""

from __future__ import annotations

import pytest

from controlplane import pagination
from controlplane.db import normalize_url
from controlplane.errors import InvalidRequestError
from controlplane.models import Role, ServingDefaults, VersionStatus
from controlplane.registry.models import serving_issues
from controlplane.registry.versions import parse_label_selector


@pytest.mark.parametrize(
    ("held", "required", "allowed"),
    [
        (Role.VIEWER, Role.VIEWER, True),
        (Role.VIEWER, Role.OPERATOR, False),
        (Role.OPERATOR, Role.VIEWER, True),
        (Role.OPERATOR, Role.ADMIN, False),
        (Role.ADMIN, Role.OPERATOR, True),
    ],
)
def test_roles_are_ordered(held: Role, required: Role, allowed: bool) -> None:
    assert held.allows(required) is allowed


def test_live_statuses() -> None:
    assert {s for s in VersionStatus if s.is_live} == {VersionStatus.CANARY, VersionStatus.STABLE}


@pytest.mark.parametrize(
    ("gpus", "replicas", "budget", "ok"),
    [(1, 2, 4, True), (1, 2, 2, True), (1, 2, 1, False), (0, 5, 0, True), (4, 2, None, True)],
)
def test_budget_must_hold_the_stable_version(
    gpus: int, replicas: int, budget: int | None, ok: bool
) -> None:
    serving = ServingDefaults(
        image="x", gpus_per_replica=gpus, replicas=replicas, gpu_budget=budget
    )
    assert (serving_issues(serving) == []) is ok


def test_cursor_round_trip_and_garbage() -> None:
    assert pagination.decode_cursor(pagination.encode_cursor(12345)) == 12345
    for garbage in ["", "!!", "aWQ6eA", pagination.encode_cursor(1)[:-2] + "zz"]:
        with pytest.raises(InvalidRequestError):
            pagination.decode_cursor(garbage)


def test_split_page_reports_a_cursor_only_when_more_rows_exist() -> None:
    rows = [5, 4, 3]
    assert pagination.split_page(rows, 3, lambda r: r) == ([5, 4, 3], None)
    items, cursor = pagination.split_page(rows, 2, lambda r: r)
    assert items == [5, 4]
    assert cursor is not None
    assert pagination.decode_cursor(cursor) == 4


def test_label_selector_parsing() -> None:
    assert parse_label_selector("team=nlp, stage==prod") == {"team": "nlp", "stage": "prod"}
    with pytest.raises(InvalidRequestError):
        parse_label_selector("team")


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("postgresql://u@h/db", "postgresql+psycopg"),
        ("postgres://u@h/db", "postgresql+psycopg"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg"),
        ("sqlite:///x.db", "sqlite"),
    ],
)
def test_database_urls_get_our_driver(url: str, driver: str) -> None:
    assert normalize_url(url).drivername == driver
