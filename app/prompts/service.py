"""Task management: a project's prompts with their labelling state, and what admins do to them.

Pages walk the prompts by id (keyset: `id > after`), so the millionth prompt costs what the
first does. Actions — release a lease, re-queue for one more label, retire, restore a retired
prompt — work on one prompt or on every prompt of a filter, and each one writes a row per
prompt to the action log. Re-queue and retire act on prompts still served; restore on retired
ones (`ACTIONS`, `actions_for`).
"""

from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import String, and_, case, exists, func, insert, literal, or_, select, update
from sqlalchemy.orm import Session

from app.auth.models import User
from app.base import utcnow
from app.errors import Conflict, Invalid, NotFound
from app.labeling.lease_rules import labels_wanted
from app.labeling.models import Assignment, AssignmentStatus
from app.memory import Memory, after_commit
from app.projects.models import Project, Prompt, Response
from app.prompts.models import PromptAction, PromptActionKind

STATUSES = ("unlabeled", "in-progress", "complete", "skipped", "retired")
PAGE_SIZE = 50
ACTIONS = ("requeue", "retire", "restore")
"""What an admin does to one prompt or to every prompt of a filter; restore acts on retired
prompts, the others on prompts still served."""
FILTER_NAMES = {"status": "status", "model": "model", "q": "search"}
"""The names the Prompts page shows for the filter's fields."""


@dataclass(frozen=True)
class PromptFilter:
    """Which prompts of a project: a status, a model that answered, a text search."""

    status: str | None = None
    model: str | None = None
    q: str | None = None

    def as_dict(self) -> dict[str, str]:
        """The set fields, as a page's query string or a log entry carries them."""
        values = {"status": self.status, "model": self.model, "q": self.q}
        return {k: v for k, v in values.items() if v}

    def describe(self) -> str:
        """The filter as the page names it: "status: unlabeled, search: 'foo'"."""
        return describe_filter(self.as_dict())


def describe_filter(values: dict[str, Any]) -> str:
    """A filter (as `PromptFilter.as_dict` gives it) for people; "no filter" when empty."""
    parts = [
        f"{FILTER_NAMES.get(name, name)}: " + (f"'{value}'" if name == "q" else str(value))
        for name, value in values.items()
    ]
    return ", ".join(parts) or "no filter"


def describe_action(action: PromptAction) -> str:
    """A log row's detail as a sentence part: whose lease, or which filter a bulk action had."""
    detail = action.detail or {}
    if "filter" in detail:
        if not detail["filter"]:
            return "every prompt of the project (no filter)"
        return f"every prompt matching {describe_filter(detail['filter'])}"
    if "holder" in detail:
        return f"lease of {detail['holder'] or 'a deleted user'}"
    return ", ".join(f"{k}: {v}" for k, v in detail.items())


def actions_for(status: str | None) -> tuple[str, ...]:
    """The actions that can change some prompt of a filter with this status: no retire or
    re-queue on the retired filter, no restore where only served prompts match."""
    if status == "retired":
        return ("restore",)
    if status in ("unlabeled", "in-progress"):
        return ("requeue", "retire")
    return ACTIONS


@dataclass
class Lease:
    assignment_id: int
    user_email: str
    expires_at: datetime


@dataclass
class Skip:
    user_email: str
    reason: str


@dataclass
class PromptRow:
    """One line of the Prompts page."""

    prompt: Prompt
    wanted: int
    responses: list[Response] = field(default_factory=list)
    leases: list[Lease] = field(default_factory=list)
    skips: list[Skip] = field(default_factory=list)


def _live_lease(now: datetime) -> Any:
    return exists().where(
        Assignment.prompt_id == Prompt.id,
        Assignment.status == AssignmentStatus.leased,
        Assignment.expires_at > now,
    )


def _message_text_contains(text: str, dialect: str) -> Any:
    """Whether some message of the prompt holds `text` in its content: literally (`%` and `_`
    are no wildcards), case-insensitively, and never in the JSON around it (keys, roles)."""
    if dialect == "postgresql":
        turns = func.json_array_elements(Prompt.messages).table_valued("value").alias("turn")
        content = turns.c.value.op("->>", return_type=String)("content")
    else:
        turns = func.json_each(Prompt.messages).table_valued("value").alias("turn")
        content = func.json_extract(turns.c.value, "$.content", type_=String)
    return exists().select_from(turns).where(content.icontains(text, autoescape=True))


