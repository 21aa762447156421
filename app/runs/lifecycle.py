"""A run's lifecycle: one table of status × event → status that every change of status goes
through.

    queued    --claimed------> running      a worker took it (attempt + 1)
    queued    --cancel-------> cancelled    an admin cancelled it before it started
    running   --heartbeat----> running      its worker is alive
    running   --cancel-------> running      an admin asked it to stop (the worker sends SIGTERM)
    running   --succeeded----> succeeded    the trainer exited 0
    running   --failed-------> failed       it failed for good (or ran out of attempts)
    running   --cancelled----> cancelled    it stopped after a cancel
    running   --lost---------> queued       an attempt was lost (a killed or fenced trainer, a
                                            silent worker, an unreachable database) and
                                            attempts remain: queued again after a backoff
    running   --preempted----> queued       its worker stops: queued again at once, to resume
                                            from its checkpoint elsewhere
    failed    --retried------> queued       an admin retries it (a new budget of attempts)
    cancelled --retried------> queued

`move` applies an event to a run loaded in the session; `move_where` applies it as one
conditional UPDATE, for the changes that race with another process (a claim and a cancel, a
heartbeat and a requeue). Either raises or reports nothing for a pair the table lacks. What
a transition always sets is in the table; what depends on the moment (the worker's name, the
error, the backoff) is passed by its caller.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, update
from sqlalchemy.orm import Session

from app.base import utcnow
from app.errors import Conflict
from app.runs.models import FINISHED, RunStatus, TrainingRun


class Event(StrEnum):
    """What happened to a run (see the module doc)."""

    claimed = "claimed"
    cancel = "cancel"
    heartbeat = "heartbeat"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"
    lost = "lost"
    preempted = "preempted"
    retried = "retried"


@dataclass(frozen=True)
class To:
    """Where an event takes a run, and the fields the transition always sets."""

    status: RunStatus
    sets: Mapping[str, Any] = field(default_factory=dict)


BACK_IN_QUEUE = {"worker": None}
"""A run in the queue belongs to no worker."""
AS_NEW = {"cancel_requested": False, "exit_code": None, "error": None, "finished_at": None}
"""What a retried run forgets of how it ended."""

Q, R = RunStatus.queued, RunStatus.running
TRANSITIONS: dict[tuple[RunStatus, Event], To] = {
    (Q, Event.claimed): To(R, {"retry_at": None, "metrics_offset": 0}),
    (Q, Event.cancel): To(RunStatus.cancelled),
    (R, Event.heartbeat): To(R),
    (R, Event.cancel): To(R, {"cancel_requested": True}),
    (R, Event.succeeded): To(RunStatus.succeeded),
    (R, Event.failed): To(RunStatus.failed),
    (R, Event.cancelled): To(RunStatus.cancelled),
    (R, Event.lost): To(Q, BACK_IN_QUEUE),
    (R, Event.preempted): To(Q, {**BACK_IN_QUEUE, "retry_at": None}),
    (RunStatus.failed, Event.retried): To(Q, {**BACK_IN_QUEUE, "retry_at": None, **AS_NEW}),
    (RunStatus.cancelled, Event.retried): To(Q, {**BACK_IN_QUEUE, "retry_at": None, **AS_NEW}),
}
"""Every change of a run's status: (status, event) → where it goes. A pair not here is illegal."""


class IllegalTransition(Conflict):
    """An event that does not apply to a run in its status (409)."""


def allows(status: str, event: Event) -> bool:
    """Whether `event` applies to a run in `status`."""
    return (RunStatus(status), event) in TRANSITIONS


def sources(event: Event) -> list[RunStatus]:
    """The statuses `event` applies to, in table order."""
    return [status for status, e in TRANSITIONS if e == event]


def _values(to: To, values: Mapping[str, Any]) -> dict[str, Any]:
    """What the row gets: the new status, the table's fields, the caller's; a run that ends
    records when (unless the caller says)."""
    finished = {"finished_at": utcnow()} if to.status in FINISHED else {}
    return {**finished, **to.sets, **values, "status": to.status}


def move(run: TrainingRun, event: Event, **values: Any) -> TrainingRun:
    """Apply `event` to a run loaded in the session (fields set on it; the caller flushes or
    commits); IllegalTransition if its status does not allow the event."""
    to = TRANSITIONS.get((RunStatus(run.status), event))
    if to is None:
        raise IllegalTransition(f"run {run.id} is {run.status}; it cannot be {event}")
    for key, value in _values(to, values).items():
        setattr(run, key, value)
    return run


def move_where(
    session: Session,
    run_id: int,
    event: Event,
    *conditions: ColumnElement[bool],
    **values: Any,
) -> RunStatus | None:
    """Apply `event` as one conditional UPDATE per status it applies to (table order), so a
    concurrent change of the row is never overwritten; the new status, or None when the run
    was in none of those statuses (or `conditions` did not hold)."""
    for status in sources(event):
        to = TRANSITIONS[(status, event)]
        result = session.execute(
            update(TrainingRun)
            .where(TrainingRun.id == run_id, TrainingRun.status == status, *conditions)
            .values(**_values(to, values))
        )
        if result.rowcount == 1:  # type: ignore[attr-defined]
            return to.status
    return None
