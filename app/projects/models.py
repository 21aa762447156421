"""Projects, their prompts and the candidate responses to label."""

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.base import Base, utcnow
from app.projects.kinds import RatingScale


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    instructions: Mapped[str] = mapped_column(Text, default="")
    """Markdown shown to labelers above every task."""
    k: Mapped[int] = mapped_column(default=4)
    """How many responses of a prompt one assignment shows."""
    overlap: Mapped[int] = mapped_column(default=1)
    """How many labelers label each prompt."""
    lease_seconds: Mapped[int] = mapped_column(default=1800)
    rating_scale: Mapped[str] = mapped_column(String(10), default=RatingScale.thumbs)
    criteria: Mapped[list[Any]] = mapped_column(default=list)
    """Names of the per-response flags labelers can set (hallucination, unsafe, …)."""
    strength_scale: Mapped[list[Any]] = mapped_column(default=list, server_default="[]")
    """K=2 ranking projects: [{"label", "margin"}, …] strongest first, asked with every choice
    (see app/projects/strength.py); empty: no strength is asked."""
    questions: Mapped[list[Any]] = mapped_column(default=list, server_default="[]")
    """Extra questions asked with each task (definitions: app/projects/questions.py)."""
    is_archived: Mapped[bool] = mapped_column(default=False)
    gold_rate: Mapped[float] = mapped_column(default=0.1, server_default="0.1")
    """Fraction of a labeler's tasks that are gold items they have not seen yet."""
    auto_hold: Mapped[bool] = mapped_column(default=False, server_default=false())
    """Stop serving tasks to a labeler whose gold accuracy is too low (until reinstated)."""
    hold_after_gold: Mapped[int] = mapped_column(default=5, server_default="5")
    """Gold items a labeler must have answered before auto_hold may hold them."""
    order: Mapped[str] = mapped_column(String(20), default="id", server_default="id")
    """Which prompts labelers get first: "id" (import order), "uncertainty" (those whose
    candidates a reward model separates least, see Prompt.priority) or "judge-uncertainty"
    (those a judge was least sure of, see Prompt.judge_margin)."""
    judge_accepts: Mapped[float | None]
    """A judge label whose margin is at least this counts toward overlap; None: judge labels
    never replace a human's (the default)."""
    judge_template: Mapped[str | None] = mapped_column(Text)
    """The question a pairwise judge of the project is asked ({prompt}, {a}, {b}); None: the
    trainer's default. A judge run's own `judge_template` overrides it."""
    judge_fills: Mapped[int] = mapped_column(default=1, server_default="1")
    """How many of a prompt's overlap slots a judge label the project accepts fills
    (`Assignment.slots`): 1 stands for one labeler; the overlap or more completes the prompt,
    so no person is asked."""
    suggestions: Mapped[str] = mapped_column(String(10), default="off", server_default="off")
    """off | shown | prefilled: whether the labeling page shows a judge's (or an imported)
    suggestion, and whether it starts the answer from it."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Prompt(Base):
    __tablename__ = "prompts"
    __table_args__ = (
        UniqueConstraint("project_id", "external_id"),
        Index("ix_prompts_project_id_id", "project_id", "id"),
        Index("ix_prompts_project_id_is_gold", "project_id", "is_gold"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(200))
    """The id given at import, or a content hash: importing it again adds nothing."""
    messages: Mapped[list[Any]]
    """The conversation so far, [{"role": "user"|"assistant"|"system", "content": str}, …]."""
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)
    done_count: Mapped[int] = mapped_column(default=0)
    """Finished labels (assignments done); compared with the project's overlap."""
    priority: Mapped[float | None]
    """With order=uncertainty: the smallest reward gap between two of its candidates (smaller
    is served first); None until a reward model scored at least two of them."""
    judge_margin: Mapped[float | None]
    """With order=judge-uncertainty: the latest judge's margin on it (smaller is served first;
    an abstention or orders that disagree count as 0); None until a judge saw it."""
    is_gold: Mapped[bool] = mapped_column(default=False)
    """Gold items carry a known answer (`gold`) used to measure labeler quality."""
    gold: Mapped[dict[str, Any] | None]
    extra_labels: Mapped[int] = mapped_column(default=0, server_default="0")
    """Labels wanted beyond the project's overlap (an admin re-queued the prompt)."""
    retired_at: Mapped[datetime | None]
    """Set when an admin retired the prompt: no longer served; its labels stay."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    responses: Mapped[list["Response"]] = relationship(
        order_by="Response.position", lazy="raise", viewonly=True
    )


class Response(Base):
    __tablename__ = "responses"
    __table_args__ = (
        Index("ix_responses_prompt_id_position", "prompt_id", "position"),
        UniqueConstraint("prompt_id", "model_id", "sample_index"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id", ondelete="CASCADE"))
    position: Mapped[int]
    """Order in the imported file (the order shown to a labeler is per assignment)."""
    text: Mapped[str] = mapped_column(Text)
    model: Mapped[str | None] = mapped_column(String(200))
    """Name (and version) of the model that produced it."""
    model_id: Mapped[int | None]
    """The registered model that generated it (no foreign key: the registry is a higher
    domain); None for imported responses."""
    sample_index: Mapped[int | None]
    """Which of the model's samples for this prompt it is; with model_id it makes a generated
    response unique, so a retried generation never stores one twice."""
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)


class ProjectMember(Base):
    """A labeler allowed on a project. A project without members is open to every labeler."""

    __tablename__ = "project_members"
    __table_args__ = (UniqueConstraint("project_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
