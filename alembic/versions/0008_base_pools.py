"""base pools (pods of a base model with LoRA enabled, shared by adapter models); a model's
base pool; an adapter version's LoRA rank

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "base_pool",
        sa.Column("namespace", sa.String(length=63), nullable=False),
        sa.Column("base_model", sa.String(length=512), nullable=False),
        sa.Column("deployment", sa.String(length=253), nullable=True),
        sa.Column("inference_pool", sa.String(length=253), nullable=True),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.Column("max_loras", sa.Integer(), nullable=False),
        sa.Column("max_lora_rank", sa.Integer(), nullable=False),
        sa.Column("description", sa.String(length=2000), nullable=False),
        sa.Column("labels", JSON, nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("base_pool", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_base_pool_name"), ["name"], unique=True)
    with op.batch_alter_table("model", schema=None) as batch_op:
        batch_op.add_column(sa.Column("base_pool", sa.String(length=63), nullable=True))
    with op.batch_alter_table("model_version", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lora_rank", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("model_version", schema=None) as batch_op:
        batch_op.drop_column("lora_rank")
    with op.batch_alter_table("model", schema=None) as batch_op:
        batch_op.drop_column("base_pool")
    with op.batch_alter_table("base_pool", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_base_pool_name"))
    op.drop_table("base_pool")
