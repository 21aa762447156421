"""Storing annotations and skips, in Core statements on one Connection (sync or via run_sync).

PostgreSQL stores an on-time annotation in one statement (`store_statement`). Everything else
(late submits, conflicts, skips, and every write on SQLite) takes the careful path: lock the
prompt, then the assignment (the one order used everywhere), check, write.
"""

from datetime import datetime
from functools import cache
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Boolean, Connection, Row, bindparam, func, insert, literal, select, update
from sqlalchemy.exc import IntegrityError

from app import precompiled
from app.auth.models import User
from app.errors import Conflict, Forbidden, Gone, Invalid, NotFound
from app.labeling import exclusions, leasing, public, validation
from app.labeling.lease_rules import labels_wanted, live
from app.labeling.models import Annotation, AssignmentStatus
from app.labeling.models import Assignment as A
from app.labeling.public import Kind
from app.labeling.remembered import recall
from app.labeling.schemas import AnnotationIn
from app.memory import Memory
from app.projects.models import Project, Prompt
from app.projects.service import LABELING_SETTINGS, may_label
from app.prompts.models import PromptAction, PromptActionKind

MAX_KEY = 200
ANNOTATION_COLUMNS = tuple(Annotation.__table__.c)


def check_key(idempotency_key: str | None) -> None:
    """Invalid when an Idempotency-Key is too long."""
    if idempotency_key is not None and len(idempotency_key) > MAX_KEY:
        raise Invalid(
            f"Idempotency-Key is longer than {MAX_KEY} characters", field="Idempotency-Key"
        )


def find_by_key(conn: Connection, *, user_id: int, key: str, assignment_id: int) -> Row[Any] | None:
    """The annotation this user already stored under an Idempotency-Key for this assignment.
    Invalid when the key was used for another assignment: a replay is the same request again,
    and a key sent with a different assignment is the client's mistake."""
    first = conn.execute(
        select(*ANNOTATION_COLUMNS).where(
            Annotation.user_id == user_id, Annotation.idempotency_key == key
        )
    ).first()
    if first is not None and first.assignment_id != assignment_id:
        used, this = (
            public.encode(Kind.assignment, a) for a in (first.assignment_id, assignment_id)
        )
        raise Invalid(  # in the ids the labeler's tasks showed
            f"Idempotency-Key {key!r} was used for assignment {used} already; "
            f"a submit of assignment {this} needs a key of its own",
            field="Idempotency-Key",
        )
    return first


def _may_label(project_id: Any) -> Any:
    """Whether the labeler (p_user_id, p_is_admin) may label the project: checked by every
    statement that reads or writes an assignment for a submit or a skip, so a labeler taken off
    a members-only project stores nothing more, not even on a lease they still hold."""
    return may_label(project_id, bindparam("p_user_id"), bindparam("p_is_admin", type_=Boolean()))


@cache
def _assignment_query(with_key: bool) -> Any:
    replay: Any = literal(None)
    if with_key:
        replay = (
            select(Annotation.id)
            .where(
                Annotation.user_id == bindparam("p_user_id"),
                Annotation.idempotency_key == bindparam("p_key"),
            )
            .scalar_subquery()
        )
    return (
        select(
            A.id,
            A.user_id,
            A.prompt_id,
            A.status,
            A.response_ids,
            A.expires_at,
            Project.id.label("project_id"),
            *LABELING_SETTINGS,
            _may_label(Project.id).label("allowed"),
            replay.label("replay"),
        )
        .join(Project, Project.id == A.project_id)
        .where(A.id == bindparam("p_assignment_id"))
    )