def _conditions(
    session: Session, project: Project, where: PromptFilter, now: datetime
) -> list[Any]:
    """WHERE conditions on Prompt for the filter."""
    wanted = labels_wanted(project.overlap, Prompt.extra_labels)
    active = Prompt.retired_at.is_(None)
    conditions: list[Any] = [Prompt.project_id == project.id]
    status = where.status
    if status == "unlabeled":
        conditions += [active, Prompt.done_count == 0, ~_live_lease(now)]
    elif status == "in-progress":
        started = or_(Prompt.done_count > 0, _live_lease(now))
        conditions += [active, Prompt.done_count < wanted, started]
    elif status == "complete":
        conditions.append(Prompt.done_count >= wanted)
    elif status == "skipped":
        conditions.append(
            exists().where(
                Assignment.prompt_id == Prompt.id, Assignment.status == AssignmentStatus.skipped
            )
        )
    elif status == "retired":
        conditions.append(Prompt.retired_at.is_not(None))
    elif status:
        raise Invalid(
            f"status must be one of {', '.join(STATUSES)}; not {status!r}", field="status"
        )
    if where.model:
        conditions.append(
            exists().where(Response.prompt_id == Prompt.id, Response.model == where.model)
        )
    if where.q:
        dialect = session.get_bind().dialect.name
        conditions.append(
            or_(Prompt.external_id == where.q, _message_text_contains(where.q, dialect))
        )
    return conditions


def models_of(*, session: Session, project: Project) -> list[str]:
    """The model names that answered the project's prompts (for the 'by model' filter)."""
    query = (
        select(Response.model)
        .join(Prompt, Prompt.id == Response.prompt_id)
        .where(Prompt.project_id == project.id, Response.model.is_not(None))
        .distinct()
        .order_by(Response.model)
    )
    return [m for m in session.scalars(query) if m]


def list_prompts(
    *,
    session: Session,
    project: Project,
    where: PromptFilter,
    after: int = 0,
    limit: int = PAGE_SIZE,
) -> tuple[list[PromptRow], int | None]:
    """A page of prompts with id > after, in id order; and the `after` of the next page."""
    now = utcnow()
    prompts = list(
        session.scalars(
            select(Prompt)
            .where(*_conditions(session, project, where, now), Prompt.id > after)
            .order_by(Prompt.id)
            .limit(limit + 1)
        )
    )
    more = len(prompts) > limit
    prompts = prompts[:limit]
    rows = {
        p.id: PromptRow(prompt=p, wanted=labels_wanted(project.overlap, p.extra_labels))
        for p in prompts
    }
    if not rows:
        return [], None
    for response in session.scalars(
        select(Response)
        .where(Response.prompt_id.in_(rows))
        .order_by(Response.prompt_id, Response.position)
    ):
        rows[response.prompt_id].responses.append(response)
    assignments = session.execute(
        select(Assignment, User.email)
        .join(User, User.id == Assignment.user_id)
        .where(
            Assignment.prompt_id.in_(rows),
            or_(
                Assignment.status == AssignmentStatus.skipped,
                and_(Assignment.status == AssignmentStatus.leased, Assignment.expires_at > now),
            ),
        )
        .order_by(Assignment.id)
    )
    for assignment, email in assignments:
        row = rows[assignment.prompt_id]
        if assignment.status == AssignmentStatus.skipped:
            row.skips.append(Skip(email, assignment.skip_reason or ""))
        else:
            row.leases.append(Lease(assignment.id, email, assignment.expires_at))
    return list(rows.values()), prompts[-1].id if more else None


def count_prompts(*, session: Session, project: Project, where: PromptFilter) -> int:
    """How many prompts the filter matches (what a bulk action would touch)."""
    query = select(func.count()).where(*_conditions(session, project, where, utcnow()))
    return session.scalar(query) or 0


