"""What one web process remembers of the database between requests: one `Memory` per app
(`app.state.memory`), made with the app and gone with it. Nothing here is installed by an
import and no module keeps data of the database at module level.

What it holds, who reads it, when this process drops it, and how far it may lag behind the
database in the server's other processes (which drop nothing of each other's):

- `identities`, the user of an API token or a session (`auth.lookup`), read by every request's
  authentication: dropped here when a change to a user or a token commits (`people_changed`);
  elsewhere at most `auth.lookup.TTL` (5 s) old.
- `leases`, what the submit of a lease this process handed out needs, the project's labeling
  settings included (`labeling.remembered`), read by the PostgreSQL submit to skip one read:
  taken once by that submit, dropped here when the project's settings change
  (`project_changed`); elsewhere the submit is checked against the settings read when the lease
  was made (at most the lease's length).
- `frontiers`, the first unfinished prompt of a project (`labeling.remembered`), where the
  PostgreSQL lease starts its scan: dropped here by `project_changed` and `prompts_reopened`;
  elsewhere read again every 2 s and from the first prompt every 60 s, and a lease that finds
  nothing past it looks from the start.
- `shapes`, the kind and order of the lease statement last used per project: dropped by
  `project_changed`; no bound needed, the statement says when they changed.

All of it is a hint a statement still checks, or (identities) an answer at most `TTL` old.

Sessions opened for a request carry the app's memory (`attach`, done by `app.db.get_session`).
A service that changes what memory holds says so with `after_commit(session, change)`: the
change runs when that session commits (run before, a request could fill memory again with the
old row). A session opened elsewhere (the CLI, the worker, a test's own) carries none: its
changes reach a server's memory within the bounds above.

Compiled statements (`functools.cache` of statement builders, `app.precompiled`) are not
memory of the database: they depend on the code alone and live as long as the process.
"""

from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

RECENT_LEASES_MAX = 20_000
IDENTITIES_MAX = 50_000


class Memory:
    """One web process's memory of the database (see the module's docstring)."""

    def __init__(self) -> None:
        self.identities: dict[tuple[str, Any], tuple[float, tuple[Any, ...], Any]] = {}
        """(kind, digest) → (fresh until, the user's identity columns, a detached User)."""
        self.generation = 0
        """Counted up by `people_changed`: an identity read before it is not stored after."""
        self.leases: dict[int, Any] = {}
        """Assignment id → what a submit needs of a lease this process handed out."""
        self.frontiers: dict[int, tuple[float, float, int]] = {}
        """Project id → (read again after, read from the start after, frontier)."""
        self.shapes: dict[int, tuple[str, str]] = {}
        """Project id → (kind, order) last seen: the shape of the lease statement to try."""

    def people_changed(self) -> None:
        """A user or a token changed: every identity is read again, and any being read now
        is not stored."""
        self.generation += 1
        self.identities.clear()

    def project_changed(self, project_id: int) -> None:
        """A project's settings changed: its leases' submits, its frontier and its statement
        shape are read again."""
        self.frontiers.pop(project_id, None)
        self.shapes.pop(project_id, None)
        stale = [k for k, held in self.leases.items() if held.project_id == project_id]
        for assignment_id in stale:
            del self.leases[assignment_id]

    def prompts_reopened(self, project_id: int) -> None:
        """Prompts of the project may be served again (re-queued, restored): its frontier is
        read again from its first prompt."""
        self.frontiers.pop(project_id, None)

    def forget(self) -> None:
        """Drop everything (the database was replaced)."""
        self.people_changed()
        self.leases.clear()
        self.frontiers.clear()
        self.shapes.clear()


_MEMORY = "rlhf.memory"
_PENDING = "rlhf.memory.pending"


def attach(session: Session, memory: Memory) -> None:
    """`session` was opened for a request of the app that owns `memory`."""
    session.info[_MEMORY] = memory


def memory_of(session: Session) -> Memory:
    """The memory `session` carries, or an empty one that outlives nothing (a session opened
    outside a request remembers nothing between calls)."""
    memory = session.info.get(_MEMORY)
    return memory if memory is not None else Memory()


def after_commit(session: Session, change: Callable[[Memory], None]) -> None:
    """Run `change` on the memory `session` carries when the session commits; nothing when it
    carries none (another process's memory follows within its bounds)."""
    if session.info.get(_MEMORY) is None:
        return
    session.info.setdefault(_PENDING, []).append(change)
    if not event.contains(session, "after_commit", _run_pending):
        event.listen(session, "after_commit", _run_pending)


def _run_pending(session: Session) -> None:
    memory = session.info.get(_MEMORY)
    for change in session.info.pop(_PENDING, ()):
        change(memory)
