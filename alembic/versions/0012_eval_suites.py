"""eval suites, the evaluation runs of rollouts with each item's answers, and scores
imported from lm-evaluation-harness or OpenAI evals

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "eval_suite",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("description", sa.String(length=2000), nullable=False),
        sa.Column("items", JSON, nullable=False),
        sa.Column("item_count", sa.Integer(), nullable=False),
        sa.Column("tags", JSON, nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name", "version", name="uq_eval_suite_version"),
    )
    with op.batch_alter_table("eval_suite", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_eval_suite_name"), ["name"], unique=False)
    op.create_table(
        "eval_run",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rollout_id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("step_index", sa.Integer(), nullable=False),
        sa.Column("suite_id", sa.Integer(), nullable=False),
        sa.Column("suite", sa.String(length=80), nullable=False),
        sa.Column("canary_version", sa.String(length=63), nullable=False),
        sa.Column("stable_version", sa.String(length=63), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("settings", JSON, nullable=False),
        sa.Column("cost", JSON, nullable=False),
        sa.Column("result", JSON, nullable=False),
        sa.Column("error", sa.String(length=2000), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_owner", sa.String(length=128), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["model_id"], ["model.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["rollout_id"], ["rollout.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["suite_id"], ["eval_suite.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("eval_run", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_eval_run_rollout_id"), ["rollout_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_eval_run_model_id"), ["model_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_eval_run_suite_id"), ["suite_id"], unique=False)
    op.create_table(
        "eval_answer",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.String(length=100), nullable=False),
        sa.Column("side", sa.String(length=8), nullable=False),
        sa.Column("tag", sa.String(length=50), nullable=False),
        sa.Column("answer", sa.String(length=2000), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=True),
        sa.Column("detail", sa.String(length=500), nullable=False),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("reused_from", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["eval_run.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", "item_id", "side", name="uq_eval_answer_item"),
    )
    with op.batch_alter_table("eval_answer", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_eval_answer_run_id"), ["run_id"], unique=False)
    op.create_table(
        "eval_score",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("provenance", JSON, nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_by", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(["version_id"], ["model_version.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("version_id", "name", name="uq_eval_score_version_name"),
    )
    with op.batch_alter_table("eval_score", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_eval_score_version_id"), ["version_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("eval_score", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_eval_score_version_id"))
    op.drop_table("eval_score")
    with op.batch_alter_table("eval_answer", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_eval_answer_run_id"))
    op.drop_table("eval_answer")
    with op.batch_alter_table("eval_run", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_eval_run_suite_id"))
        batch_op.drop_index(batch_op.f("ix_eval_run_model_id"))
        batch_op.drop_index(batch_op.f("ix_eval_run_rollout_id"))
    op.drop_table("eval_run")
    with op.batch_alter_table("eval_suite", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_eval_suite_name"))
    op.drop_table("eval_suite")
