"""one name per concept: training_runs.created_by_id, models.snapshot_content_hash

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29 16:50:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("training_runs", schema=None) as batch_op:
        batch_op.drop_constraint("fk_training_runs_created_by_users", type_="foreignkey")
        batch_op.alter_column("created_by", new_column_name="created_by_id")
    with op.batch_alter_table("training_runs", schema=None) as batch_op:  # after the rename
        batch_op.create_foreign_key(
            op.f("fk_training_runs_created_by_id_users"),
            "users",
            ["created_by_id"],
            ["id"],
            ondelete="SET NULL",
        )
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.alter_column("snapshot_sha256", new_column_name="snapshot_content_hash")


def downgrade() -> None:
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.alter_column("snapshot_content_hash", new_column_name="snapshot_sha256")
    with op.batch_alter_table("training_runs", schema=None) as batch_op:
        batch_op.drop_constraint("fk_training_runs_created_by_id_users", type_="foreignkey")
        batch_op.alter_column("created_by_id", new_column_name="created_by")
    with op.batch_alter_table("training_runs", schema=None) as batch_op:  # after the rename
        batch_op.create_foreign_key(
            op.f("fk_training_runs_created_by_users"),
            "users",
            ["created_by"],
            ["id"],
            ondelete="SET NULL",
        )
