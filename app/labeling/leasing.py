"""Leasing a prompt to a labeler, in Core statements on one Connection (sync or via run_sync):
`lease`, the one way the API, the labeling pages and the asyncio hot path lease.

Rules that hold under concurrency: a prompt never has more than `overlap` live-or-done
assignments; a labeler never gets the same prompt twice; an expired lease frees its slot.
The rules are `lease_rules`'. PostgreSQL: one statement (`lease_statement`) reads the project's
settings, resumes the labeler's live lease or leases a new prompt. SQLite: the same rules in a
few statements inside a serialised write transaction. Both take the same steps first where a
project needs them (`steps`: automatic holds, the gold item to serve).
"""

import random
from datetime import datetime
from functools import cache
from types import SimpleNamespace
from typing import Any

from sqlalchemy import (
    Connection,
    Row,
    Table,
    bindparam,
    select,
)
from sqlalchemy import insert as sql_insert

from app import precompiled
from app.auth.models import User
from app.errors import Forbidden, NotFound
from app.labeling import exclusions, gold, public, remembered, suggestions
from app.labeling import lease_statement as statement
from app.labeling.lease_rules import (
    LEASE_COLUMNS,
    LabelingSettings,
    StatementTerms,
    lease_expiry,
    my_live_lease,
    open_for,
    renewal,
    serves_gold,
    serving_order,
    shown_count,
)
from app.labeling.models import Assignment, AssignmentStatus
from app.labeling.public import Kind
from app.labeling.schemas import Suggestion, Task, TaskResponse
from app.memory import Memory
from app.projects import service as project_service
from app.projects.kinds import ProjectKind
from app.projects.models import Prompt, Response

LEASE_TRIES = 3
"""PostgreSQL: statements tried before answering 'nothing left' (a prompt changed by a
concurrent commit is passed over once, never leased on a stale view)."""


def _table(model: Any) -> Table:
    """The mapped class's table (typed as one)."""
    return model.__table__


def settings_for(conn: Connection, *, project_id: int, user: User) -> LabelingSettings:
    """The project's labeling settings; NotFound or Forbidden (not a member)."""
    parameters = project_service.labeling_parameters(project_id=project_id, user=user)
    row = conn.execute(project_service.labeling_query(), parameters).first()
    return LabelingSettings.of(check_allowed(row, project_id))


def check_allowed(row: Any, project_id: int) -> Any:
    """A row of `labeling_query` (or a statement that reads it) for a labeler who may label;
    NotFound or Forbidden."""
    if row is None:
        raise NotFound(f"no project {project_id}")
    if not row.allowed:
        raise Forbidden(f"you are not a member of project {row.name!r}")
    return row


def make_task(
    project: LabelingSettings | Row[Any],
    lease: Any,
    messages: list[Any],
    texts: dict[Any, str],
    suggestion: Suggestion | None = None,
) -> Task:
    """A lease as the labeler sees it, with public ids (`app.labeling.public`); `texts` maps
    response id (int or str) to its text; `suggestion` from `suggestions.for_lease`."""
    texts = {int(rid): text for rid, text in texts.items()}
    return Task(
        assignment_id=public.encode(Kind.assignment, lease.id),
        project_id=project.id,
        prompt_id=public.encode(Kind.prompt, lease.prompt_id),
        kind=project.kind,
        instructions=project.instructions,
        messages=messages or [],
        responses=[
            TaskResponse(id=public.encode(Kind.response, int(rid)), text=texts[int(rid)])
            for rid in lease.response_ids
        ],
        rating_scale=project.rating_scale,
        criteria=project.criteria,
        strength_scale=project.strength_scale,
        questions=project.questions or [],
        suggestion=suggestion,
        expires_at=lease.expires_at,
    )


@cache
def _texts_query() -> Any:
    return select(Response.id, Response.text).where(Response.prompt_id == bindparam("p_prompt"))


def _texts(conn: Connection, prompt_id: int) -> dict[int, str]:
    return {rid: text for rid, text in conn.execute(_texts_query(), {"p_prompt": prompt_id})}


