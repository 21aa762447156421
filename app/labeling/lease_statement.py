"""The PostgreSQL lease in one statement: the labeler's live lease in the project, else a new
lease of the first open prompt. Its WHERE and ORDER BY come from `lease_rules`; `leasing`
runs it (and the stepwise paths when a rule needs them)."""

from datetime import datetime, timedelta
from functools import cache
from types import SimpleNamespace
from typing import Any

from sqlalchemy import (
    Table,
    bindparam,
    exists,
    func,
    literal,
    literal_column,
    select,
    true,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import aliased

from app.labeling import exclusions
from app.labeling.lease_rules import open_for, serving_order, shown_count
from app.labeling.models import Assignment, AssignmentStatus
from app.projects import service as project_service
from app.projects.kinds import ProjectKind
from app.projects.models import Prompt, Response

PROMPTS: Table = Prompt.__table__  # type: ignore[assignment]


@cache
def lease_statement(kind: str, order: str, folded: bool = False, gold: bool = False) -> Any:
    """PostgreSQL, one statement: the labeler's live lease in the project, else a new lease of
    the first open prompt (locked with SKIP LOCKED; the labeler's own expired lease is renewed).

    Built once per project kind, serving order and form; parameters named p_… (a parameter
    named like a column of a table the statement writes would become part of that write).
    Rules about which prompt a labeler may get belong in `open_for` or here.

    `folded=False`: the project's settings come as parameters (`lease_parameters`); returns at
    most one row: assignment id, prompt_id, response_ids, expires_at, messages and `texts`
    (JSON: response id → text).
    `folded=True`: the project's settings and the labeler's membership are read in the same
    statement (`labeling_query`; parameters `labeling_parameters` and p_now). Returns no row
    when the project does not exist, else one row: the settings, `fast`, and lease_id,
    lease_prompt_id, response_ids, expires_at, messages, texts (null when nothing was leased).
    Nothing is leased unless `fast`: the labeler may label, the project has this kind and
    order, and no stepwise rule applies (archived, gold items to serve, automatic holds,
    an exclusion).

    `gold=True` (not folded): lease the gold item `p_gold` in place of the first open prompt,
    only while a real prompt is open for the labeler; otherwise the same statement.
    Not folded, `p_ahead=1` resumes the labeler's second live lease instead of the first (the
    task a labeling page holds ready behind the current one), so a labeler holds at most two.
    """
    user_id: Any = bindparam("p_user_id")
    now: Any = bindparam("p_now", type_=Assignment.expires_at.type)
    gate: list[Any] = []
    if folded:
        proj = project_service.labeling_query().cte("proj")
        fast = select(literal(1)).where(
            proj.c.allowed,
            proj.c.is_archived.is_(False),
            proj.c.auto_hold.is_(False),
            ~exists().where(exclusions.applies(user_id, bindparam("p_project_id"))),
            ~((proj.c.gold_rate > 0) & proj.c.has_gold),
            proj.c.kind == kind,
            proj.c.order == order,
        )
        gate = [exists(fast)]

        def setting(name: str) -> Any:
            return select(proj.c[name]).scalar_subquery()

        project = SimpleNamespace(
            id=bindparam("p_project_id"),
            overlap=setting("overlap"),
            kind=kind,
            k=setting("k"),
            order=order,
        )
        expires: Any = type_coerce(
            now + setting("lease_seconds") * literal_column("interval '1 second'"),
            Assignment.expires_at.type,
        )
        shown: Any = literal(0) if kind == ProjectKind.demonstration else setting("k")
    else:
        project = bound_project(kind, order)
        expires = bindparam("p_expires", type_=Assignment.expires_at.type)
        shown = bindparam("p_shown")
    mine = (
        select(Assignment.id, Assignment.prompt_id, Assignment.response_ids, Assignment.expires_at)
        .where(
            *gate,
            Assignment.project_id == project.id,
            Assignment.user_id == user_id,
            Assignment.status == AssignmentStatus.leased,
            Assignment.expires_at > now,
        )
        .order_by(Assignment.id)
        .limit(1)
        .offset(0 if folded else bindparam("p_ahead"))
        .cte("mine")
    )
    # A prompt whose row changed after this statement's snapshot (a concurrent lease or submit
    # committed meanwhile) is passed over: the counts below would be stale for it. Every
    # lease writes its prompt's row (`touched`), so a slot is never handed out twice.
    seen = aliased(Prompt, name="seen")
    unchanged = literal_column("prompts.xmin") == (
        select(literal_column("seen.xmin")).where(seen.id == Prompt.id).scalar_subquery()
    )
    # Import order, folded form: the scan starts at the project's frontier
    # (`remembered.frontier`), not at its first prompt, so it does not step over every
    # finished prompt on each lease.
    start = [Prompt.id >= bindparam("p_from")] if folded and order != "uncertainty" else []
    if gold:
        real_open = select(Prompt.id).where(*open_for(project, user_id, now)).correlate(None)
        chosen_where = [
            Prompt.id == bindparam("p_gold"),
            Prompt.project_id == project.id,
            Prompt.is_gold.is_(True),
            ~exists().where(Assignment.prompt_id == Prompt.id, Assignment.user_id == user_id),
            exists(real_open),
        ]
    else:
        chosen_where = [*start, *open_for(project, user_id, now), unchanged]
    candidate = (
        select(Prompt.id)
        .where(*gate, *chosen_where, ~exists(select(mine.c.id)))
        .order_by(*serving_order(project))
        .limit(1)
        .with_for_update(of=Prompt, skip_locked=True)
        .cte("candidate")
    )
    touched = (
        PROMPTS.update()
        .where(Prompt.id.in_(select(candidate.c.id)))
        .values(done_count=Prompt.done_count)
        .returning(Prompt.id)
        .cte("touched")
    )
    picked = (
        select(Response.id, func.random().label("r"))
        .where(Response.prompt_id == candidate.c.id)
        .order_by(literal_column("r"))
        .limit(shown)
        .subquery("picked")
    )
    sample = select(
        func.coalesce(
            func.json_agg(aggregate_order_by(picked.c.id, picked.c.r)),
            literal_column("'[]'::json"),
        )
    ).scalar_subquery()
    new = pg_insert(Assignment).from_select(
        [
            "project_id",
            "prompt_id",
            "user_id",
            "status",
            "response_ids",
            "expires_at",
            "created_at",
        ],
        select(
            project.id,
            candidate.c.id,
            user_id,
            literal(AssignmentStatus.leased.value),
            sample,
            expires,
            now,
        ),
    )
    leased = (
        new.on_conflict_do_update(
            index_elements=["prompt_id", "user_id"],
            set_={"expires_at": new.excluded.expires_at, "created_at": new.excluded.created_at},
            where=Assignment.status == AssignmentStatus.leased,
        )
        .returning(
            Assignment.id, Assignment.prompt_id, Assignment.response_ids, Assignment.expires_at
        )
        .cte("leased")
    )
    chosen = select(mine).union_all(select(leased)).subquery("chosen")
    texts = (
        select(func.json_object_agg(Response.id, Response.text))
        .where(Response.prompt_id == chosen.c.prompt_id)
        .scalar_subquery()
    )
    touched_count = select(func.count()).select_from(touched).scalar_subquery()
    if not folded:
        return (
            select(
                chosen.c.id,
                chosen.c.prompt_id,
                chosen.c.response_ids,
                chosen.c.expires_at,
                Prompt.messages,
                texts.label("texts"),
                touched_count.label("touched"),
            )
            .join(Prompt, Prompt.id == chosen.c.prompt_id)
            .limit(1)
        )
    lease_row = (
        select(
            chosen.c.id.label("lease_id"),
            chosen.c.prompt_id.label("lease_prompt_id"),
            chosen.c.response_ids,
            chosen.c.expires_at,
            Prompt.messages,
            texts.label("texts"),
        )
        .join(Prompt, Prompt.id == chosen.c.prompt_id)
        .limit(1)
        .subquery("lease")
    )
    return select(
        *proj.c,
        exists(fast).label("fast"),
        *lease_row.c,
        touched_count.label("touched"),
    ).select_from(proj.outerjoin(lease_row, true()))


def bound_project(kind: str, order: str) -> Any:
    """The project as a statement built once per kind and order sees it: its id, overlap and
    K as the bound parameters `lease_parameters` gives."""
    return SimpleNamespace(
        id=bindparam("p_project_id"),
        overlap=bindparam("p_overlap"),
        kind=kind,
        k=bindparam("p_k"),
        order=order,
    )


def lease_parameters(
    *, project: Any, user_id: int, now: datetime, ahead: bool = False
) -> dict[str, Any]:
    """The parameters of `lease_statement` for this project, labeler and time (`ahead`: the
    task after the current one)."""
    return {
        "p_ahead": int(ahead),
        "p_project_id": project.id,
        "p_overlap": project.overlap,
        "p_user_id": user_id,
        "p_now": now,
        "p_expires": now + timedelta(seconds=project.lease_seconds),
        "p_shown": shown_count(project),
        "p_k": project.k,
    }
