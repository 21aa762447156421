"""Assignment of prompts to labelers, annotations and skips.

Rules that hold under concurrency: a prompt never has more than `overlap` live-or-done
assignments; a labeler never gets the same prompt twice; an expired lease frees its slot.
Every assignment row of a prompt is written while holding that prompt's row lock
(PostgreSQL: SELECT … FOR UPDATE SKIP LOCKED; SQLite: write transactions are serialised).
"""

import random
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Row, and_, exists, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.auth.models import User
from app.base import utcnow
from app.errors import Conflict, Forbidden, Gone, Invalid, NotFound
from app.labeling import gold, validation
from app.labeling.models import Annotation, AnnotationSource, Assignment, AssignmentStatus
from app.labeling.schemas import AnnotationIn, Progress, Task, TaskResponse
from app.projects import service as project_service
from app.projects.generated import min_responses
from app.projects.kinds import ProjectKind
from app.projects.models import Project, Prompt, Response

MAX_CLAIM_TRIES = 8


def _live(now):
    """Assignments that hold a slot: done, or leased and not expired."""
    return or_(
        Assignment.status == AssignmentStatus.done,
        and_(Assignment.status == AssignmentStatus.leased, Assignment.expires_at > now),
    )


def _holds_prompt_for(user_id: int, now):
    """This user's assignment that rules the prompt out for them (done, skipped or live)."""
    return and_(
        Assignment.user_id == user_id,
        or_(Assignment.status != AssignmentStatus.leased, Assignment.expires_at > now),
    )


def _task(
    project: Project, assignment: Assignment, messages: list[Any], texts: dict[int, str]
) -> Task:
    return Task(
        assignment_id=assignment.id,
        project_id=project.id,
        prompt_id=assignment.prompt_id,
        kind=project.kind,
        instructions=project.instructions,
        messages=messages,
        responses=[TaskResponse(id=rid, text=texts[rid]) for rid in assignment.response_ids],
        rating_scale=project.rating_scale,
        criteria=project.criteria,
        expires_at=assignment.expires_at,
    )


def _resume(session: Session, project: Project, user: User, now: datetime) -> Task | None:
    """The labeler's live lease in this project, as a task."""
    lease = session.scalar(
        select(Assignment)
        .where(
            Assignment.project_id == project.id,
            Assignment.user_id == user.id,
            Assignment.status == AssignmentStatus.leased,
            Assignment.expires_at > now,
        )
        .order_by(Assignment.id)
        .limit(1)
    )
    if lease is None:
        return None
    messages = session.scalar(select(Prompt.messages).where(Prompt.id == lease.prompt_id))
    texts = dict(
        session.execute(
            select(Response.id, Response.text).where(Response.id.in_(lease.response_ids))
        ).all()
    )
    return _task(project, lease, messages or [], texts)


def _open_for(project: Project, user: User, now: datetime) -> list[Any]:
    """WHERE conditions on Prompt: prompts of the project this labeler may still be given."""
    taken = (
        select(func.count())
        .where(Assignment.prompt_id == Prompt.id, _live(now))
        .correlate(Prompt)
        .scalar_subquery()
    )
    wanted = project.overlap + Prompt.extra_labels
    return [
        Prompt.project_id == project.id,
        Prompt.is_gold.is_(False),  # gold items are served by `gold.pick_gold`
        Prompt.retired_at.is_(None),
        Prompt.done_count < wanted,
        ~exists().where(Assignment.prompt_id == Prompt.id, _holds_prompt_for(user.id, now)),
        taken < wanted,
        *_has_candidates(project),
    ]


def _serving_order(project: Project) -> list[Any]:
    """ORDER BY of the prompts a labeler may get: import order, or with order=uncertainty the
    prompts whose candidates the reward model separates least first (unscored ones last)."""
    if project.order == "uncertainty":
        return [Prompt.priority.asc().nulls_last(), Prompt.id]
    return [Prompt.id]


def _has_candidates(project: Project) -> list[Any]:
    """WHERE conditions on Prompt: enough responses to be served (a generation run may still be
    adding them): K to rank (or 2 that came with the import), one to rate."""
    needed = min_responses(project)
    if needed == 0:
        return []
    count = (
        select(func.count())
        .where(Response.prompt_id == Prompt.id)
        .correlate(Prompt)
        .scalar_subquery()
    )
    if project.kind != ProjectKind.ranking:
        return [count >= needed]
    imported = (
        select(func.count())
        .where(Response.prompt_id == Prompt.id, Response.sample_index.is_(None))
        .correlate(Prompt)
        .scalar_subquery()
    )
    return [or_(count >= needed, imported >= 2)]


