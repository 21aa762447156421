"""projects.judge_template: the question a pairwise judge is asked, the project's own

Revision ID: c29tmpl01
Revises: c29fills01
Create Date: 2026-12-04 09:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c29tmpl01"
down_revision: str | None = "c29fills01"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.add_column(sa.Column("judge_template", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("judge_template")
