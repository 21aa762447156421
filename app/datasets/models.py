"""Dataset snapshots: immutable, content-hashed files with the parameters that made them."""

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.base import Base, utcnow


class Snapshot(Base):
    __tablename__ = "snapshots"
    __table_args__ = (
        UniqueConstraint("project_id", "kind", "version"),
        Index("ix_snapshots_project_id_kind_id", "project_id", "kind", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))
    """sft | rankings | pairs | ratings | prompts"""
    version: Mapped[int]
    """1, 2, … per project and kind."""
    previous_id: Mapped[int | None] = mapped_column(ForeignKey("snapshots.id"))
    """The snapshot of the same project and kind made just before this one (lineage)."""
    params: Mapped[dict[str, Any]]
    """The parameters that made it (kind, method, split, …), canonical form."""
    content_hash: Mapped[str] = mapped_column(String(64))
    """sha256 over the parameters and the JSONL content of both splits."""
    train_rows: Mapped[int]
    test_rows: Mapped[int]
    directory: Mapped[str] = mapped_column(String(200))
    """Folder under `artifacts_dir`, e.g. snapshots/12."""
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
