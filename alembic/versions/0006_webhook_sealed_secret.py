"""webhook: room for a sealed signing secret (AES-GCM, see controlplane/sealing.py)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("webhook", schema=None) as batch_op:
        batch_op.alter_column(
            "secret", existing_type=sa.String(length=128), type_=sa.String(length=512)
        )


def downgrade() -> None:
    sealed = (
        op.get_bind()
        .execute(sa.text("SELECT count(*) FROM webhook WHERE length(secret) > 128"))
        .scalar_one()
    )
    if sealed:
        raise RuntimeError(
            f"{sealed} webhook secret(s) are sealed and do not fit the old column: delete "
            "those webhooks (and create them again after the downgrade) first"
        )
    with op.batch_alter_table("webhook", schema=None) as batch_op:
        batch_op.alter_column(
            "secret", existing_type=sa.String(length=512), type_=sa.String(length=128)
        )