def assignment_for_submit(
    conn: Connection, *, assignment_id: int, user: User, idempotency_key: str | None
) -> Row[Any]:
    """One statement: the assignment with its project's settings, whether the labeler may label
    it (`allowed`) and, for a key, the id of the labeler's annotation stored under it already
    (`replay`). NotFound or Forbidden (another labeler's assignment, whatever the key; no
    longer a member)."""
    parameters = {"p_assignment_id": assignment_id, "p_user_id": user.id}
    parameters |= {"p_is_admin": user.is_admin}
    if idempotency_key is not None:
        parameters["p_key"] = idempotency_key
    query = _assignment_query(idempotency_key is not None)
    row = precompiled.execute(conn, query, parameters).first()
    if row is None:
        raise NotFound("no such assignment")
    if row.user_id != user.id:
        raise Forbidden("this assignment belongs to another labeler")
    return leasing.check_allowed(row, row.project_id)


def _values(
    row: Any, user_id: int, payload: Any, flags: Any, body: AnnotationIn, key: str | None, now: Any
) -> dict[str, Any]:
    return {
        "project_id": row.project_id,
        "prompt_id": row.prompt_id,
        "assignment_id": row.id,
        "user_id": user_id,
        "kind": row.kind,
        "payload": payload,
        "flags": flags,
        "source": "labeler",
        "idempotency_key": key,
        "duration_ms": body.duration_ms,
        "created_at": now,
    }


STORED_FIELDS = (
    "project_id",
    "user_id",
    "kind",
    "payload",
    "flags",
    "source",
    "idempotency_key",
    "duration_ms",
    "created_at",
)


@cache
def store_statement() -> Any:
    """PostgreSQL, one statement: mark an on-time leased assignment done, count it on its
    prompt and insert the annotation; no row when the lease is not live (careful path).
    Built once; parameters (named p_…, apart from the written columns): p_assignment_id,
    p_prompt_id, p_now, p_is_admin and p_<field> for each of STORED_FIELDS (p_user_id is the
    labeler); no row either when the assignment is not of that prompt and project, or the
    labeler may not label the project (no longer a member)."""
    columns = Annotation.__table__.c
    now = bindparam("p_now", type_=A.expires_at.type)
    done = (
        update(A)
        .where(
            A.id == bindparam("p_assignment_id"),
            A.user_id == bindparam("p_user_id"),
            A.project_id == bindparam("p_project_id"),
            A.prompt_id == bindparam("p_prompt_id"),
            A.status == AssignmentStatus.leased,
            A.expires_at > now,
            _may_label(A.project_id),
        )
        .values(status=AssignmentStatus.done, completed_at=now)
        .returning(A.id, A.prompt_id)
        .cte("done")
    )
    counted = (
        update(Prompt)
        .where(Prompt.id.in_(select(done.c.prompt_id)))
        .values(done_count=Prompt.done_count + 1)
        .returning(Prompt.id)
        .cte("counted")
    )
    fields = [bindparam(f"p_{name}", type_=columns[name].type) for name in STORED_FIELDS]
    source = select(done.c.id, done.c.prompt_id, *fields).where(
        select(func.count()).select_from(counted).scalar_subquery() == 1
    )
    return (
        insert(Annotation)
        .from_select(["assignment_id", "prompt_id", *STORED_FIELDS], source)
        .returning(*ANNOTATION_COLUMNS)
    )


@cache
def _lock_queries() -> tuple[Any, Any]:
    prompt = (
        select(Prompt.extra_labels, Prompt.retired_at)
        .where(Prompt.id == bindparam("p_prompt_id"))
        .with_for_update()
    )
    assignment = select(A).where(A.id == bindparam("p_assignment_id")).with_for_update()
    return prompt, assignment


def _lock(conn: Connection, assignment_id: int, prompt_id: int) -> tuple[Row[Any], Row[Any]]:
    """Lock the prompt, then the assignment; returns (assignment, prompt's label settings)."""
    prompt_query, assignment_query = _lock_queries()
    prompt = conn.execute(prompt_query, {"p_prompt_id": prompt_id}).one()
    row = conn.execute(assignment_query, {"p_assignment_id": assignment_id}).first()
    assert row is not None
    return row, prompt


