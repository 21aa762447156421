"""Engine, session factory and the SessionDep dependency (tables: app/models.py)."""

import asyncio
from collections.abc import AsyncIterator
from functools import lru_cache
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

import app.models  # noqa: F401 — every table is mapped before the first query
from app import jsontext
from app.config import get_settings
from app.memory import attach

POOL_TIMEOUT = 8.0
"""Seconds a request waits for a connection before it is answered 503 (never a 30 s hang);
the in-flight limit (app.backpressure) bounds how many wait."""


def make_engine(url: str, *, pool_size: int = 10, sqlite_immediate: bool = True) -> Engine:
    """An engine for `url`; SQLite gets WAL, a busy timeout and serialised write transactions.

    `sqlite_immediate=False` keeps SQLite's deferred BEGIN (readers that never block writers),
    for tools and tests that only read while the app writes.
    """
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
            # Let SQLAlchemy emit BEGIN itself (pysqlite's implicit transactions are off) …
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # … as BEGIN IMMEDIATE: one writer at a time, so read-then-write logic such as
            # assignment holds on SQLite without row locks.
            conn.exec_driver_sql("BEGIN IMMEDIATE" if sqlite_immediate else "BEGIN")

        return engine
    # No pre-ping (a round trip per checkout); connections are recycled before servers or
    # proxies drop idle ones. The web app runs as many worker threads as the pool holds
    # (`configure_threads`); a checkout that waits POOL_TIMEOUT seconds is answered 503.
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=POOL_TIMEOUT,
        pool_recycle=1800,
        json_serializer=jsontext.dumps,  # orjson; the values json.dumps/json.loads give
        json_deserializer=jsontext.loads,
    )


@lru_cache
def get_engine() -> Engine:
    settings = get_settings()
    return make_engine(settings.database_url, pool_size=settings.pool_size())


@lru_cache
def get_sessionmaker() -> sessionmaker[Session]:
    return sessionmaker(bind=get_engine(), expire_on_commit=False)


async def get_session(request: Request) -> AsyncIterator[Session]:
    """The request's sync Session, for routes that run in anyio's worker threads.

    Rule: a connection is checked out only by the route's own thread, and given back by
    closing the session in the event loop's default executor, whose threads never wait for a
    connection. With anyio's thread limit no larger than the pool (`configure_threads`), a
    thread that asks for a connection always gets one without waiting on another request.
    The session carries the app's memory (`app.memory`), which services update on commit.
    """
    session = get_sessionmaker()()
    attach(session, request.app.state.memory)
    try:
        yield session
    finally:
        await asyncio.get_running_loop().run_in_executor(None, session.close)


def sync_pool_capacity() -> int:
    """Connections one process's sync engine may open."""
    return get_settings().pool_size()


async def configure_threads() -> None:
    """Size anyio's worker threads (sync routes) to the sync engine's connection capacity."""
    from anyio import to_thread

    to_thread.current_default_thread_limiter().total_tokens = sync_pool_capacity()


SessionDep = Annotated[Session, Depends(get_session)]