def _lock_candidate(
    session: Session, project: Project, user: User, now: datetime, tried: list[int]
) -> Row[int, list[Any]] | None:
    """The first prompt this labeler may get, locked (PostgreSQL skips rows others hold)."""
    query = (
        select(Prompt.id, Prompt.messages)
        .where(*_open_for(project, user, now))
        .order_by(*_serving_order(project))
        .limit(1)
        .with_for_update(of=Prompt, skip_locked=True)
    )
    if tried:
        query = query.where(Prompt.id.not_in(tried))
    return session.execute(query).first()


def _recheck(
    session: Session, prompt_id: int, project: Project, user: User, now: datetime
) -> tuple[bool, Assignment | None]:
    """Under the prompt's lock, in a fresh statement that sees concurrent commits: is a slot
    still free for this labeler? Also returns their own (expired) assignment row, if any."""
    taken = select(func.count()).where(Assignment.prompt_id == prompt_id, _live(now))
    mine = select(Assignment.id).where(
        Assignment.prompt_id == prompt_id, Assignment.user_id == user.id
    )
    count, mine_id = session.execute(select(taken.scalar_subquery(), mine.scalar_subquery())).one()
    assignment = session.get(Assignment, mine_id) if mine_id is not None else None
    if assignment is not None and (
        assignment.status != AssignmentStatus.leased or assignment.expires_at > now
    ):
        return False, assignment
    extra, retired_at = session.execute(
        select(Prompt.extra_labels, Prompt.retired_at).where(Prompt.id == prompt_id)
    ).one()
    return retired_at is None and count < project.overlap + extra, assignment


def next_task(*, session: Session, project: Project, user: User) -> Task | None:
    """The labeler's live lease in this project, or a newly leased prompt, or None."""
    project_service.ensure_can_label(session=session, project=project, user=user)
    if project.is_archived:
        return None
    if gold.hold_of(session=session, project=project, user_id=user.id, record=True):
        session.commit()
        return None
    now = utcnow()
    task = _resume(session, project, user, now)
    if task is not None:
        session.commit()
        return task
    leased = gold.lease_gold(
        session, project=project, user_id=user.id, now=now, real_open=_open_for(project, user, now)
    )
    if leased is not None:
        task = _resume(session, project, user, now)
        session.commit()
        return task
    tried: list[int] = []
    for _ in range(MAX_CLAIM_TRIES):
        candidate = _lock_candidate(session, project, user, now, tried)
        if candidate is None:
            break
        prompt_id, messages = candidate
        free, assignment = _recheck(session, prompt_id, project, user, now)
        if not free:
            tried.append(prompt_id)
            continue
        texts = dict(
            session.execute(
                select(Response.id, Response.text).where(Response.prompt_id == prompt_id)
            ).all()
        )
        expires = now + timedelta(seconds=project.lease_seconds)
        if assignment is None:
            shown = [] if project.kind == ProjectKind.demonstration else list(texts)
            assignment = Assignment(
                project_id=project.id,
                prompt_id=prompt_id,
                user_id=user.id,
                response_ids=random.sample(shown, min(project.k, len(shown))),
                expires_at=expires,
            )
            session.add(assignment)
        else:  # the labeler's own expired lease: renew it
            assignment.expires_at = expires
            assignment.created_at = now
        session.flush()
        task = _task(project, assignment, messages, texts)
        session.commit()
        return task
    session.commit()
    return None


def _own_assignment(session: Session, assignment_id: int, user: User) -> Assignment:
    assignment = session.get(Assignment, assignment_id)
    if assignment is None:
        raise NotFound(f"no assignment {assignment_id}")
    if assignment.user_id != user.id:
        raise Forbidden(f"assignment {assignment_id} belongs to another labeler")
    return assignment


def _lock(session: Session, assignment: Assignment) -> Assignment:
    """Lock the prompt, then the assignment (the one order used everywhere), and reload."""
    session.execute(select(Prompt.id).where(Prompt.id == assignment.prompt_id).with_for_update())
    session.refresh(assignment, with_for_update=True)
    return assignment


