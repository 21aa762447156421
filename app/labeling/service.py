"""Labeling for sync callers (pages, the CLI, tests) and the labeler's history.

The rules and statements live in `leasing` and `submitting`; the JSON API runs the same
functions on the asyncio engine (see app.labeling.api).
"""

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Row, func, select
from sqlalchemy.orm import Session

from app.auth.models import User
from app.base import utcnow
from app.labeling import exclusions, gold, lease_rules, leasing, public, submitting
from app.labeling.models import Annotation, AnnotationSource, Assignment, AssignmentStatus
from app.labeling.public import Kind
from app.labeling.schemas import AnnotationIn, Progress, Task
from app.memory import memory_of
from app.projects.models import Project


def next_task(
    *, session: Session, project: Project, user: User, ahead: bool = False
) -> Task | None:
    """The labeler's live lease in this project, or a newly leased prompt, or None (`ahead`:
    the task after the current one, see `leasing.lease`)."""
    conn = session.connection()
    memory = memory_of(session)
    task = leasing.lease(
        conn, project_id=project.id, user=user, now=utcnow(), memory=memory, ahead=ahead
    )
    session.commit()
    return task


def submit(
    *,
    session: Session,
    assignment_id: int,
    user: User,
    body: AnnotationIn,
    idempotency_key: str | None = None,
) -> tuple[Row[Any], bool]:
    """Store an annotation; returns (annotation, created). A replayed key returns the first.
    `assignment_id` is the public id the labeler's task showed (`app.labeling.public`)."""
    try:
        result = submitting.submit(
            session.connection(),
            assignment_id=public.decode(Kind.assignment, assignment_id),
            user=user,
            body=body,
            idempotency_key=idempotency_key,
            now=utcnow(),
            careful=True,
        )
    except submitting.KeyTaken:
        session.rollback()
        first = submitting.find_by_key(
            session.connection(),
            user_id=user.id,
            key=idempotency_key or "",
            assignment_id=assignment_id,
        )
        assert first is not None
        session.commit()
        return first, False
    except BaseException:
        session.rollback()
        raise
    session.commit()
    assert result is not None
    return result


def give_back(*, session: Session, assignment_id: int, user: User) -> bool:
    """End the labeler's own live lease now (the public id of `submit`), without a skip."""
    given = submitting.give_back(
        session.connection(),
        assignment_id=public.decode(Kind.assignment, assignment_id),
        user=user,
        now=utcnow(),
    )
    session.commit()
    return given


def skip(*, session: Session, assignment_id: int, user: User, reason: str) -> Row[Any]:
    """Give a leased prompt back with a reason; this labeler will not get it again (the
    public id of `submit`)."""
    try:
        row = submitting.skip(
            session.connection(),
            assignment_id=public.decode(Kind.assignment, assignment_id),
            user=user,
            reason=reason,
            now=utcnow(),
        )
    except BaseException:
        session.rollback()
        raise
    session.commit()
    return row


def progress(*, session: Session, project: Project, user: User) -> Progress:
    """What this labeler did in the project and how many prompts they could still get."""
    now = utcnow()
    live_lease = (Assignment.status == AssignmentStatus.leased) & (Assignment.expires_at > now)
    done, skipped, leased = session.execute(
        select(
            func.count().filter(Assignment.status == AssignmentStatus.done),
            func.count().filter(Assignment.status == AssignmentStatus.skipped),
            func.count().filter(live_lease),
        ).where(Assignment.project_id == project.id, Assignment.user_id == user.id)
    ).one()
    available = session.scalar(
        select(func.count()).where(*lease_rules.open_for(project, user.id, now))
    )
    if available and project.gold_rate > 0 and project.kind != "demonstration":
        # Gold items count like real prompts: a lease of either takes one off, so the count
        # does not tell which one was leased (gold is served only while real work is left).
        available += gold.unseen_count(session=session, project=project, user_id=user.id)
    held = None
    if exclusions.is_excluded(session, user_id=user.id, project_id=project.id):
        held = exclusions.EXCLUDED_REASON
    elif hold := gold.hold_of(session=session, project=project, user_id=user.id):
        held = hold.reason
    return Progress(
        project_id=project.id,
        leased=leased,
        done=done,
        skipped=skipped,
        available=0 if held else available or 0,
        held=held,
    )


def _newest_first(model: Any, limit: int, offset: int, **equal: Any) -> Any:
    """SELECT model rows, newest first, where each non-None keyword equals its column."""
    query = select(model).order_by(model.id.desc()).limit(limit).offset(offset)
    for column, value in equal.items():
        if value is not None:
            query = query.where(getattr(model, column) == value)
    return query


def list_assignments(
    *,
    session: Session,
    user_id: int | None,
    project_id: int | None = None,
    status: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[Assignment]:
    """Assignments, newest first, filtered."""
    query = _newest_first(
        Assignment, limit, offset, user_id=user_id, project_id=project_id, status=status
    )
    return list(session.scalars(query))


def list_annotations(
    *,
    session: Session,
    user_id: int | None = None,
    project_id: int | None = None,
    prompt_id: int | None = None,
    prompt_ids: list[int] | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[Annotation]:
    """Annotations, newest first, filtered (`prompt_ids`: of any of these prompts)."""
    query = _newest_first(
        Annotation, limit, offset, user_id=user_id, project_id=project_id, prompt_id=prompt_id
    )
    if prompt_ids is not None:
        query = query.where(Annotation.prompt_id.in_(prompt_ids))
    return list(session.scalars(query))


def labels_per_day(
    *, session: Session, days: int = 14, project_id: int | None = None
) -> list[tuple[date, int]]:
    """Labeler annotations per UTC day over the last `days` days, oldest first, zeros included."""
    today = utcnow().date()
    first = today - timedelta(days=days - 1)
    since = datetime.combine(first, time.min, tzinfo=UTC)
    stamp = Annotation.created_at
    if session.get_bind().dialect.name == "postgresql":
        stamp = func.timezone("UTC", stamp)  # type: ignore[assignment]
    day = func.date(stamp)
    query = (
        select(day, func.count())
        .where(Annotation.created_at >= since, Annotation.source == AnnotationSource.labeler)
        .group_by(day)
    )
    if project_id is not None:
        query = query.where(Annotation.project_id == project_id)
    counts = {str(value)[:10]: n for value, n in session.execute(query).all()}
    return [
        (first + timedelta(days=i), counts.get(str(first + timedelta(days=i)), 0))
        for i in range(days)
    ]
