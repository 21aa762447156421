"""What one web process remembers between requests to spare the database a round trip: the
leases it just handed out (a submit of one needs no read of the assignment), each project's
frontier (the lower bound of its unfinished prompts a lease starts from) and the shape of the
folded lease statement last used per project. All of it is a hint that a statement still
checks, and `forget` drops it when a project changes."""

import time
from functools import cache
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Connection, bindparam, event, func, select
from sqlalchemy.orm import Session

from app import precompiled
from app.labeling.lease_rules import unfinished
from app.projects.models import Project, Prompt
from app.projects.service import LABELING_SETTINGS

RECENT_MAX = 20_000
_recent: dict[int, SimpleNamespace] = {}
"""Assignment id → what a submit needs of a lease this process just handed out."""


def remember(project: Any, held: Any, user_id: int) -> None:
    if len(_recent) >= RECENT_MAX:
        _recent.clear()
    _recent[held.id] = SimpleNamespace(
        id=held.id,
        user_id=user_id,
        prompt_id=held.prompt_id,
        response_ids=held.response_ids,
        project_id=project.id,
        replay=None,
        **{column.key: getattr(project, column.key) for column in LABELING_SETTINGS},
    )


def forget() -> None:
    """Drop what this process remembers of leases and projects (a project changed, or the
    database was replaced)."""
    _recent.clear()
    shapes.clear()
    _frontiers.clear()


@event.listens_for(Session, "after_flush")
def _forget_on_change(session: Session, _context: Any) -> None:
    """A project's settings changed in this process: submits read them afresh."""
    if any(isinstance(obj, Project) for obj in session.dirty):
        forget()


def recall(assignment_id: int, user_id: int) -> Any | None:
    """What the submit of a lease handed out by this process needs (assignment and project
    settings as `submitting.assignment_for_submit` reads them), taken once; None if unknown.
    The store statement still checks that the lease is this labeler's, leased and live, and of
    this prompt. Settings changed by another process meanwhile apply from the next lease."""
    held = _recent.pop(assignment_id, None)
    return held if held is not None and held.user_id == user_id else None


FRONTIER_SECONDS = 2.0
"""How long a project's frontier is used before it is read again (from where it was)."""
FRONTIER_RESET_SECONDS = 60.0
"""How often it is read from the project's first prompt (prompts below it may reopen)."""
_frontiers: dict[int, tuple[float, float, int]] = {}
"""Project id → (read again after, read from the start after, frontier)."""


@cache
def _frontier_query() -> Any:
    project_id: Any = bindparam("p_project_id")
    overlap = select(Project.overlap).where(Project.id == project_id).scalar_subquery()
    project = SimpleNamespace(id=project_id, overlap=overlap)
    return select(func.min(Prompt.id)).where(Prompt.id >= bindparam("p_from"), *unfinished(project))


def frontier(conn: Connection, project_id: int) -> int:
    """A lower bound of the ids of the project's prompts that may still be leased: the first
    prompt with fewer finished labels than wanted, read at most every FRONTIER_SECONDS per
    process. Finished prompts only reopen by an admin's change (overlap, extra labels, an
    unretired prompt); the lease looks from the start when nothing is found past the frontier,
    and the frontier is read from the start every FRONTIER_RESET_SECONDS."""
    clock = time.monotonic()
    again, reset, low = _frontiers.get(project_id, (0.0, 0.0, 0))
    if clock < again:
        return low
    if clock >= reset:
        low, reset = 0, clock + FRONTIER_RESET_SECONDS
    parameters = {"p_project_id": project_id, "p_from": low}
    found = precompiled.execute(conn, _frontier_query(), parameters).scalar()
    low = found or low
    _frontiers[project_id] = (clock + FRONTIER_SECONDS, reset, low)
    return low


def reset_frontier(project_id: int) -> None:
    """The project's frontier is read again, from its first prompt, at the next lease."""
    _frontiers.pop(project_id, None)


shapes: dict[int, tuple[str, str]] = {}
"""Project id → (kind, order) last seen: the shape of the folded lease statement to try."""
