"""The PostgreSQL lease in one statement, built from `lease_rules`: the project's settings,
the labeler's live lease in the project, else a new lease of the first open prompt. `leasing`
runs it, after the steps a project needs (`lease_rules.needs_steps`)."""

from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import (
    Boolean,
    Table,
    bindparam,
    exists,
    func,
    literal,
    literal_column,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import aliased

from app.labeling import exclusions
from app.labeling.lease_rules import (
    LEASE_COLUMNS,
    StatementTerms,
    lease_expiry,
    my_live_lease,
    needs_steps,
    open_for,
    renewal,
    serving_order,
    shown_count,
    uses_frontier,
)
from app.labeling.models import Assignment, AssignmentStatus
from app.projects import service as project_service
from app.projects.models import Prompt, Response

PROMPTS: Table = Prompt.__table__  # type: ignore[assignment]


@cache
def lease_statement(kind: str, order: str, gold: bool = False) -> Any:
    """PostgreSQL, one statement: the project's labeling settings and the labeler's right to
    label it (`labeling_query`), then the labeler's live lease in the project (`my_live_lease`)
    or else a new lease of the first open prompt (locked with SKIP LOCKED; the labeler's own
    expired lease is renewed).

    Built once per project kind, serving order and form; parameters from `lease_parameters`,
    named p_… (a parameter named like a column of a table the statement writes would become
    part of that write). Which prompt a labeler may get is `lease_rules`'.

    Returns no row when the project does not exist, else one row: the settings (`allowed`,
    `has_gold` among them), `fast`, and lease_id, lease_prompt_id, response_ids, expires_at,
    messages, texts (JSON: response id → text), all null when nothing was leased. Nothing is
    leased unless `fast`: the labeler may label, the project is not archived and has this kind
    and order, no exclusion covers the labeler, and the lease needs no steps (`needs_steps`)
    or they were taken (`p_stepped`).

    `p_ahead=1` resumes or leases the labeler's second live lease (the task a labeling page
    holds ready behind the current one). `gold=True`: lease the gold item `p_gold` in place of
    the first open prompt, only while a real prompt is open for the labeler.
    """
    user_id: Any = bindparam("p_user_id")
    now: Any = bindparam("p_now", type_=Assignment.expires_at.type)
    proj = project_service.labeling_query().cte("proj")
    fast = select(literal(1)).where(
        proj.c.allowed,
        proj.c.is_archived.is_(False),
        ~exists().where(exclusions.applies(user_id, bindparam("p_project_id"))),
        bindparam("p_stepped", type_=Boolean) | ~needs_steps(proj.c),
        proj.c.kind == kind,
        proj.c.order == order,
    )
    gate = [exists(fast)]

    def setting(name: str) -> Any:
        return select(proj.c[name]).scalar_subquery()

    project = StatementTerms(
        id=bindparam("p_project_id"),
        kind=kind,
        k=setting("k"),
        overlap=setting("overlap"),
        order=order,
    )
    expires = lease_expiry(now, setting("lease_seconds"))
    shown: Any = shown_count(kind, setting("k"))
    if isinstance(shown, int):
        shown = literal(shown)
    mine = my_live_lease(project.id, user_id, now, bindparam("p_ahead")).where(*gate).cte("mine")
    # A prompt whose row changed after this statement's snapshot (a concurrent lease or submit
    # committed meanwhile) is passed over: the counts below would be stale for it. Every
    # lease writes its prompt's row (`touched`), so a slot is never handed out twice.
    seen = aliased(Prompt, name="seen")
    unchanged = literal_column("prompts.xmin") == (
        select(literal_column("seen.xmin")).where(seen.id == Prompt.id).scalar_subquery()
    )
    # Import order: the scan starts at the project's frontier (`remembered.frontier`), not at
    # its first prompt, so it does not step over every finished prompt on each lease.
    start = [Prompt.id >= bindparam("p_from")] if uses_frontier(order) else []
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
            set_=renewal(new.excluded.expires_at, new.excluded.created_at),
            where=Assignment.status == AssignmentStatus.leased,
        )
        .returning(*LEASE_COLUMNS)
        .cte("leased")
    )
    chosen = select(mine).union_all(select(leased)).subquery("chosen")
    texts = (
        select(func.json_object_agg(Response.id, Response.text))
        .where(Response.prompt_id == chosen.c.prompt_id)
        .scalar_subquery()
    )
    touched_count = select(func.count()).select_from(touched).scalar_subquery()
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


def lease_parameters(
    *, project_id: int, user: Any, now: datetime, start: int = 0, ahead: bool = False
) -> dict[str, Any]:
    """The parameters of `lease_statement` for this project, labeler and time; `start`: the
    project's frontier (`remembered.frontier`), `ahead`: the task after the current one. The
    steps' results (`p_stepped`, `p_gold`) are set by `leasing`."""
    parameters = project_service.labeling_parameters(project_id=project_id, user=user)
    return parameters | {
        "p_now": now,
        "p_from": start,
        "p_ahead": int(ahead),
        "p_stepped": False,
        "p_gold": None,
    }
