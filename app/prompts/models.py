"""The log of what admins did to prompts (release a lease, re-queue, retire, restore)."""

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.base import Base, utcnow


class PromptActionKind(StrEnum):
    release = "release"
    requeue = "requeue"
    retire = "retire"
    restore = "restore"


class PromptAction(Base):
    """One admin action on one prompt: who, when, what (a bulk action writes one row per prompt)."""

    __tablename__ = "prompt_actions"
    __table_args__ = (Index("ix_prompt_actions_project_id_id", "project_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(String(20))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """What else there is to say: the released holder, the bulk filter, the new target."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
