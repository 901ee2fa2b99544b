"""audit_event: credentials already written into audit details are scrubbed (a model's env
was recorded whole by model.created and model.updated); the audit trail is written redacted
from now on (controlplane.redaction). One way: a downgrade keeps the scrubbed details.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import context, op
from controlplane.redaction import redact_json

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
audit_event = sa.table("audit_event", sa.column("id", sa.Integer()), sa.column("details", JSON))
BATCH = 500


def upgrade() -> None:
    if context.is_offline_mode():  # an SQL script cannot read the rows it would rewrite
        return
    connection = op.get_bind()
    after = 0
    while True:
        rows = connection.execute(
            sa.select(audit_event.c.id, audit_event.c.details)
            .where(audit_event.c.id > after)
            .order_by(audit_event.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        for event_id, details in rows:
            scrubbed = redact_json(details)
            if scrubbed != details:
                connection.execute(
                    sa.update(audit_event)
                    .where(audit_event.c.id == event_id)
                    .values(details=scrubbed)
                )
        after = rows[-1][0]


def downgrade() -> None:
    pass  # what was scrubbed is gone; the redacted details are valid for 0012 too