def _now() -> Any:
    return bindparam("p_now", type_=Assignment.expires_at.type)


@cache
def _resume_query() -> Any:
    return my_live_lease(
        bindparam("p_project_id"), bindparam("p_user_id"), _now(), bindparam("p_ahead")
    )


def _resume(
    conn: Connection, project: LabelingSettings, user_id: int, now: datetime, ahead: bool
) -> Row[Any] | None:
    """The labeler's live lease in the project (`ahead`: their second one), if any."""
    parameters = {"p_project_id": project.id, "p_user_id": user_id, "p_now": now}
    return conn.execute(_resume_query(), parameters | {"p_ahead": int(ahead)}).first()


@cache
def _renew_statement() -> Any:
    return (
        _table(Assignment)
        .update()
        .where(
            Assignment.prompt_id == bindparam("p_prompt_id"),
            Assignment.user_id == bindparam("p_user_id"),
        )
        .values(renewal(bindparam("p_expires", type_=Assignment.expires_at.type), _now()))
        .returning(*LEASE_COLUMNS)
    )


@cache
def _insert_statement() -> Any:
    return sql_insert(Assignment).returning(*LEASE_COLUMNS)


def _lease_prompt(
    conn: Connection, project: LabelingSettings, user_id: int, prompt_id: int, now: datetime
) -> Row[Any]:
    """Lease this prompt: renew the labeler's own expired lease of it, or write a new one."""
    expires = lease_expiry(now, project.lease_seconds)
    renewed = conn.execute(
        _renew_statement(),
        {"p_prompt_id": prompt_id, "p_user_id": user_id, "p_expires": expires, "p_now": now},
    ).first()
    if renewed is not None:
        return renewed
    shown = shown_count(project.kind, project.k)
    candidates = list(_texts(conn, prompt_id)) if shown else []
    values = {
        "project_id": project.id,
        "prompt_id": prompt_id,
        "user_id": user_id,
        "status": AssignmentStatus.leased,
        "response_ids": random.sample(candidates, min(shown, len(candidates))),
        "expires_at": expires,
        "created_at": now,
    }
    return conn.execute(_insert_statement(), values).one()


@cache
def _messages_query() -> Any:
    return select(Prompt.messages).where(Prompt.id == bindparam("p_prompt"))


def _as_task(conn: Connection, project: LabelingSettings, lease: Any) -> Task:
    messages = conn.scalar(_messages_query(), {"p_prompt": lease.prompt_id})
    texts = _texts(conn, lease.prompt_id)
    return make_task(
        project, lease, messages or [], texts, suggestions.for_lease(conn, project, lease)
    )


@cache
def _first_open_query(kind: str, order: str) -> Any:
    project = StatementTerms(
        id=bindparam("p_project_id"),
        kind=kind,
        k=bindparam("p_k"),
        overlap=bindparam("p_overlap"),
        order=order,
    )
    return (
        select(Prompt.id)
        .where(*open_for(project, bindparam("p_user_id"), _now()))
        .order_by(*serving_order(project))
        .limit(1)
    )


def _lease_serialised(
    conn: Connection,
    project: LabelingSettings,
    user_id: int,
    now: datetime,
    ahead: bool,
    gold_id: int | None,
) -> Task | None:
    """The same rules in steps; only correct inside a serialised write transaction (SQLite)."""
    held = _resume(conn, project, user_id, now, ahead)
    if held is None:
        parameters = {"p_project_id": project.id, "p_user_id": user_id, "p_now": now}
        parameters |= {"p_overlap": project.overlap, "p_k": project.k}
        prompt_id = conn.scalar(_first_open_query(project.kind, project.order), parameters)
        if prompt_id is None:
            return None
        held = _lease_prompt(conn, project, user_id, gold_id or prompt_id, now)
    return _as_task(conn, project, held)


