"""workers.resources: what a live worker's machine offers a run (devices, memory, strategies)

Revision ID: c30res01
Revises: c29tmpl01
Create Date: 2026-12-04 09:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c30res01"
down_revision: str | None = "c29tmpl01"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("workers") as batch:
        batch.add_column(sa.Column("resources", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("workers") as batch:
        batch.drop_column("resources")
