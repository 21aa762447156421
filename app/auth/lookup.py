"""Who is asking: API tokens and session cookies resolved on the asyncio engine, cached briefly.

A lookup takes a connection, runs one statement and gives the connection back before the route
runs, so authentication never holds a connection while the request waits for anything else.
Answers are cached for `TTL` seconds. The auth service drops the cache when a change to a user
or a token commits (`forget_after_commit`): revoked tokens, deactivated users, new passwords and
new roles take effect at once in the process that made them, within `TTL` in the others (the
server's other processes, the CLI's changes). A lookup that read the database before such a
commit does not store its answer (`_generation`), so it cannot bring the old row back.
"""

import time
from functools import cache
from typing import Any

from sqlalchemy import bindparam, event, select
from sqlalchemy.orm import Session

from app.auth.models import ApiToken, LoginSession, User
from app.auth.security import hash_token
from app.db_async import get_async_engine, read_connection

TTL = 5.0
"""Seconds a token's or a session's user is remembered."""
MAX_ENTRIES = 50_000

_USER_COLUMNS = (
    User.id,
    User.email,
    User.role,
    User.is_active,
    User.session_epoch,
    User.created_at,
)
_cache: dict[tuple[str, Any], tuple[float, tuple[Any, ...], User]] = {}
_generation = 0
"""Bumped by every `forget`: an answer read before a forget is not stored after it."""


def forget() -> None:
    """Drop every cached answer, and any answer being read now."""
    global _generation
    _generation += 1
    _cache.clear()


_PENDING = "rlhf.auth.forget_after_commit"


def forget_after_commit(session: Session) -> None:
    """Drop the cache when `session` commits (the auth service calls this for every change to a
    user or a token): dropped before the commit, it would be filled again with the old row."""
    session.info[_PENDING] = True
    if not event.contains(session, "after_commit", _forget_if_pending):
        event.listen(session, "after_commit", _forget_if_pending)


def _forget_if_pending(session: Session) -> None:
    if session.info.pop(_PENDING, False):
        forget()


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


def _hit(key: tuple[str, Any]) -> tuple[tuple[Any, ...], User] | None:
    """The cached answer for `key` if it is still fresh (no statement is built on a hit)."""
    hit = _cache.get(key)
    if hit is not None and hit[0] > time.monotonic():
        return hit[1], hit[2]
    return None


async def _fetch(
    key: tuple[str, Any], query: Any, parameters: dict[str, Any]
) -> tuple[tuple[Any, ...], User] | None:
    generation = _generation
    async with read_connection(get_async_engine()) as conn:
        row = (await conn.execute(query, parameters)).first()
    if row is None:
        _cache.pop(key, None)
        return None
    values = tuple(row)
    user = _user(values)
    if len(_cache) >= MAX_ENTRIES:
        _cache.clear()
    _cache[key] = (time.monotonic() + TTL, values, user)
    if generation != _generation:
        # A change committed while the row was read (forget runs in the committing thread:
        # it counts up, then clears; checked after storing, no interleaving keeps the row).
        _cache.pop(key, None)
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


async def user_for_token(plain: str) -> User | None:
    """The active user owning a live API token, if any."""
    key = ("token", hash_token(plain))
    found = _hit(key) or await _fetch(key, _token_query(), {"digest": key[1]})
    if found is None or not found[0][3]:
        return None
    return found[1]


async def user_for_session(data: dict[str, Any]) -> User | None:
    """The active user of a signed session cookie's contents, if the session was not ended
    (signed out, or every session of the user ended) and its epoch is still current."""
    secret, user_id = data.get("k"), data.get("u")
    if not isinstance(secret, str) or not isinstance(user_id, int):
        return None
    key = ("session", hash_token(secret))
    found = _hit(key) or await _fetch(key, _session_query(), {"digest": key[1]})
    if found is None or not found[0][3] or found[0][0] != user_id or found[0][4] != data.get("e"):
        return None
    return found[1]