def recent_actions(*, session: Session, project: Project, limit: int = 20) -> list[Any]:
    """The newest action log rows of the project: (action, prompt external id, email)."""
    query = (
        select(PromptAction, Prompt.external_id, User.email)
        .join(Prompt, Prompt.id == PromptAction.prompt_id)
        .outerjoin(User, User.id == PromptAction.user_id)
        .where(PromptAction.project_id == project.id)
        .order_by(PromptAction.id.desc())
        .limit(limit)
    )
    return list(session.execute(query).all())


def _log(
    session: Session,
    project: Project,
    ids: Any,
    by: User,
    action: PromptActionKind,
    detail: dict[str, Any],
) -> None:
    """One log row per prompt id of `ids` (a list or a SELECT of Prompt.id)."""
    if isinstance(ids, list):
        session.add_all(
            PromptAction(
                project_id=project.id, prompt_id=i, user_id=by.id, action=action, detail=detail
            )
            for i in ids
        )
        session.flush()
        return
    columns = ["project_id", "prompt_id", "user_id", "action", "detail", "created_at"]
    now = utcnow()
    rows = ids.with_only_columns(
        literal(project.id),
        Prompt.id,
        literal(by.id),
        literal(str(action)),
        literal(detail, PromptAction.detail.type),
        literal(now, PromptAction.created_at.type),
    )
    session.execute(insert(PromptAction).from_select(columns, rows))


