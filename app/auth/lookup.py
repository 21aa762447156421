"""Who is asking: API tokens and session cookies resolved on the asyncio engine, cached briefly.

A lookup takes a connection, runs one statement and gives the connection back before the route
runs, so authentication never holds a connection while the request waits for anything else.
Answers are cached for `TTL` seconds; changes made in this process (revoked tokens, deactivated
users, new passwords, new roles) drop the cache at once, other processes see them within `TTL`.
"""

import time
from functools import cache
from typing import Any

from sqlalchemy import bindparam, event, select
from sqlalchemy.orm import Session

from app.auth.models import ApiToken, User
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


def forget() -> None:
    """Drop every cached answer (called whenever a user or a token changes)."""
    _cache.clear()


@event.listens_for(Session, "after_flush")
def _forget_on_change(session: Session, _context: Any) -> None:
    """Any flushed change to a user or a token in this process empties the cache."""
    for obj in (*session.dirty, *session.deleted):
        if isinstance(obj, User | ApiToken):
            forget()
            return


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
    async with read_connection(get_async_engine()) as conn:
        row = (await conn.execute(query, parameters)).first()
    if row is None:
        _cache.pop(key, None)
        return None
    if len(_cache) >= MAX_ENTRIES:
        _cache.clear()
    values = tuple(row)
    user = _user(values)
    _cache[key] = (time.monotonic() + TTL, values, user)
    return values, user


@cache
def _token_query() -> Any:
    return (
        select(*_USER_COLUMNS)
        .join(ApiToken, ApiToken.user_id == User.id)
        .where(ApiToken.token_hash == bindparam("digest"), ApiToken.revoked_at.is_(None))
    )


@cache
def _user_query() -> Any:
    return select(*_USER_COLUMNS).where(User.id == bindparam("user_id"))


async def user_for_token(plain: str) -> User | None:
    """The active user owning a live API token, if any."""
    key = ("token", hash_token(plain))
    found = _hit(key) or await _fetch(key, _token_query(), {"digest": key[1]})
    if found is None or not found[0][3]:
        return None
    return found[1]


async def user_for_session(user_id: Any, epoch: Any) -> User | None:
    """The active user a signed session cookie names, if its epoch is still current."""
    if not isinstance(user_id, int):
        return None
    key = ("user", user_id)
    found = _hit(key) or await _fetch(key, _user_query(), {"user_id": user_id})
    if found is None or not found[0][3] or found[0][4] != epoch:
        return None
    return found[1]