@cache
def _releases_query() -> Any:
    return select(PromptAction.detail).where(
        PromptAction.prompt_id == bindparam("p_prompt_id"),
        PromptAction.action == PromptActionKind.release,
        PromptAction.created_at >= bindparam("p_leased", type_=PromptAction.created_at.type),
    )


def _released(conn: Connection, assignment: Any) -> bool:
    """Whether an admin ended this lease (`prompts.service.release_lease`: the lease expires
    at that moment, and the prompt's log row names the assignment). Only a release logged since
    the lease began counts: a lease (and a lease again of the same assignment) sets created_at."""
    parameters = {"p_prompt_id": assignment.prompt_id, "p_leased": assignment.created_at}
    details = conn.execute(_releases_query(), parameters).scalars()
    return any(detail.get("assignment_id") == assignment.id for detail in details)


def _ensure_open(
    conn: Connection, assignment: Any, prompt: Any, overlap: int, now: datetime
) -> None:
    """Conflict or Gone unless the assignment may still be submitted. An expired lease is
    taken late while its slot is free, unless an admin released it (the admin took the prompt
    back: the label is refused whatever the slot), or the labeler is out of the project (an
    exclusion or a hold ended their leases: `exclusions.settle`, so only a late submit needs
    the check)."""
    if assignment.status == AssignmentStatus.done:
        raise Conflict("this assignment was submitted already")
    if assignment.status == AssignmentStatus.skipped:
        raise Conflict("this assignment was skipped")
    if assignment.expires_at <= now:
        if exclusions.is_out(conn, user_id=assignment.user_id, project_id=assignment.project_id):
            raise Forbidden("you are out of this project for now; this label was not stored")
        if _released(conn, assignment):
            raise Conflict(
                "your lease of this assignment was released by an admin: this "
                "label was not stored; take the next task"
            )
        # A late submit is taken only while the slot is still free.
        others = conn.scalar(
            select(func.coalesce(func.sum(A.slots), 0)).where(
                A.prompt_id == assignment.prompt_id, A.id != assignment.id, live(now)
            )
        )
        if prompt.retired_at is not None:
            raise Gone(
                "the lease of this assignment expired and the prompt was retired; "
                "take the next task"
            )
        if (others or 0) >= labels_wanted(overlap, prompt.extra_labels):
            raise Gone(
                "the lease of this assignment expired at "
                f"{assignment.expires_at:%Y-%m-%d %H:%M:%S} UTC and the prompt went to "
                "another labeler; keep your text and take the next task"
            )


class KeyTaken(Exception):
    """A concurrent request stored this Idempotency-Key first: replay it."""


@cache
def _careful_statements() -> tuple[Any, Any, Any]:
    store = insert(Annotation).returning(*ANNOTATION_COLUMNS)
    done = (
        update(A)
        .where(A.id == bindparam("p_assignment_id"))
        .values(
            status=AssignmentStatus.done, completed_at=bindparam("p_now", type_=A.completed_at.type)
        )
    )
    counted = (
        update(Prompt)
        .where(Prompt.id == bindparam("p_prompt_id"))
        .values(done_count=Prompt.done_count + 1)
    )
    return store, done, counted


def _store_carefully(conn: Connection, row: Any, values: dict[str, Any], now: datetime) -> Row:
    assignment, prompt = _lock(conn, row.id, row.prompt_id)
    _ensure_open(conn, assignment, prompt, row.overlap, now)
    store, done, counted = _careful_statements()
    stored = conn.execute(store, values).one()
    conn.execute(done, {"p_assignment_id": row.id, "p_now": now})
    conn.execute(counted, {"p_prompt_id": row.prompt_id})
    return stored


