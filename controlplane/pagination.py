"""Keyset pagination shared by every list endpoint: newest first, stable under inserts.

A cursor is opaque to clients; it encodes the id of the last row of the previous page.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa

from controlplane.errors import InvalidRequestError
from controlplane.models import MAX_ID

T = TypeVar("T")
_DIGITS = re.compile(r"[0-9]{1,10}")


def encode_cursor(row_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{row_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        kind, _, value = base64.urlsafe_b64decode(padded.encode()).decode().partition(":")
        # an id this server could have issued: digits only, in the id columns' range
        if kind != "id" or not _DIGITS.fullmatch(value) or not 1 <= int(value) <= MAX_ID:
            raise ValueError(kind)
        return int(value)
    except (ValueError, UnicodeDecodeError) as error:
        raise InvalidRequestError(
            "cursor is not one this server issued: pass the next_cursor of a previous page, "
            "or omit it for the first page",
            code="invalid_cursor",
        ) from error


def page_after(statement: Any, id_column: Any, cursor: str | None, limit: int) -> Any:
    """Restrict ``statement`` to one page, newest first; fetch one extra row to know if more."""
    if cursor is not None:
        statement = statement.where(id_column < decode_cursor(cursor))
    return statement.order_by(sa.desc(id_column)).limit(limit + 1)


def split_page(rows: list[T], limit: int, row_id: Callable[[T], Any]) -> tuple[list[T], str | None]:
    if len(rows) > limit:
        rows = rows[:limit]
        return rows, encode_cursor(row_id(rows[-1]))
    return rows, None
