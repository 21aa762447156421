"""Who is asking: API tokens and session cookies resolved on the asyncio engine, kept briefly
in the web process's `Memory` (`app.memory`: `identities`).

A lookup takes a connection, runs one statement and gives the connection back before the route
runs, so authentication never holds a connection while the request waits for anything else.
Answers are kept for `TTL` seconds. The auth service says when a change to a user or a token
commits (`forget_after_commit`): revoked tokens, deactivated users, new passwords and new roles
take effect at once in the process that made them, within `TTL` in the others (the server's
other processes, the CLI's changes). A lookup that read the database before such a commit does
not store its answer (`Memory.generation`), so it cannot bring the old row back.
"""

import time
from functools import cache
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from app.auth.models import ApiToken, LoginSession, User
from app.auth.security import hash_token
from app.db_async import get_async_engine, read_connection
from app.memory import IDENTITIES_MAX, Memory, after_commit

TTL = 5.0
"""Seconds a token's or a session's user is remembered."""

_USER_COLUMNS = (
    User.id,
    User.email,
    User.role,
    User.is_active,
    User.session_epoch,
    User.created_at,
)


def forget_after_commit(session: Session) -> None:
    """Drop the identities the session's memory keeps when `session` commits (the auth
    service calls this for every change to a user or a token): dropped before the commit,
    they would be read again with the old row."""
    after_commit(session, Memory.people_changed)


def _user(values: tuple[Any, ...]) -> User:
    """A detached User carrying the identity columns, shared by the requests that hit the same
    cached answer (read-only: nothing attaches or changes it; building one costs ~40 µs)."""
    user_id, email, role, is_active, epoch, created_at = values
    return User(
        id=user_id,
        email=email,
        role=role,
        is_active=is_active,
        session_epoch=epoch,
        created_at=created_at,
    )


def _hit(memory: Memory, key: tuple[str, Any]) -> tuple[tuple[Any, ...], User] | None:
    """The kept answer for `key` if it is still fresh (no statement is built on a hit)."""
    hit = memory.identities.get(key)
    if hit is not None and hit[0] > time.monotonic():
        return hit[1], hit[2]
    return None


async def _fetch(
    memory: Memory, key: tuple[str, Any], query: Any, parameters: dict[str, Any]
) -> tuple[tuple[Any, ...], User] | None:
    kept = memory.identities
    generation = memory.generation
    async with read_connection(get_async_engine()) as conn:
        row = (await conn.execute(query, parameters)).first()
    if row is None:
        kept.pop(key, None)
        return None
    values = tuple(row)
    user = _user(values)
    if len(kept) >= IDENTITIES_MAX:
        kept.clear()
    kept[key] = (time.monotonic() + TTL, values, user)
    if generation != memory.generation:
        # A change committed while the row was read (people_changed runs in the committing
        # thread: it counts up, then clears; checked after storing, no interleaving keeps
        # the row).
        kept.pop(key, None)
    return values, user


@cache
def _token_query() -> Any:
    return (
        select(*_USER_COLUMNS)
        .join(ApiToken, ApiToken.user_id == User.id)
        .where(ApiToken.token_hash == bindparam("digest"), ApiToken.revoked_at.is_(None))
    )


@cache
def _session_query() -> Any:
    return (
        select(*_USER_COLUMNS)
        .join(LoginSession, LoginSession.user_id == User.id)
        .where(LoginSession.key_hash == bindparam("digest"))
    )


async def user_for_token(memory: Memory, plain: str) -> User | None:
    """The active user owning a live API token, if any."""
    key = ("token", hash_token(plain))
    found = _hit(memory, key) or await _fetch(memory, key, _token_query(), {"digest": key[1]})
    if found is None or not found[0][3]:
        return None
    return found[1]


async def user_for_session(memory: Memory, data: dict[str, Any]) -> User | None:
    """The active user of a signed session cookie's contents, if the session was not ended
    (signed out, or every session of the user ended) and its epoch is still current."""
    secret, user_id = data.get("k"), data.get("u")
    if not isinstance(secret, str) or not isinstance(user_id, int):
        return None
    key = ("session", hash_token(secret))
    found = _hit(memory, key) or await _fetch(memory, key, _session_query(), {"digest": key[1]})
    if found is None or not found[0][3] or found[0][0] != user_id or found[0][4] != data.get("e"):
        return None
    return found[1]