def steps(conn: Connection, project: LabelingSettings, user_id: int) -> tuple[bool, int | None]:
    """The steps a lease takes before its statement (where `needs_steps`, and on SQLite):
    (whether the labeler may be leased anything, the gold item to lease in place of the next
    real prompt). Out of the project: archived, excluded, or held (`gold.hold_of`, recording a
    hold newly reached).

    A gold item (`gold.pick_gold`, at the project's gold rate) takes the place of the real
    prompt this labeler would have been leased, through the same statement: it is leased only
    where a real prompt is open for them, and a gold lease and a real one cost the same steps.
    """
    if project.is_archived:
        return False, None
    if exclusions.is_excluded(conn, user_id=user_id, project_id=project.id):
        return False, None
    if gold.hold_of(session=conn, project=project, user_id=user_id, record=True):
        return False, None
    if serves_gold(project):
        return True, gold.pick_gold(session=conn, project=project, user_id=user_id)
    return True, None


def _lease_postgresql(
    conn: Connection, project_id: int, user: User, now: datetime, ahead: bool, memory: Memory
) -> Task | None:
    kind, order = memory.shapes.get(project_id, (ProjectKind.ranking.value, "id"))
    parameters = statement.lease_parameters(
        project_id=project_id,
        user=user,
        now=now,
        ahead=ahead,
        start=remembered.frontier(memory, conn, project_id),
    )
    tries = LEASE_TRIES + 2  # more: a project first seen in another shape; no frontier
    while tries > 0:
        tries -= 1
        gold_id = parameters["p_gold"]
        built = statement.lease_statement(kind, order, gold=gold_id is not None)
        row = check_allowed(precompiled.execute(conn, built, parameters).first(), project_id)
        if (row.kind, row.order) != (kind, order):
            kind, order = memory.shapes[project_id] = (row.kind, row.order)
            continue
        if not row.fast and not parameters["p_stepped"]:
            may, gold_id = steps(conn, LabelingSettings.of(row), user.id)
            if not may:
                return None
            parameters |= {"p_stepped": True, "p_gold": gold_id}
            continue
        if row.lease_id is not None:
            held = SimpleNamespace(
                id=row.lease_id,
                prompt_id=row.lease_prompt_id,
                response_ids=row.response_ids,
                expires_at=row.expires_at,
            )
            remembered.remember(memory, row, held, user.id)
            suggestion = suggestions.for_lease(conn, row, held)
            return make_task(row, held, row.messages, row.texts or {}, suggestion)
        if not row.fast:
            return None  # out of the project (its settings changed since the steps)
        if gold_id is not None:
            parameters["p_gold"] = None  # taken meanwhile, or no real work left
        elif parameters["p_from"] > 0:
            # Nothing past the frontier: a prompt below it may have reopened (a raised
            # overlap, an extra label asked for); look from the start before saying none.
            parameters["p_from"] = 0
            remembered.reset_frontier(memory, project_id)
        # Else a prompt changed by a concurrent commit was passed over: try again.
    return None


def lease(
    conn: Connection,
    *,
    project_id: int,
    user: User,
    now: datetime,
    memory: Memory,
    ahead: bool = False,
) -> Task | None:
    """The labeler's live lease in the project, or a newly leased prompt, or None: nothing
    left, or the labeler is out of the project (`steps`). NotFound or Forbidden (not a
    member).

    `ahead`: the task after the one the labeler holds (their second live lease, or a new one),
    which a labeling page keeps ready so the next task shows without a wait. It is a lease like
    any other: it fills a slot, counts in progress and ends on expiry or when given back.
    `memory`: the web process's (`app.memory`); PostgreSQL starts at the project's frontier
    kept there and keeps the lease there for its submit. A source annotator (imported, or a
    judge) is never leased a task: its labels are stored for it.
    """
    if user.source is not None:
        return None
    if conn.dialect.name == "postgresql":
        return _lease_postgresql(conn, project_id, user, now, ahead, memory)
    project = settings_for(conn, project_id=project_id, user=user)
    may, gold_id = steps(conn, project, user.id)
    if not may:
        return None
    return _lease_serialised(conn, project, user.id, now, ahead, gold_id)
