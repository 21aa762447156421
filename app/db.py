"""Engine, session factory and the SessionDep dependency (tables: app/models.py)."""

from collections.abc import Iterator
from functools import lru_cache
from typing import Annotated, Any

from fastapi import Depends
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

import app.models  # noqa: F401 — every table is mapped before the first query
from app.config import get_settings


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
    # proxies drop idle ones. Keep pool_size near the server's thread count: overflow
    # connections are opened and closed per request.
    return create_engine(url, pool_size=pool_size, max_overflow=10, pool_recycle=1800)


@lru_cache
def get_engine() -> Engine:
    settings = get_settings()
    return make_engine(settings.database_url, pool_size=settings.db_pool_size)


@lru_cache
def get_sessionmaker() -> sessionmaker[Session]:
    return sessionmaker(bind=get_engine(), expire_on_commit=False)


def get_session() -> Iterator[Session]:
    with get_sessionmaker()() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]
