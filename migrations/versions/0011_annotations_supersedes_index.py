"""annotations: a partial index on supersedes_id (finding the live annotations)

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29 19:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WHERE = sa.text("supersedes_id IS NOT NULL")


def upgrade() -> None:
    op.create_index(
        "ix_annotations_supersedes_id",
        "annotations",
        ["supersedes_id"],
        postgresql_where=WHERE,
        sqlite_where=WHERE,
    )


def downgrade() -> None:
    op.drop_index("ix_annotations_supersedes_id", table_name="annotations")
