"""judgments, prompts.judge_margin, projects.judge_accepts and suggestions: AI feedback

Revision ID: c29judge01
Revises: b28imp01
Create Date: 2026-12-04 05:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c29judge01"
down_revision: str | None = "b28imp01"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "judgments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("prompt_id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("annotation_id", sa.Integer(), nullable=True),
        sa.Column("abstained", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("margin", sa.Double(), nullable=True),
        sa.Column("orders_agree", sa.Boolean(), nullable=True),
        sa.Column("scores", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["prompt_id"], ["prompts.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["run_id"], ["training_runs.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["annotation_id"], ["annotations.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", "prompt_id"),
    )
    op.create_index("ix_judgments_project_id_prompt_id", "judgments", ["project_id", "prompt_id"])
    with op.batch_alter_table("prompts") as batch:
        batch.add_column(sa.Column("judge_margin", sa.Double(), nullable=True))
    with op.batch_alter_table("projects") as batch:
        batch.add_column(sa.Column("judge_accepts", sa.Double(), nullable=True))
        batch.add_column(
            sa.Column("suggestions", sa.String(length=10), server_default="off", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("suggestions")
        batch.drop_column("judge_accepts")
    with op.batch_alter_table("prompts") as batch:
        batch.drop_column("judge_margin")
    op.drop_index("ix_judgments_project_id_prompt_id", table_name="judgments")
    op.drop_table("judgments")
