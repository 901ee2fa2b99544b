"""rollout: the windows of its passed analysis steps (the sequential judge's evidence
accumulates over the whole rollout); what the canary was last asked to run, how often drift
was undone, since when stable has been short of ready replicas; measurement: why a look
stopped counting as evidence

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("rollout", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("analysis_windows", JSON, nullable=False, server_default=sa.text("'[]'"))
        )
        batch_op.add_column(
            sa.Column("canary_replicas", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("drift_count", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("stable_short_since", sa.DateTime(timezone=True), nullable=True)
        )
    with op.batch_alter_table("measurement", schema=None) as batch_op:
        batch_op.add_column(sa.Column("discarded", sa.String(length=1000), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("measurement", schema=None) as batch_op:
        batch_op.drop_column("discarded")
    with op.batch_alter_table("rollout", schema=None) as batch_op:
        batch_op.drop_column("stable_short_since")
        batch_op.drop_column("drift_count")
        batch_op.drop_column("canary_replicas")
        batch_op.drop_column("analysis_windows")
