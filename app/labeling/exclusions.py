"""Who is out of a project: excluded by an admin (one project, or every project) or held by
the automatic gold-accuracy hold (`gold.hold_of`). Both share one rule:

- the labeler gets no more tasks there, and their open leases end at once (a submit on one is
  refused);
- their labels stop counting toward overlap, done counts, progress and "complete"
  (`Assignment.counted`), so their prompts are served again until each has `overlap` counted
  labels; counting them in again restores all of it.

Excluded labelers also drop out of every aggregate (`labels.live_rows` callers pass
`excluded_user_ids`). `settle` is the one place that derives `counted` from the exclusions and
holds in force, and for a judge's labels from the project's `judge_accepts`
(`lease_rules.judge_accepted`); every change to any of them calls it.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, exists, func, not_, or_, select, update
from sqlalchemy.orm import Session

from app.auth.models import User
from app.base import utcnow
from app.errors import Conflict, NotFound
from app.labeling.lease_rules import JUDGE_SOURCE, judge_accepted
from app.labeling.models import (
    Assignment,
    AssignmentStatus,
    Exclusion,
    LabelerHold,
)
from app.projects.models import Project, Prompt

Db = Session | Connection


def applies(user_id: Any, project_id: Any) -> Any:
    """WHERE on Exclusion: an exclusion of this labeler that covers this project."""
    return and_(
        Exclusion.user_id == user_id,
        or_(Exclusion.project_id == project_id, Exclusion.project_id.is_(None)),
    )


def is_excluded(db: Db, *, user_id: int, project_id: int) -> bool:
    """An admin excluded this labeler from this project (or from every project)."""
    return bool(db.scalar(select(exists().where(applies(user_id, project_id)))))


def is_out(db: Db, *, user_id: int, project_id: int) -> bool:
    """Excluded from this project, or held in it (an unreleased `LabelerHold`)."""
    held = exists().where(
        LabelerHold.user_id == user_id,
        LabelerHold.project_id == project_id,
        LabelerHold.released_at.is_(None),
    )
    return bool(db.scalar(select(or_(exists().where(applies(user_id, project_id)), held))))


EXCLUDED_REASON = "an admin excluded you from this project; your labels here no longer count"


def excluded_user_ids(*, session: Db, project_id: int) -> set[int]:
    """Labelers excluded from this project (its own and global exclusions)."""
    query = select(Exclusion.user_id).where(
        or_(Exclusion.project_id == project_id, Exclusion.project_id.is_(None))
    )
    return set(session.scalars(query))


def list_exclusions(*, session: Session, project_id: int) -> list[Exclusion]:
    """Exclusions that apply to the project, global ones included, oldest first."""
    return list(
        session.scalars(
            select(Exclusion)
            .where(or_(Exclusion.project_id == project_id, Exclusion.project_id.is_(None)))
            .order_by(Exclusion.id)
        )
    )


def settle(db: Db, *, user_id: int, project_id: int | None, now: datetime | None = None) -> None:
    """Make the labeler's assignments in the project (every project: None) agree with the
    exclusions and holds in force: open leases of a labeler who is out end now, done ones
    count only while they are in (a judge's, only while the project accepts its verdict, and
    filling the project's `judge_fills` slots), and the prompts' done counts follow."""
    now = now or utcnow()
    out = or_(
        exists().where(applies(user_id, Assignment.project_id)),
        exists().where(
            LabelerHold.user_id == user_id,
            LabelerHold.project_id == Assignment.project_id,
            LabelerHold.released_at.is_(None),
        ),
    )
    # A judge's label counts only while the project accepts its verdict (`judge_accepted`).
    counts = and_(not_(out), judge_accepted())
    mine = [Assignment.user_id == user_id]
    if project_id is not None:
        mine.append(Assignment.project_id == project_id)
    db.execute(
        update(Assignment)
        .where(*mine, Assignment.status == AssignmentStatus.leased, Assignment.expires_at > now)
        .where(out)
        .values(expires_at=now)
        .execution_options(synchronize_session=False)
    )
    changed = list(
        db.execute(
            update(Assignment)
            .where(*mine, Assignment.status == AssignmentStatus.done)
            .where(Assignment.counted == not_(counts))  # counted or not, against the rule
            .values(counted=counts)
            .returning(Assignment.prompt_id)
            .execution_options(synchronize_session=False)
        ).scalars()
    )
    # A judge's label fills the project's `judge_fills` slots; a person's one.
    fills = select(Project.judge_fills).where(Project.id == Assignment.project_id)
    judge = exists().where(User.id == Assignment.user_id, User.source == JUDGE_SOURCE)
    changed += db.execute(
        update(Assignment)
        .where(*mine, Assignment.status == AssignmentStatus.done, judge)
        .where(Assignment.slots != fills.scalar_subquery())
        .values(slots=fills.scalar_subquery())
        .returning(Assignment.prompt_id)
        .execution_options(synchronize_session=False)
    ).scalars()
    if changed:
        recount(db, sorted(set(changed)))


def recount(db: Db, prompt_ids: list[int]) -> None:
    """Set these prompts' done counts to the slots their counted, done assignments fill."""
    counted = (
        select(func.coalesce(func.sum(Assignment.slots), 0))
        .where(
            Assignment.prompt_id == Prompt.id,
            Assignment.status == AssignmentStatus.done,
            Assignment.counted.is_(True),
        )
        .correlate(Prompt)
        .scalar_subquery()
    )
    db.execute(
        update(Prompt)
        .where(Prompt.id.in_(prompt_ids))
        .values(done_count=counted)
        .execution_options(synchronize_session=False)
    )


@dataclass(frozen=True, slots=True)
class Effect:
    """What excluding a labeler would do: labels that stop counting, leases that end."""

    email: str
    labels: int
    open_leases: int


def preview(*, session: Session, user_id: int, project_id: int | None) -> Effect:
    """What `exclude_labeler` would change; NotFound or Conflict as it would raise."""
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"no user {user_id}", field="user_id")
    if session.scalar(_same(user_id, project_id)) is not None:
        raise Conflict(f"{user.email} is excluded already", field="user_id")
    mine = [Assignment.user_id == user_id]
    if project_id is not None:
        mine.append(Assignment.project_id == project_id)
    now = utcnow()
    labels, leases = session.execute(
        select(
            func.count().filter(
                Assignment.status == AssignmentStatus.done, Assignment.counted.is_(True)
            ),
            func.count().filter(
                Assignment.status == AssignmentStatus.leased, Assignment.expires_at > now
            ),
        ).where(*mine)
    ).one()
    return Effect(user.email, labels, leases)


