"""What the labeling hot path keeps in a web process's `Memory` (`app.memory`, which states
how far each part may lag): the leases it just handed out (a submit of one needs no read of
the assignment) and each project's frontier (the lower bound of its unfinished prompts a
lease starts from). Both are hints a statement still checks."""

import time
from functools import cache
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Connection, bindparam, func, select

from app import precompiled
from app.labeling.lease_rules import unfinished
from app.memory import RECENT_LEASES_MAX, Memory
from app.projects.models import Project, Prompt
from app.projects.service import LABELING_SETTINGS


def remember(memory: Memory, project: Any, held: Any, user_id: int) -> None:
    """Keep what the submit of lease `held` needs, the project's labeling settings included."""
    if len(memory.leases) >= RECENT_LEASES_MAX:
        memory.leases.clear()
    memory.leases[held.id] = SimpleNamespace(
        id=held.id,
        user_id=user_id,
        prompt_id=held.prompt_id,
        response_ids=held.response_ids,
        project_id=project.id,
        replay=None,
        **{column.key: getattr(project, column.key) for column in LABELING_SETTINGS},
    )


def recall(memory: Memory, assignment_id: int, user_id: int) -> Any | None:
    """What the submit of a lease handed out by this process needs (assignment and project
    settings as `submitting.assignment_for_submit` reads them), taken once; None if unknown.
    The store statement still checks that the lease is this labeler's, leased and live, and of
    this prompt."""
    held = memory.leases.pop(assignment_id, None)
    return held if held is not None and held.user_id == user_id else None


FRONTIER_SECONDS = 2.0
"""How long a project's frontier is used before it is read again (from where it was)."""
FRONTIER_RESET_SECONDS = 60.0
"""How often it is read from the project's first prompt (prompts below it may reopen)."""


@cache
def _frontier_query() -> Any:
    project_id: Any = bindparam("p_project_id")
    overlap = select(Project.overlap).where(Project.id == project_id).scalar_subquery()
    project = SimpleNamespace(id=project_id, overlap=overlap)
    return select(func.min(Prompt.id)).where(Prompt.id >= bindparam("p_from"), *unfinished(project))


def frontier(memory: Memory, conn: Connection, project_id: int) -> int:
    """A lower bound of the ids of the project's prompts that may still be leased: the first
    prompt with fewer finished labels than wanted, read at most every FRONTIER_SECONDS per
    process. Finished prompts only reopen by an admin's change (overlap, extra labels, an
    unretired prompt); the lease looks from the start when nothing is found past the frontier,
    and the frontier is read from the start every FRONTIER_RESET_SECONDS."""
    clock = time.monotonic()
    again, reset, low = memory.frontiers.get(project_id, (0.0, 0.0, 0))
    if clock < again:
        return low
    if clock >= reset:
        low, reset = 0, clock + FRONTIER_RESET_SECONDS
    parameters = {"p_project_id": project_id, "p_from": low}
    found = precompiled.execute(conn, _frontier_query(), parameters).scalar()
    low = found or low
    memory.frontiers[project_id] = (clock + FRONTIER_SECONDS, reset, low)
    return low


def reset_frontier(memory: Memory, project_id: int) -> None:
    """The project's frontier is read again, from its first prompt, at the next lease."""
    memory.frontiers.pop(project_id, None)