def _end_leases(session: Session, prompt_ids: Any, now: datetime) -> int:
    """Expire the live leases of these prompts: the slots go back to the pool."""
    result = session.execute(
        update(Assignment)
        .where(
            Assignment.prompt_id.in_(prompt_ids),
            Assignment.status == AssignmentStatus.leased,
            Assignment.expires_at > now,
        )
        .values(expires_at=now)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount  # type: ignore[attr-defined]


def get_prompt(*, session: Session, project: Project, prompt_id: int) -> Prompt:
    """A prompt of this project, or NotFound."""
    prompt = session.get(Prompt, prompt_id)
    if prompt is None or prompt.project_id != project.id:
        raise NotFound(f"project {project.id} has no prompt {prompt_id}")
    return prompt


def release_lease(*, session: Session, project: Project, assignment_id: int, by: User) -> None:
    """End a labeler's open lease now, so that the prompt can go to someone else."""
    now = utcnow()
    assignment = session.get(Assignment, assignment_id)
    if assignment is None or assignment.project_id != project.id:
        raise NotFound(f"project {project.id} has no assignment {assignment_id}")
    if assignment.status != AssignmentStatus.leased or assignment.expires_at <= now:
        raise Conflict(
            f"assignment {assignment_id} holds no open lease (it is {assignment.status})"
        )
    holder = session.get(User, assignment.user_id)
    assignment.expires_at = now
    detail = {"assignment_id": assignment.id, "holder": holder.email if holder else None}
    _log(session, project, [assignment.prompt_id], by, PromptActionKind.release, detail)


def _applies(action: str) -> Any:
    """The prompts an action can change: retired ones for restore, served ones otherwise."""
    if action not in ACTIONS:
        raise Invalid(f"action must be one of {', '.join(ACTIONS)}; not {action!r}", field="action")
    return Prompt.retired_at.is_not(None) if action == "restore" else Prompt.retired_at.is_(None)


def check_bulk(action: str, where: PromptFilter) -> None:
    """Invalid (field `action`) unless `action` can change some prompt of the filter's status."""
    _applies(action)
    if action not in actions_for(where.status):
        raise Invalid(
            f"{action} cannot apply to the {where.status} prompts; this filter takes "
            f"{' or '.join(actions_for(where.status))}",
            field="action",
        )


def count_for(*, session: Session, project: Project, where: PromptFilter, action: str) -> int:
    """How many prompts of the filter `action` would change (what a confirmation states)."""
    conditions = _conditions(session, project, where, utcnow())
    query = select(func.count()).where(*conditions, _applies(action))
    return session.scalar(query) or 0


def _selection(
    session: Session,
    project: Project,
    action: str,
    where: PromptFilter | None,
    prompt_id: int | None,
) -> tuple[Any, dict[str, Any]]:
    """SELECT Prompt.id of the prompts `action` changes — one prompt of the project (Conflict
    when the action cannot apply to it), or every prompt of the filter it can apply to (Invalid
    when it can apply to none of the filter's status) — and the log detail."""
    applies = _applies(action)
    if prompt_id is not None:
        prompt = get_prompt(session=session, project=project, prompt_id=prompt_id)
        if action == "restore" and prompt.retired_at is None:
            raise Conflict(f"prompt {prompt.external_id!r} is not retired: nothing to restore")
        if action != "restore" and prompt.retired_at is not None:
            raise Conflict(
                f"prompt {prompt.external_id!r} is retired: restore it to serve it again"
            )
        ids = select(Prompt.id).where(
            Prompt.project_id == project.id, Prompt.id == prompt_id, applies
        )
        return ids, {}
    where = where or PromptFilter()
    check_bulk(action, where)
    ids = select(Prompt.id).where(*_conditions(session, project, where, utcnow()), applies)
    return ids, {"filter": where.as_dict()}


def requeue(
    *,
    session: Session,
    project: Project,
    by: User,
    prompt_id: int | None = None,
    where: PromptFilter | None = None,
) -> int:
    """Serve prompts again for one more label than they have (retired ones stay retired:
    `restore` brings them back)."""
    ids, detail = _selection(session, project, "requeue", where, prompt_id)
    needs = Prompt.done_count + 1 - project.overlap
    _log(session, project, ids, by, PromptActionKind.requeue, detail)
    after_commit(session, partial(Memory.prompts_reopened, project_id=project.id))
    return _set(
        session,
        ids,
        extra_labels=case((needs > Prompt.extra_labels, needs), else_=Prompt.extra_labels),
    )


def retire(
    *,
    session: Session,
    project: Project,
    by: User,
    prompt_id: int | None = None,
    where: PromptFilter | None = None,
) -> int:
    """Stop serving prompts (open leases end now); their labels stay in every labels export
    and snapshot, but they leave `prompts` snapshots and exports and generation runs."""
    now = utcnow()
    ids, detail = _selection(session, project, "retire", where, prompt_id)
    _log(session, project, ids, by, PromptActionKind.retire, detail)
    changed = _set(session, ids, retired_at=now)
    retired_now = select(Prompt.id).where(Prompt.project_id == project.id, Prompt.retired_at == now)
    _end_leases(session, retired_now.scalar_subquery(), now)
    return changed


def restore(
    *,
    session: Session,
    project: Project,
    by: User,
    prompt_id: int | None = None,
    where: PromptFilter | None = None,
) -> int:
    """Serve retired prompts again, as they were (no extra label is asked: a complete prompt
    stays complete; re-queue it for one more)."""
    ids, detail = _selection(session, project, "restore", where, prompt_id)
    _log(session, project, ids, by, PromptActionKind.restore, detail)
    after_commit(session, partial(Memory.prompts_reopened, project_id=project.id))
    return _set(session, ids, retired_at=None)


def _set(session: Session, ids: Any, **values: Any) -> int:
    """Set `values` on the prompts `ids` selects; returns how many changed."""
    result = session.execute(
        update(Prompt)
        .where(Prompt.id.in_(ids.correlate(None).scalar_subquery()))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    session.flush()
    return result.rowcount  # type: ignore[attr-defined]


ACT = {"requeue": requeue, "retire": retire, "restore": restore}
"""Each action's function, by name (pages and API dispatch through it)."""


def act(
    *,
    session: Session,
    project: Project,
    by: User,
    action: str,
    prompt_id: int | None = None,
    where: PromptFilter | None = None,
) -> int:
    """Do `action` (requeue | retire | restore) to one prompt or every prompt of the filter."""
    if action not in ACT:
        raise Invalid(f"action must be one of {', '.join(ACTIONS)}; not {action!r}", field="action")
    return ACT[action](session=session, project=project, by=by, prompt_id=prompt_id, where=where)
