"""projects.questions: extra questions asked with each task

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29 19:30:00

The project's criteria (flags) are kept as they are: they act as a per-response multi-label
question named `flags` (see app/projects/questions.py), so existing data needs no change.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.add_column(sa.Column("questions", sa.JSON(), server_default="[]", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.drop_column("questions")
