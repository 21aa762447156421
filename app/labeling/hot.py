"""The labeling hot path on the asyncio engine: next task, submit, skip.

Each call holds one pooled connection at a time and never waits for a thread: the Core
statements of `leasing` and `submitting` run on the asyncio connection (`run_sync` drives them
through SQLAlchemy's greenlet bridge, no worker thread). PostgreSQL: one statement to lease
(the project's settings read in it), one to read the assignment and one to store an
annotation. SQLite: serialised transactions.
"""

from types import SimpleNamespace
from typing import Any

from sqlalchemy import Connection, Row

from app.auth.models import User
from app.base import utcnow
from app.db_async import (
    get_async_engine,
    is_sqlite,
    read_connection,
    single_statement,
    transaction,
)
from app.labeling import lease_statement, leasing, public, submitting
from app.labeling.public import Kind
from app.labeling.schemas import AnnotationIn, Task
from app.memory import Memory


def _next_on(conn: Connection, project_id: int, user: User, memory: Memory) -> Task | None:
    return leasing.lease(conn, project_id=project_id, user=user, now=utcnow(), memory=memory)


async def next_task(*, project_id: int, user: User, memory: Memory) -> Task | None:
    """The labeler's live lease in the project, or a newly leased prompt, or None."""
    async with single_statement(get_async_engine()) as conn:
        return await conn.run_sync(_next_on, project_id, user, memory)


async def submit(
    *,
    assignment_id: int,
    user: User,
    body: AnnotationIn,
    idempotency_key: str | None,
    memory: Memory,
) -> tuple[Row[Any], bool]:
    """Store an annotation; returns (annotation, created). A replayed key returns the first.
    `assignment_id` is the public id the labeler's task showed, as in `skip`."""
    engine = get_async_engine()
    args: dict[str, Any] = {
        "assignment_id": public.decode(Kind.assignment, assignment_id),
        "user": user,
        "body": body,
        "idempotency_key": idempotency_key,
        "memory": memory,
    }
    if not is_sqlite(engine):
        async with single_statement(engine) as conn:
            result = await conn.run_sync(_submit_on, args, False)
        if result is not None:
            return result
    try:
        async with transaction(engine) as conn:
            result = await conn.run_sync(_submit_on, args, True)
    except submitting.KeyTaken:
        async with read_connection(engine) as conn:
            first = await conn.run_sync(_find, user.id, idempotency_key or "", assignment_id)
        return first, False
    assert result is not None
    return result


def _submit_on(
    conn: Connection, args: dict[str, Any], careful: bool
) -> tuple[Row[Any], bool] | None:
    return submitting.submit(conn, now=utcnow(), careful=careful, **args)


def _find(conn: Connection, user_id: int, key: str, assignment_id: int) -> Row[Any]:
    first = submitting.find_by_key(conn, user_id=user_id, key=key, assignment_id=assignment_id)
    assert first is not None
    return first


async def skip(*, assignment_id: int, user: User, reason: str) -> Row[Any]:
    """Give a leased prompt back with a reason; this labeler will not get it again."""
    assignment_id = public.decode(Kind.assignment, assignment_id)
    async with transaction(get_async_engine()) as conn:
        return await conn.run_sync(
            lambda c: submitting.skip(
                c, assignment_id=assignment_id, user=user, reason=reason, now=utcnow()
            )
        )


def _warm(conn: Connection) -> None:
    # A lease and a store for a project and an assignment that do not exist: nothing is
    # written, both statements are compiled and cached on the engine.
    now = utcnow()
    nobody = SimpleNamespace(id=-1, is_admin=False)
    parameters = lease_statement.lease_parameters(project_id=-1, user=nobody, now=now)
    conn.execute(lease_statement.lease_statement("ranking", "id"), parameters)
    values: dict[str, Any] = {f"p_{name}": None for name in submitting.STORED_FIELDS}
    values |= {"p_assignment_id": -1, "p_prompt_id": -1, "p_user_id": -1, "p_now": now}
    values |= {"p_is_admin": False}
    values |= {"p_created_at": now}
    values |= {"p_payload": {}, "p_flags": {}}
    conn.execute(submitting.store_statement(), values)


async def warm_up() -> None:
    """Open the asyncio engine and compile the hot statements before the first request."""
    engine = get_async_engine()
    if is_sqlite(engine):
        return
    async with single_statement(engine) as conn:
        await conn.run_sync(_warm)