def submit(
    conn: Connection,
    *,
    assignment_id: int,
    user: User,
    body: AnnotationIn,
    idempotency_key: str | None,
    now: datetime,
    careful: bool,
    memory: Memory | None = None,
) -> tuple[Row[Any], bool] | None:
    """Store an annotation; returns (annotation, created), a replayed key giving the first.
    The body names responses by the public ids its task showed (`app.labeling.public`).

    `careful=False` on PostgreSQL (an autocommit connection): the one-statement path, or None
    when the lease is not live and the careful path must decide. A lease this process handed
    out (`remembered.recall` from `memory`) is stored without reading the assignment first.
    `careful=True`: inside a transaction (always on SQLite); KeyTaken when a concurrent request
    took the key.
    """
    check_key(idempotency_key)
    row = None if careful or memory is None else recall(memory, assignment_id, user.id)
    if row is None:
        row = assignment_for_submit(
            conn, assignment_id=assignment_id, user=user, idempotency_key=idempotency_key
        )
    if row.replay is not None:
        first = find_by_key(
            conn, user_id=user.id, key=idempotency_key or "", assignment_id=assignment_id
        )
        assert first is not None
        return first, False
    # Checked against the public ids the task showed, stored with row ids.
    shown = public.response_map(row.response_ids)
    project: Any = row  # the project's settings come with the assignment
    assignment: Any = SimpleNamespace(response_ids=list(shown))
    payload, flags = public.to_rows(
        *validation.validate(project=project, assignment=assignment, body=body), shown
    )
    values = _values(row, user.id, payload, flags, body, idempotency_key, now)
    try:
        if careful or conn.dialect.name != "postgresql":
            return _store_carefully(conn, row, values, now), True
        parameters = {f"p_{name}": values[name] for name in STORED_FIELDS}
        parameters |= {"p_assignment_id": row.id, "p_prompt_id": row.prompt_id, "p_now": now}
        parameters["p_is_admin"] = user.is_admin
        stored = precompiled.execute(conn, store_statement(), parameters).first()
    except IntegrityError:
        if idempotency_key is None:
            raise
        if careful or conn.dialect.name != "postgresql":
            raise KeyTaken() from None
        stored = None
    if stored is None and idempotency_key is not None:
        first = find_by_key(conn, user_id=user.id, key=idempotency_key, assignment_id=assignment_id)
        if first is not None:
            return first, False
    return (stored, True) if stored is not None else None


@cache
def _skip_query() -> Any:
    return (
        select(
            A.user_id,
            A.prompt_id,
            A.project_id,
            Project.name,
            _may_label(Project.id).label("allowed"),
        )
        .join(Project, Project.id == A.project_id)
        .where(A.id == bindparam("p_assignment_id"))
    )


def give_back(conn: Connection, *, assignment_id: int, user: User, now: datetime) -> bool:
    """End the labeler's own live lease now, without a skip: the prompt is free for anyone,
    them included (a labeling page gives back the task it held ready when it is left).
    False when the lease was not live."""
    result = conn.execute(
        update(A)
        .where(
            A.id == assignment_id,
            A.user_id == user.id,
            A.status == AssignmentStatus.leased,
            A.expires_at > now,
        )
        .values(expires_at=now)
    )
    return bool(result.rowcount)


def skip(conn: Connection, *, assignment_id: int, user: User, reason: str, now: datetime) -> Row:
    """Give a leased prompt back with a reason (inside a transaction); returns the assignment."""
    if not reason.strip():
        raise Invalid("a skip needs a reason", field="reason")
    row = conn.execute(
        _skip_query(),
        {"p_assignment_id": assignment_id, "p_user_id": user.id, "p_is_admin": user.is_admin},
    ).first()
    if row is None:
        raise NotFound("no such assignment")
    if row.user_id != user.id:
        raise Forbidden("this assignment belongs to another labeler")
    leasing.check_allowed(row, row.project_id)
    assignment, _prompt = _lock(conn, assignment_id, row.prompt_id)
    if assignment.status != AssignmentStatus.leased:
        raise Conflict(f"this assignment is {assignment.status}, not leased")
    return conn.execute(
        update(A)
        .where(A.id == assignment_id)
        .values(status=AssignmentStatus.skipped, skip_reason=reason.strip(), completed_at=now)
        .returning(*A.__table__.c)
    ).one()
