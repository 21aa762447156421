"""The leasing rules, each once, by name.

Who may get which prompt (`open_for`, `unfinished`, `has_candidates`, `serving_order`), how many
labels a prompt wants (`labels_wanted`) and whether a judge's label fills one of them
(`judge_accepted`), how many responses a task shows (`shown_count`), when a
lease ends (`lease_expiry`), which assignment is a live lease (`live_lease`), the labeler's
lease to resume (`my_live_lease`) and what renewing an expired one writes (`renewal`), and when
a lease takes steps before its statement (`serves_gold`, `needs_steps`).

The PostgreSQL lease statement (`lease_statement`) and the SQLite steps (`leasing`) are built
from them, and so are progress, the prompts page, project stats and the late-submit check.
A rule takes Python values or SQL expressions alike where it can (`Terms`), so the statement
built once per project kind and the checks made on a loaded project read the same definition.
"""

from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import and_, exists, func, literal_column, or_, select, type_coerce
from sqlalchemy.orm import aliased

from app.auth.models import User
from app.labeling.models import Annotation, Assignment, AssignmentStatus, Judgment
from app.projects.kinds import ProjectKind
from app.projects.models import Project, Prompt, Response

JUDGE_SOURCE = "ai"
"""users.source of a judge annotator (`judge:<model>`, see `labeling.judged`)."""


class Terms(Protocol):
    """What the prompt rules read of a project: values of a loaded project
    (`LabelingSettings`, the ORM `Project`) or the bound parameters and subqueries of a
    statement built once per kind and order."""

    id: Any
    kind: Any
    k: Any
    overlap: Any
    order: Any


@dataclass(frozen=True, slots=True)
class StatementTerms:
    """`Terms` of a statement built once per project kind and order: the id, K and overlap are
    SQL (bound parameters, or subqueries of the settings the statement reads)."""

    id: Any
    kind: str
    k: Any
    overlap: Any
    order: str


@dataclass(frozen=True, slots=True)
class LabelingSettings:
    """A project's labeling settings as a lease, a submit and the labeling page read them
    (`projects.service.labeling_query`), with whether this user may label it."""

    id: int
    name: str
    kind: str
    instructions: str | None
    k: int
    overlap: int
    lease_seconds: int
    rating_scale: Any
    criteria: Any
    strength_scale: Any
    questions: Any
    is_archived: bool
    gold_rate: float
    order: str
    auto_hold: bool
    hold_after_gold: int
    suggestions: str
    has_gold: bool
    allowed: bool

    @classmethod
    def of(cls, row: Any) -> "LabelingSettings":
        """From a row of `labeling_query` (or of the lease statement that folds it in)."""
        return cls(**{f.name: getattr(row, f.name) for f in fields(cls)})


def labels_wanted(overlap: Any, extra_labels: Any) -> Any:
    """Labels a prompt wants: the project's overlap plus the extra labels asked for it."""
    return overlap + extra_labels


def live_lease(now: datetime, assignment: Any = Assignment) -> Any:
    """SQL: the assignment is a lease that has not expired."""
    return and_(assignment.status == AssignmentStatus.leased, assignment.expires_at > now)


def judge_accepted() -> Any:
    """SQL on Assignment: whether its label may count toward overlap as far as judges go. A
    person's (or a source annotator's) always; a judge's when its live annotation's verdict has
    a margin of at least the project's `judge_accepts` (None: never) and orders that did not
    disagree."""
    judge = exists().where(User.id == Assignment.user_id, User.source == JUDGE_SOURCE)
    live = aliased(Annotation)
    newer = aliased(Annotation)
    confident = exists().where(
        Judgment.annotation_id == live.id,
        live.assignment_id == Assignment.id,
        ~exists().where(newer.supersedes_id == live.id),
        Project.id == Assignment.project_id,
        Judgment.margin >= Project.judge_accepts,
        or_(Judgment.orders_agree.is_(None), Judgment.orders_agree.is_(True)),
    )
    return or_(~judge, confident)


def live(now: datetime) -> Any:
    """Assignments that hold slots (`Assignment.slots`): done and counted (`exclusions`), or a
    live lease."""
    return or_(
        and_(Assignment.status == AssignmentStatus.done, Assignment.counted.is_(True)),
        live_lease(now),
    )


