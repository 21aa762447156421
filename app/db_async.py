"""The asyncio engine of the labeling hot path (asyncpg on PostgreSQL, aiosqlite on SQLite).

asyncpg, not psycopg's async mode: the same statements cost the web process about half the
CPU (`select 1`: 67 µs against 123 µs on uvloop; the hot path's cycle 5.0 → 4.0 ms in
`bench/labeling_cpu.py`). The sync engine (every other route, the CLI) stays on psycopg.

Rule: a request holds at most one pooled connection at a time, and never while it waits for
another pooled resource (a thread or a second connection). The hot path awaits its connection
on the event loop; authentication takes and returns its own connection before the route asks
for one.
"""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from app import jsontext
from app.config import get_settings
from app.db import POOL_TIMEOUT


class DatabaseBusy(Exception):
    """No database connection came free in time; the app answers 503 with Retry-After."""


def async_url(url: str) -> str:
    """The asyncio form of a database URL (the same database, an asyncio driver)."""
    if url.startswith("sqlite:"):
        return "sqlite+aiosqlite:" + url.removeprefix("sqlite:")
    if url.startswith(("postgresql:", "postgres:", "postgresql+psycopg:")):
        return "postgresql+asyncpg:" + url.split(":", 1)[1]
    return url


def make_async_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    """An asyncio engine for `url`; SQLite gets the same pragmas as the sync engine."""
    if url.startswith("sqlite"):
        engine = create_async_engine(async_url(url), connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            write = conn.get_execution_options().get("sqlite_write", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

        return engine
    # Autocommit by default: the hot path's statements are each their own transaction, one
    # round trip; `transaction()` switches a connection to READ COMMITTED for the rare rest.
    # JIT off: the lease statement's cost estimate passes jit_above_cost, and compiling it
    # costs ~50 ms of database CPU per call for a statement that runs in ~1 ms.
    return create_async_engine(
        async_url(url),
        # Generic plans: asyncpg prepares every statement, and PostgreSQL otherwise plans the
        # lease statement again for each call (~3 ms of database CPU, ~0.8 ms per cycle saved).
        connect_args={"server_settings": {"jit": "off", "plan_cache_mode": "force_generic_plan"}},
        # JSON columns through orjson (the hot path reads a task's texts as JSON): same values.
        json_serializer=jsontext.dumps,
        json_deserializer=jsontext.loads,
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=POOL_TIMEOUT,
        pool_recycle=1800,
        isolation_level="AUTOCOMMIT",
    )


_engines: dict[tuple[int, str], AsyncEngine] = {}
_sqlite_locks: dict[int, asyncio.Lock] = {}
_gates: dict[int, asyncio.Semaphore] = {}
"""Per engine: one permit per pooled connection, handed out first come, first served."""


def get_async_engine() -> AsyncEngine:
    """This event loop's engine for the configured database (connections belong to one loop)."""
    settings = get_settings()
    key = (id(asyncio.get_running_loop()), settings.database_url)
    engine = _engines.get(key)
    if engine is None:
        engine = make_async_engine(settings.database_url, pool_size=settings.pool_size())
        _engines[key] = engine
        _gates[id(engine)] = asyncio.Semaphore(settings.pool_size())
    return engine


async def dispose_async_engines() -> None:
    """Close this event loop's engines (at shutdown)."""
    loop_id = id(asyncio.get_running_loop())
    for key in [k for k in _engines if k[0] == loop_id]:
        engine = _engines.pop(key)
        _gates.pop(id(engine), None)
        await engine.dispose()
    _sqlite_locks.pop(loop_id, None)


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"


@asynccontextmanager
async def _checkout(engine: AsyncEngine, **options: Any) -> AsyncIterator[AsyncConnection]:
    """A pooled connection, waited for in arrival order. The pool's own queue lets a newcomer
    take a connection that was just handed to a waiter, who then queues again at the back:
    under saturation a few requests starved for 8 s (a 503) while the median waited 0.1 s. The
    gate (a fair semaphore, one permit per connection) keeps the order; the pool then always
    has a connection free."""
    gate = _gates.get(id(engine))
    if gate is not None:
        try:
            async with asyncio.timeout(POOL_TIMEOUT):
                await gate.acquire()
        except TimeoutError as exc:
            raise DatabaseBusy("no database connection came free") from exc
    try:
        try:
            conn = await engine.connect()
        except PoolTimeout as exc:
            raise DatabaseBusy("no database connection came free") from exc
        try:
            yield await conn.execution_options(**options) if options else conn
        finally:
            await conn.close()
    finally:
        if gate is not None:
            gate.release()


@asynccontextmanager
async def read_connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection for reads; each statement commits by itself (no idle transaction)."""
    options = {} if not is_sqlite(engine) else {"isolation_level": "AUTOCOMMIT"}
    async with _checkout(engine, **options) as conn:
        yield conn


@asynccontextmanager
async def transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection inside one transaction, committed on success. On SQLite, one writer at a
    time: an in-process lock and BEGIN IMMEDIATE (other processes wait on the busy timeout)."""
    if not is_sqlite(engine):
        async with _checkout(engine, isolation_level="READ COMMITTED") as conn, conn.begin():
            yield conn
        return
    lock = _sqlite_locks.setdefault(id(asyncio.get_running_loop()), asyncio.Lock())
    async with lock, _checkout(engine, sqlite_write=True) as conn, conn.begin():
        yield conn


@asynccontextmanager
async def single_statement(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection for one writing statement. PostgreSQL: autocommit, so the statement is one
    round trip and its own transaction. SQLite: a serialised transaction, as `transaction`."""
    if is_sqlite(engine):
        async with transaction(engine) as conn:
            yield conn
        return
    async with _checkout(engine) as conn:  # the engine's connections autocommit
        yield conn
