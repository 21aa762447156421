"""projects.judge_fills and assignments.slots: how much of a prompt's overlap a label fills

Revision ID: c29fills01
Revises: c29judge01
Create Date: 2026-12-04 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c29fills01"
down_revision: str | None = "c29judge01"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.add_column(sa.Column("judge_fills", sa.Integer(), server_default="1", nullable=False))
    with op.batch_alter_table("assignments") as batch:
        batch.add_column(sa.Column("slots", sa.Integer(), server_default="1", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("assignments") as batch:
        batch.drop_column("slots")
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("judge_fills")