def holds_prompt_for(user_id: Any, now: datetime) -> Any:
    """This user's assignment that rules the prompt out for them (done, skipped or live)."""
    return and_(
        Assignment.user_id == user_id,
        or_(Assignment.status != AssignmentStatus.leased, Assignment.expires_at > now),
    )


def open_for(project: Terms, user_id: Any, now: datetime) -> list[Any]:
    """WHERE conditions on Prompt: prompts of the project this labeler may still be given."""
    taken = (
        select(func.coalesce(func.sum(Assignment.slots), 0))
        .where(Assignment.prompt_id == Prompt.id, live(now))
        .correlate(Prompt)
        .scalar_subquery()
    )
    return [
        *unfinished(project),
        ~exists().where(Assignment.prompt_id == Prompt.id, holds_prompt_for(user_id, now)),
        taken < labels_wanted(project.overlap, Prompt.extra_labels),
        *has_candidates(project),
    ]


def unfinished(project: Any) -> list[Any]:
    """WHERE conditions on Prompt: the project's served prompts with fewer finished labels than
    wanted (what `open_for` starts from, and what the frontier finds the first of)."""
    return [
        Prompt.project_id == project.id,
        Prompt.is_gold.is_(False),  # gold items are served by `gold.pick_gold`
        Prompt.retired_at.is_(None),
        Prompt.done_count < labels_wanted(project.overlap, Prompt.extra_labels),
    ]


def serving_order(project: Terms) -> list[Any]:
    """ORDER BY of the prompts a labeler may get: import order; with order=uncertainty the
    prompts whose candidates the reward model separates least first (unscored ones last); with
    order=judge-uncertainty those a judge was least sure of first (`Prompt.judge_margin`: an
    abstention or orders that disagreed count as 0; prompts no judge saw last)."""
    if project.order == "uncertainty":
        return [Prompt.priority.asc().nulls_last(), Prompt.id]
    if project.order == "judge-uncertainty":
        return [Prompt.judge_margin.asc().nulls_last(), Prompt.id]
    return [Prompt.id]


def uses_frontier(order: str) -> bool:
    """Whether a lease may start its scan at the project's frontier (`remembered.frontier`,
    the first unfinished prompt by id): only in import order, where no prompt before the
    frontier comes first."""
    return order == "id"


def has_candidates(project: Terms) -> list[Any]:
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


def shown_count(kind: Any, k: Any) -> Any:
    """How many responses an assignment shows: K (all a prompt has, if fewer), none for a
    demonstration."""
    return 0 if kind == ProjectKind.demonstration else k


def lease_expiry(now: datetime, lease_seconds: Any) -> Any:
    """When a lease taken now ends; `lease_seconds` a number, or SQL (the folded statement)."""
    if isinstance(lease_seconds, int):
        return now + timedelta(seconds=lease_seconds)
    return type_coerce(
        now + lease_seconds * literal_column("interval '1 second'"), Assignment.expires_at.type
    )


LEASE_COLUMNS = (
    Assignment.id,
    Assignment.prompt_id,
    Assignment.response_ids,
    Assignment.expires_at,
)
"""What a lease statement returns of the assignment."""


def my_live_lease(project_id: Any, user_id: Any, now: Any, ahead: Any) -> Any:
    """SELECT of the labeler's live lease in the project to resume: the first, or with
    `ahead` (0 or 1) the second (the task a labeling page holds ready behind the current one),
    so a labeler holds at most two."""
    return (
        select(*LEASE_COLUMNS)
        .where(
            Assignment.project_id == project_id,
            Assignment.user_id == user_id,
            live_lease(now),
        )
        .order_by(Assignment.id)
        .limit(1)
        .offset(ahead)
    )


def renewal(expires: Any, now: Any) -> dict[str, Any]:
    """What leasing a prompt again writes on the labeler's own expired lease of it (the same
    assignment and shown responses, a new term)."""
    return {"expires_at": expires, "created_at": now}


def serves_gold(project: Any) -> Any:
    """Gold items are served in this project: a gold rate, gold items, and a kind with known
    answers. Python values or SQL columns alike."""
    return (project.gold_rate > 0) & project.has_gold & (project.kind != ProjectKind.demonstration)


def needs_steps(project: Any) -> Any:
    """A lease in this project takes steps before its statement (`leasing.steps`): gold
    items to draw, or automatic holds to check. Python values or SQL columns alike."""
    return project.auto_hold | serves_gold(project)
