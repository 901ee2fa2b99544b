"""rollouts: the rollout state machine, its events and measurements

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rollout",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(length=63), nullable=False),
        sa.Column("live_model_id", sa.Integer(), nullable=True),
        sa.Column("canary_version", sa.String(length=63), nullable=False),
        sa.Column("stable_version", sa.String(length=63), nullable=True),
        sa.Column("phase", sa.String(length=32), nullable=False),
        sa.Column("strategy", JSON, nullable=False),
        sa.Column("step_index", sa.Integer(), nullable=False),
        sa.Column("step_started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("routed_weight", sa.Integer(), nullable=False),
        sa.Column("stable_replicas", sa.Integer(), nullable=False),
        sa.Column("problem_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome_on_rollback", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.String(length=4000), nullable=False),
        sa.Column("command", sa.String(length=32), nullable=True),
        sa.Column("command_by", sa.String(length=128), nullable=True),
        sa.Column("command_reason", sa.String(length=1000), nullable=False),
        sa.Column("next_check_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_owner", sa.String(length=128), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["model_id"], ["model.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("live_model_id"),
    )
    with op.batch_alter_table("rollout", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_rollout_model"), ["model"], unique=False)
        batch_op.create_index(batch_op.f("ix_rollout_model_id"), ["model_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_rollout_next_check_at"), ["next_check_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_rollout_phase"), ["phase"], unique=False)

    op.create_table(
        "measurement",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rollout_id", sa.Integer(), nullable=False),
        sa.Column("step_index", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("weight", sa.Integer(), nullable=False),
        sa.Column("verdict", sa.String(length=16), nullable=False),
        sa.Column("summary", sa.String(length=4000), nullable=False),
        sa.Column("metrics", JSON, nullable=False),
        sa.ForeignKeyConstraint(["rollout_id"], ["rollout.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("measurement", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_measurement_rollout_id"), ["rollout_id"], unique=False)

    op.create_table(
        "rollout_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rollout_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("phase", sa.String(length=32), nullable=False),
        sa.Column("step_index", sa.Integer(), nullable=False),
        sa.Column("weight", sa.Integer(), nullable=False),
        sa.Column("message", sa.String(length=4000), nullable=False),
        sa.Column("evidence", JSON, nullable=False),
        sa.ForeignKeyConstraint(["rollout_id"], ["rollout.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("rollout_event", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_rollout_event_rollout_id"), ["rollout_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("rollout_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rollout_event_rollout_id"))

    op.drop_table("rollout_event")
    with op.batch_alter_table("measurement", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_measurement_rollout_id"))

    op.drop_table("measurement")
    with op.batch_alter_table("rollout", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rollout_phase"))
        batch_op.drop_index(batch_op.f("ix_rollout_next_check_at"))
        batch_op.drop_index(batch_op.f("ix_rollout_model_id"))
        batch_op.drop_index(batch_op.f("ix_rollout_model"))

    op.drop_table("rollout")
