"""Big statements of the hot path, executed without SQLAlchemy's per-call compilation work.

`Connection.execute(statement)` walks the whole statement to compute its cache key and hashes
that key to find the compiled form, on every call: with the folded lease statement (~6 KB of
SQL) that is about a quarter of the labeling hot path's CPU (py-spy on
`bench/labeling_cpu.py`). A statement built once (the module-level caches of `leasing` and
`submitting`) is compiled here once per dialect; each call binds its parameters in the
compiled order through the dialect's own bind processors (public API: `TypeEngine.dialect_impl`,
`bind_processor`) and runs through `exec_driver_sql`.

Only for asyncpg (the hot path's driver on PostgreSQL), whose rows need no result processing
here: the dialect's codecs decode JSON and timestamptz (aware datetimes) in the driver. Any
other connection executes the statement the usual way.
"""

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Connection, CursorResult

Plan = tuple[Any, str, tuple[tuple[str, Any, Callable[[Any], Any] | None], ...]]
_plans: dict[tuple[int, str], Plan] = {}


def _plan(conn: Connection, statement: Any) -> Plan:
    key = (id(statement), conn.dialect.name)
    plan = _plans.get(key)
    if plan is None or plan[0] is not statement:
        dialect = conn.dialect
        compiled = statement.compile(dialect=dialect)
        order = []
        for name in compiled.positiontup or ():
            bind = compiled.binds[name]
            default = bind.value if not bind.required else _REQUIRED
            # The dialect's own processor for the bind's type, as SQLAlchemy's execute uses.
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            order.append((name, default, process))
        plan = (statement, compiled.string, tuple(order))
        _plans[key] = plan
    return plan


class _Required:
    def __repr__(self) -> str:
        return "<required>"


_REQUIRED: Any = _Required()


def execute(conn: Connection, statement: Any, parameters: Mapping[str, Any]) -> CursorResult[Any]:
    """`conn.execute(statement, parameters)` for a statement that lives as long as the process."""
    if conn.dialect.driver != "asyncpg":
        return conn.execute(statement, parameters)
    _, sql, order = _plan(conn, statement)
    values = []
    for name, default, process in order:
        value = parameters.get(name, default)
        if value is _REQUIRED:
            raise KeyError(f"a value is required for the parameter {name!r}")
        values.append(process(value) if process is not None else value)
    return conn.exec_driver_sql(sql, tuple(values))
