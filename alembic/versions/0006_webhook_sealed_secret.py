"""webhook: room for a sealed signing secret and URL (AES-GCM, see controlplane/sealing.py)

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
        batch_op.alter_column(
            "url", existing_type=sa.String(length=2048), type_=sa.String(length=4096)
        )


def downgrade() -> None:
    too_long = sa.text(
        "SELECT count(*) FROM webhook WHERE length(secret) > 128 OR length(url) > 2048"
    )
    sealed = op.get_bind().execute(too_long).scalar_one()
    if sealed:
        raise RuntimeError(
            f"{sealed} webhook(s) have a sealed secret or URL that does not fit the old "
            "columns: delete those webhooks (and create them again after the downgrade) first"
        )
    with op.batch_alter_table("webhook", schema=None) as batch_op:
        batch_op.alter_column(
            "url", existing_type=sa.String(length=4096), type_=sa.String(length=2048)
        )
        batch_op.alter_column(
            "secret", existing_type=sa.String(length=512), type_=sa.String(length=128)
        )
