"""Which prompts a labeler may be leased: the WHERE and ORDER BY conditions every lease path
(the folded PostgreSQL statement, the stepwise and SQLite paths, the frontier, the queue's
counts) builds from, so each rule has one definition."""

from datetime import datetime
from typing import Any

from sqlalchemy import and_, exists, func, or_, select

from app.labeling.models import Assignment, AssignmentStatus
from app.projects.kinds import ProjectKind
from app.projects.models import Prompt, Response


def live(now: datetime) -> Any:
    """Assignments that hold a slot: done and counted (`exclusions`), or leased and not
    expired."""
    return or_(
        and_(Assignment.status == AssignmentStatus.done, Assignment.counted.is_(True)),
        and_(Assignment.status == AssignmentStatus.leased, Assignment.expires_at > now),
    )


def holds_prompt_for(user_id: int, now: datetime) -> Any:
    """This user's assignment that rules the prompt out for them (done, skipped or live)."""
    return and_(
        Assignment.user_id == user_id,
        or_(Assignment.status != AssignmentStatus.leased, Assignment.expires_at > now),
    )


def open_for(project: Any, user_id: int, now: datetime) -> list[Any]:
    """WHERE conditions on Prompt: prompts of the project this labeler may still be given."""
    taken = (
        select(func.count())
        .where(Assignment.prompt_id == Prompt.id, live(now))
        .correlate(Prompt)
        .scalar_subquery()
    )
    return [
        *unfinished(project),
        ~exists().where(Assignment.prompt_id == Prompt.id, holds_prompt_for(user_id, now)),
        taken < project.overlap + Prompt.extra_labels,
        *has_candidates(project),
    ]


def unfinished(project: Any) -> list[Any]:
    """WHERE conditions on Prompt: the project's served prompts with fewer finished labels than
    wanted (what `open_for` starts from, and what `_frontier` finds the first of)."""
    return [
        Prompt.project_id == project.id,
        Prompt.is_gold.is_(False),  # gold items are served by `gold.pick_gold`
        Prompt.retired_at.is_(None),
        Prompt.done_count < project.overlap + Prompt.extra_labels,
    ]


def serving_order(project: Any) -> list[Any]:
    """ORDER BY of the prompts a labeler may get: import order, or with order=uncertainty the
    prompts whose candidates the reward model separates least first (unscored ones last)."""
    if project.order == "uncertainty":
        return [Prompt.priority.asc().nulls_last(), Prompt.id]
    return [Prompt.id]


def has_candidates(project: Any) -> list[Any]:
    """WHERE conditions on Prompt: enough responses to be served (a generation run may still be
    adding them): K to rank (or 2 that came with the import), one to rate, none to write."""
    if project.kind == ProjectKind.demonstration:
        return []
    count = (
        select(func.count())
        .where(Response.prompt_id == Prompt.id)
        .correlate(Prompt)
        .scalar_subquery()
    )
    if project.kind != ProjectKind.ranking:
        return [count >= 1]
    imported = (
        select(func.count())
        .where(Response.prompt_id == Prompt.id, Response.sample_index.is_(None))
        .correlate(Prompt)
        .scalar_subquery()
    )
    return [or_(count >= project.k, imported >= 2)]


def shown_count(project: Any) -> int:
    """How many responses an assignment of this project shows (none for demonstrations)."""
    return 0 if project.kind == ProjectKind.demonstration else project.k