def _ensure_open(session: Session, assignment: Assignment, project: Project) -> None:
    if assignment.status == AssignmentStatus.done:
        raise Conflict(f"assignment {assignment.id} was submitted already")
    if assignment.status == AssignmentStatus.skipped:
        raise Conflict(f"assignment {assignment.id} was skipped")
    now = utcnow()
    if assignment.expires_at <= now:
        # A late submit is taken only while the slot is still free.
        others = session.scalar(
            select(func.count()).where(
                Assignment.prompt_id == assignment.prompt_id,
                Assignment.id != assignment.id,
                _live(now),
            )
        )
        extra, retired_at = session.execute(
            select(Prompt.extra_labels, Prompt.retired_at).where(Prompt.id == assignment.prompt_id)
        ).one()
        if retired_at is not None:
            raise Gone(
                f"the lease of assignment {assignment.id} expired and the prompt was retired; "
                "take the next task"
            )
        if (others or 0) >= project.overlap + extra:
            raise Gone(
                f"the lease of assignment {assignment.id} expired at "
                f"{assignment.expires_at:%Y-%m-%d %H:%M:%S} UTC and the prompt went to "
                "another labeler; keep your text and take the next task"
            )


def find_by_key(*, session: Session, user: User, key: str) -> Annotation | None:
    """The annotation this user already stored under an Idempotency-Key."""
    return session.scalar(
        select(Annotation).where(Annotation.user_id == user.id, Annotation.idempotency_key == key)
    )


def submit(
    *,
    session: Session,
    assignment_id: int,
    user: User,
    body: AnnotationIn,
    idempotency_key: str | None = None,
) -> tuple[Annotation, bool]:
    """Store an annotation; returns (annotation, created). A replayed key returns the first."""
    if idempotency_key is not None:
        if len(idempotency_key) > 200:
            raise Invalid("Idempotency-Key is longer than 200 characters", field="Idempotency-Key")
        first = find_by_key(session=session, user=user, key=idempotency_key)
        if first is not None:
            return first, False
    assignment = _own_assignment(session, assignment_id, user)
    project = session.get(Project, assignment.project_id)
    assert project is not None
    payload, flags = validation.validate(project=project, assignment=assignment, body=body)
    _lock(session, assignment)
    _ensure_open(session, assignment, project)
    now = utcnow()
    annotation = Annotation(
        project_id=project.id,
        prompt_id=assignment.prompt_id,
        assignment_id=assignment.id,
        user_id=user.id,
        kind=project.kind,
        payload=payload,
        flags=flags,
        idempotency_key=idempotency_key,
        duration_ms=body.duration_ms,
        created_at=now,
    )
    session.add(annotation)
    assignment.status = AssignmentStatus.done
    assignment.completed_at = now
    session.execute(
        update(Prompt)
        .where(Prompt.id == assignment.prompt_id)
        .values(done_count=Prompt.done_count + 1)
    )
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        first = find_by_key(session=session, user=user, key=idempotency_key or "")
        if first is None:
            raise
        return first, False
    return annotation, True


def skip(*, session: Session, assignment_id: int, user: User, reason: str) -> Assignment:
    """Give a leased prompt back with a reason; this labeler will not get it again."""
    if not reason.strip():
        raise Invalid("a skip needs a reason", field="reason")
    assignment = _own_assignment(session, assignment_id, user)
    _lock(session, assignment)
    if assignment.status != AssignmentStatus.leased:
        raise Conflict(f"assignment {assignment_id} is {assignment.status}, not leased")
    assignment.status = AssignmentStatus.skipped
    assignment.skip_reason = reason.strip()
    assignment.completed_at = utcnow()
    session.commit()
    return assignment


def progress(*, session: Session, project: Project, user: User) -> Progress:
    """What this labeler did in the project and how many prompts they could still get."""
    now = utcnow()
    counts = dict(
        session.execute(
            select(Assignment.status, func.count())
            .where(Assignment.project_id == project.id, Assignment.user_id == user.id)
            .group_by(Assignment.status)
        ).all()
    )
    available = session.scalar(select(func.count()).where(*_open_for(project, user, now)))
    hold = gold.hold_of(session=session, project=project, user_id=user.id)
    return Progress(
        project_id=project.id,
        done=counts.get(AssignmentStatus.done, 0),
        skipped=counts.get(AssignmentStatus.skipped, 0),
        available=0 if hold else available or 0,
        held=hold.reason if hold else None,
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
    limit: int = 100,
    offset: int = 0,
) -> list[Annotation]:
    """Annotations, newest first, filtered."""
    query = _newest_first(
        Annotation, limit, offset, user_id=user_id, project_id=project_id, prompt_id=prompt_id
    )
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
