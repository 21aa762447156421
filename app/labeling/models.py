"""Assignments (leases of a prompt to one labeler) and the append-only annotations."""

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, text, true
from sqlalchemy.orm import Mapped, mapped_column

from app.base import Base, utcnow


class AssignmentStatus(StrEnum):
    leased = "leased"
    done = "done"
    skipped = "skipped"


class AnnotationSource(StrEnum):
    labeler = "labeler"
    imported = "import"
    ai = "ai"
    """A judge's label (a judge run's verdict, stored by the judge annotator `judge:<model>`)."""


class Assignment(Base):
    __tablename__ = "assignments"
    __table_args__ = (
        UniqueConstraint("prompt_id", "user_id"),
        Index("ix_assignments_user_id_status", "user_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(10), default=AssignmentStatus.leased)
    response_ids: Mapped[list[Any]] = mapped_column(default=list)
    """The responses shown, in this assignment's random order."""
    expires_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None]
    skip_reason: Mapped[str | None] = mapped_column(Text)
    counted: Mapped[bool] = mapped_column(server_default=true())
    """False while the labeler is excluded from the project or held (`labeling.exclusions`):
    the label then counts toward no overlap, done count or progress."""
    slots: Mapped[int] = mapped_column(server_default="1")
    """How many of the prompt's overlap slots it fills while it counts: 1, or a judge's
    `Project.judge_fills` (`exclusions.settle` keeps it so)."""


class Annotation(Base):
    __tablename__ = "annotations"
    __table_args__ = (
        UniqueConstraint("user_id", "idempotency_key"),
        Index("ix_annotations_project_id_id", "project_id", "id"),
        Index("ix_annotations_prompt_id", "prompt_id"),
        # Which annotations are live: NOT EXISTS a newer one superseding it. Only corrections
        # are indexed, so storing a label costs nothing more.
        Index(
            "ix_annotations_supersedes_id",
            "supersedes_id",
            postgresql_where=text("supersedes_id IS NOT NULL"),
            sqlite_where=text("supersedes_id IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id", ondelete="CASCADE"))
    assignment_id: Mapped[int | None] = mapped_column(
        ForeignKey("assignments.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    """Null for annotations that came with an import (e.g. HH-RLHF's chosen/rejected)."""
    kind: Mapped[str] = mapped_column(String(20))
    """ranking | rating | demonstration (the project's kind)."""
    payload: Mapped[dict[str, Any]]
    """{"ranking": [ids best→worst]} | {"scores": {id: value}} | {"demonstration": …}, plus
    "answers" ({question name: {response id: value} | value}) when the project asks questions."""
    flags: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """{response_id: [criterion, …]}"""
    source: Mapped[str] = mapped_column(String(10), default=AnnotationSource.labeler)
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    duration_ms: Mapped[int | None]
    supersedes_id: Mapped[int | None] = mapped_column(ForeignKey("annotations.id"))
    """A correction is a new annotation pointing at the one it replaces; nothing is updated."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LabelerHold(Base):
    """A labeler who stopped receiving tasks in a project (low gold accuracy) until released."""

    __tablename__ = "labeler_holds"
    __table_args__ = (Index("ix_labeler_holds_project_id_user_id", "project_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    reason: Mapped[str] = mapped_column(Text)
    """What the labeler's home page shows, e.g. "gold accuracy 0.52 on 6 gold items"."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    released_at: Mapped[datetime | None]
    """Set when an admin reinstates the labeler; later gold answers are judged afresh."""
    released_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class Exclusion(Base):
    """A labeler an admin took out of a project (or of every project): no tasks, no counted
    labels, no part in any aggregate. Their annotations stay in the database."""

    __tablename__ = "exclusions"
    __table_args__ = (Index("ix_exclusions_user_id_project_id", "user_id", "project_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    project_id: Mapped[int | None] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    """The project it applies to; NULL excludes the labeler from every project."""
    reason: Mapped[str] = mapped_column(Text, default="")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Judgment(Base):
    """What a judge run said about one prompt: the verdict behind its annotation (None when it
    abstained), the margin between its best and second response, and whether its two orders
    agreed (pairwise judges). One row per (run, prompt): a resumed run stores nothing twice."""

    __tablename__ = "judgments"
    __table_args__ = (
        UniqueConstraint("run_id", "prompt_id"),
        Index("ix_judgments_project_id_prompt_id", "project_id", "prompt_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id", ondelete="CASCADE"))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("training_runs.id", ondelete="SET NULL"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    """The judge annotator (`judge:<model>`, users.source "ai")."""
    annotation_id: Mapped[int | None] = mapped_column(
        ForeignKey("annotations.id", ondelete="SET NULL")
    )
    """The label it gave; None when it abstained."""
    abstained: Mapped[bool] = mapped_column(default=False)
    reason: Mapped[str | None] = mapped_column(Text)
    margin: Mapped[float | None]
    """How sure the judge was (`labeling.judged.certainty`): best minus second reward, or a
    pairwise judge's wins margin weighted by its preference; None when abstained."""
    orders_agree: Mapped[bool | None]
    """Pairwise judges: whether both orders of every pair agreed; None for reward models."""
    scores: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """{response id: score} as the judge gave them."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
