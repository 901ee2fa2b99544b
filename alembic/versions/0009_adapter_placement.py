"""which pod of a base pool holds which adapters: the keeper's last reading on the pool, and
an adapter rollout's on the rollout

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("base_pool", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pods", JSON, nullable=False, server_default=sa.text("'[]'")))
        batch_op.add_column(sa.Column("observed_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("rollout", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("placement", JSON, nullable=False, server_default=sa.text("'{}'"))
        )


def downgrade() -> None:
    with op.batch_alter_table("rollout", schema=None) as batch_op:
        batch_op.drop_column("placement")
    with op.batch_alter_table("base_pool", schema=None) as batch_op:
        batch_op.drop_column("observed_at")
        batch_op.drop_column("pods")
