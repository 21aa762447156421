"""assignments.counted: an excluded or held labeler's labels stop counting toward overlap

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 16:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("counted", sa.Boolean(), server_default=sa.true(), nullable=False)
        )
    # Labels of labelers excluded before this revision stop counting, as they do from now on.
    op.execute(
        "UPDATE assignments SET counted = false WHERE EXISTS (SELECT 1 FROM exclusions e "
        "WHERE e.user_id = assignments.user_id "
        "AND (e.project_id = assignments.project_id OR e.project_id IS NULL))"
    )
    op.execute(
        "UPDATE prompts SET done_count = (SELECT count(*) FROM assignments a "
        "WHERE a.prompt_id = prompts.id AND a.status = 'done' AND a.counted) "
        "WHERE id IN (SELECT prompt_id FROM assignments WHERE NOT counted)"
    )


def downgrade() -> None:
    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.drop_column("counted")
