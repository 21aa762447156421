"""generation runs: generated responses carry their model and sample index

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 16:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("responses", schema=None) as batch_op:
        batch_op.add_column(sa.Column("model_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("sample_index", sa.Integer(), nullable=True))
        batch_op.create_unique_constraint(
            batch_op.f("uq_responses_prompt_id_model_id_sample_index"),
            ["prompt_id", "model_id", "sample_index"],
        )
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("order", sa.String(length=20), server_default="id", nullable=False)
        )
    with op.batch_alter_table("prompts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("priority", sa.Double(), nullable=True))
    with op.batch_alter_table("training_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("project_id", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("model_ids", sa.JSON(), nullable=False, server_default=sa.text("'[]'"))
        )
        batch_op.alter_column("snapshot_id", existing_type=sa.Integer(), nullable=True)
        batch_op.create_foreign_key(
            batch_op.f("fk_training_runs_project_id_projects"),
            "projects",
            ["project_id"],
            ["id"],
            ondelete="SET NULL",
        )
    with op.batch_alter_table("training_runs", schema=None) as batch_op:
        batch_op.alter_column("model_ids", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("prompts", schema=None) as batch_op:
        batch_op.drop_column("priority")
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.drop_column("order")
    with op.batch_alter_table("training_runs", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_training_runs_project_id_projects"), type_="foreignkey"
        )
        batch_op.alter_column("snapshot_id", existing_type=sa.Integer(), nullable=False)
        batch_op.drop_column("model_ids")
        batch_op.drop_column("project_id")
    with op.batch_alter_table("responses", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("uq_responses_prompt_id_model_id_sample_index"), type_="unique"
        )
        batch_op.drop_column("sample_index")
        batch_op.drop_column("model_id")
