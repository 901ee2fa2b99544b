"""JSON documents nested deeper than the limit (controlplane.jsonlimits.MAX_DEPTH), stored
before the limit was enforced, are cut at it: every read of such a version (and of its
model's version list) answered 500. Each container below the limit is replaced by a text
saying it was cut. One way: a downgrade keeps the cut documents.

The columns a client could fill with free-form JSON: a version's metadata and env, a
model's env, and the copies of them in audit details and webhook payloads. Rows are read as
text (a driver decoding a document nested ~1,000 levels deep can hit Python's recursion
limit) and only those with more brackets than the limit are decoded at all.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02
"""

import json
import sys
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import context, op
from controlplane.jsonlimits import MAX_DEPTH, cut_too_deep

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (
    ("model_version", "metadata"),
    ("model_version", "env"),
    ("model", "env"),
    ("audit_event", "details"),
    ("webhook_delivery", "payload"),
)
BATCH = 500


def upgrade() -> None:
    if context.is_offline_mode():  # an SQL script cannot read the rows it would rewrite
        return
    connection = op.get_bind()
    postgres = connection.dialect.name == "postgresql"
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20_000))  # json.loads of what was stored
    try:
        for table, column in COLUMNS:
            _cut(connection, table, column, postgres=postgres)
    finally:
        sys.setrecursionlimit(limit)


def _cut(connection: sa.Connection, table: str, column: str, *, postgres: bool) -> None:
    rows_of = sa.table(table, sa.column("id", sa.Integer()), sa.column(column, sa.Text()))
    document = rows_of.c[column]
    as_text = sa.cast(document, sa.Text()) if postgres else document
    value = sa.bindparam("value", type_=sa.Text())
    write = (
        sa.update(rows_of)
        .where(rows_of.c.id == sa.bindparam("row_id"))
        .values({column: sa.cast(value, postgresql.JSONB()) if postgres else value})
    )
    after = 0
    while True:
        rows = connection.execute(
            sa.select(rows_of.c.id, as_text)
            .where(rows_of.c.id > after, document.is_not(None))
            .order_by(rows_of.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        for row_id, text in rows:
            if not isinstance(text, str) or text.count("[") + text.count("{") <= MAX_DEPTH:
                continue
            cut_value, cut = cut_too_deep(json.loads(text))
            if cut:
                connection.execute(write, {"row_id": row_id, "value": json.dumps(cut_value)})
        after = rows[-1][0]


def downgrade() -> None:
    pass  # what was cut is gone; the cut documents are valid for 0014 too