def exclude_labeler(
    *,
    session: Session,
    user_id: int,
    project_id: int | None,
    reason: str = "",
    created_by: User | None = None,
) -> Exclusion:
    """Take a labeler out of one project (or every project: project_id=None): see the module."""
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"no user {user_id}", field="user_id")
    if session.scalar(_same(user_id, project_id)) is not None:
        raise Conflict(f"{user.email} is excluded already", field="user_id")
    exclusion = Exclusion(
        user_id=user_id,
        project_id=project_id,
        reason=reason,
        created_by_id=created_by.id if created_by else None,
    )
    session.add(exclusion)
    session.flush()
    settle(session, user_id=user_id, project_id=project_id)
    return exclusion


def include_labeler(*, session: Session, user_id: int, project_id: int | None) -> None:
    """Count a labeler in again where they were excluded (one project, or all: None)."""
    exclusion = session.get(Exclusion, session.scalar(_same(user_id, project_id)) or 0)
    if exclusion is None:
        user = session.get(User, user_id)
        who = user.email if user else f"user {user_id}"
        raise NotFound(f"{who} is not excluded there", field="user_id")
    _remove(session, exclusion)


def remove_exclusion(*, session: Session, exclusion_id: int) -> None:
    """Count the labeler in again (the exclusion row goes; annotations never moved)."""
    exclusion = session.get(Exclusion, exclusion_id)
    if exclusion is None:
        raise NotFound(f"no exclusion {exclusion_id}")
    _remove(session, exclusion)


def _remove(session: Session, exclusion: Exclusion) -> None:
    user_id, project_id = exclusion.user_id, exclusion.project_id
    session.delete(exclusion)
    session.flush()
    settle(session, user_id=user_id, project_id=project_id)


def _same(user_id: int, project_id: int | None) -> Any:
    where = (
        Exclusion.project_id.is_(None) if project_id is None else Exclusion.project_id == project_id
    )
    return select(Exclusion.id).where(Exclusion.user_id == user_id, where).order_by(Exclusion.id)
