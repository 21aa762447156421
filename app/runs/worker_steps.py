"""The worker's steps: claim a run, heart-beat, store its metrics, and record how an attempt
ended (success, cancel, requeue, a retry after a backoff, or failure).

Each function is one step of the worker's loop and commits its own work: the loop interleaves
with a training subprocess and holds no transaction across steps. Every change of status goes
through the lifecycle table (app/runs/lifecycle.py); the worker only reports what it saw.
"""

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from app.base import utcnow
from app.datasets import service as datasets_service
from app.runs import failures, lifecycle, registry, service
from app.runs.lifecycle import Event
from app.runs.models import (
    TRAINS_ON,
    ModelKind,
    RunKind,
    RunMetric,
    RunStatus,
    TrainingRun,
    Worker,
)
from trainer import EXIT_FENCED, EXIT_PREEMPTED
from trainer.reporting import sanitise

OUTPUT_KIND = {RunKind.rm: ModelKind.reward}


def claim_next(*, session: Session, worker: str) -> TrainingRun | None:
    """Take the oldest due queued run (PostgreSQL: FOR UPDATE SKIP LOCKED) and mark it running."""
    run = session.scalar(
        select(TrainingRun)
        .where(
            TrainingRun.status == RunStatus.queued,
            or_(TrainingRun.retry_at.is_(None), TrainingRun.retry_at <= utcnow()),
        )
        .order_by(TrainingRun.id)
        .limit(1)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)  # the locked row as it is, not as last seen
    )
    if run is None:
        session.commit()
        return None
    return claim(session=session, run=run, worker=worker)


def claim(*, session: Session, run: TrainingRun, worker: str) -> TrainingRun:
    """Mark a queued run running as `worker`'s next attempt (`claim_next` picks which run)."""
    now = utcnow()
    # Each attempt re-reads metrics.jsonl from its start (a resumed trainer rewrites it).
    lifecycle.move(
        run,
        Event.claimed,
        worker=worker,
        attempt=run.attempt + 1,
        heartbeat_at=now,
        started_at=run.started_at or now,
    )
    session.commit()
    return run


def heartbeat(*, session: Session, run: TrainingRun, worker: str) -> bool:
    """Refresh the heartbeat; False if the run was taken from this worker (requeued)."""
    beat = lifecycle.move_where(
        session, run.id, Event.heartbeat, TrainingRun.worker == worker, heartbeat_at=utcnow()
    )
    session.commit()
    return beat is not None


def cancel_requested(*, session: Session, run_id: int) -> bool:
    """Whether someone asked to cancel the run (ends the read transaction)."""
    value = session.scalar(select(TrainingRun.cancel_requested).where(TrainingRun.id == run_id))
    session.commit()
    return bool(value)


def record_metrics(
    *,
    session: Session,
    run: TrainingRun,
    rows: list[dict[str, Any]],
    offset: int,
    whole: bool = False,
) -> None:
    """Store new metric lines (`whole`: all of them); a step logged again replaces the old one."""
    if whole:
        session.execute(delete(RunMetric).where(RunMetric.run_id == run.id))
    if rows:
        first = min(int(r["step"]) for r in rows)
        session.execute(
            delete(RunMetric).where(RunMetric.run_id == run.id, RunMetric.step >= first)
        )
        latest: dict[int, dict[str, Any]] = {int(r["step"]): sanitise(r) for r in rows}
        session.add_all(RunMetric(run_id=run.id, step=s, values=v) for s, v in latest.items())
    run.metrics_offset = offset
    session.commit()


def finish_run(
    *,
    session: Session,
    run: TrainingRun,
    status: str,
    exit_code: int | None = None,
    error: str | None = None,
) -> TrainingRun:
    """End a running run as `status` (succeeded, failed or cancelled); a succeeded run registers
    its output model (a training run's; generate and judge runs store into their project). The
    worker's name stays: the run's page and the runs list still say where
    it ran."""
    lifecycle.move(run, ENDED_AS[RunStatus(status)], exit_code=exit_code, error=error)
    if status == RunStatus.succeeded and run.run_dir and run.kind in TRAINS_ON:
        _register_output(session=session, run=run)
    session.commit()
    return run


ENDED_AS = {
    RunStatus.succeeded: Event.succeeded,
    RunStatus.failed: Event.failed,
    RunStatus.cancelled: Event.cancelled,
}
"""The event that ends a running run in each final status."""


def _register_output(*, session: Session, run: TrainingRun) -> None:
    """Register what a succeeded run produced (per kind; today a model for every kind)."""
    assert run.run_dir and run.snapshot_id is not None  # a training run, which trains on one
    output = Path(run.run_dir) / "output"
    snapshot = datasets_service.get_snapshot(session=session, snapshot_id=run.snapshot_id)
    model = registry.register_model(
        check=False,
        session=session,
        name=f"run-{run.id}-{run.kind}",
        kind=OUTPUT_KIND.get(RunKind(run.kind), ModelKind.policy),
        path=str(output),
        base_model=run.base_model,
        base_model_id=run.base_model_id,
        snapshot_content_hash=snapshot.content_hash,
        run_id=run.id,
        metrics=read_summary(output),
    )
    run.output_model_id = model.id


def read_summary(output: Path) -> dict[str, Any]:
    """The trainer's summary.json of a finished run ({} if it wrote none)."""
    path = output / "summary.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def retry_or_fail(
    *,
    session: Session,
    run: TrainingRun,
    error: str,
    retry_seconds: float,
    exit_code: int | None = None,
) -> TrainingRun:
    """After a lost attempt: queue the run again (after a backoff) while attempts remain."""
    if run.cancel_requested:
        return finish_run(session=session, run=run, status=RunStatus.cancelled, exit_code=exit_code)
    cause, _, tail = error.partition("\n")
    if run.attempt >= run.max_attempts:
        note = f"attempt {run.attempt} of {run.max_attempts}: {failures.NO_RETRIES_LEFT}"
        return finish_run(
            session=session,
            run=run,
            status=RunStatus.failed,
            exit_code=exit_code,
            error=f"{cause} ({note})\n{tail}".rstrip("\n"),
        )
    delay = retry_seconds * 2 ** max(run.attempt - 1, 0)
    lifecycle.move(
        run,
        Event.lost,
        retry_at=utcnow() + timedelta(seconds=delay),
        exit_code=exit_code,
        error=f"{cause} (attempt {run.attempt} will be retried)\n{tail}".rstrip("\n"),
    )
    session.commit()
    return run


def set_run_dir(*, session: Session, run: TrainingRun, run_dir: str) -> None:
    """Record where a run's files live (set by its worker before the trainer starts)."""
    run.run_dir = run_dir
    session.commit()


# Exit statuses after which another attempt may get further (besides any signal).
RETRIED_EXITS = {EXIT_PREEMPTED, EXIT_FENCED}


def attempt_ended(
    *,
    session: Session,
    run: TrainingRun,
    worker: str,
    exit_code: int,
    worker_stopping: bool,
    retry_seconds: float,
) -> TrainingRun:
    """Move a run on after its trainer exited: success, cancel, requeue, retry or failure."""
    session.refresh(run)
    if run.status != RunStatus.running or run.worker != worker:
        return run  # requeued or finished elsewhere meanwhile
    if run.cancel_requested:
        return finish_run(session=session, run=run, status=RunStatus.cancelled, exit_code=exit_code)
    if exit_code == 0:
        return finish_run(session=session, run=run, status=RunStatus.succeeded, exit_code=0)
    if exit_code == EXIT_PREEMPTED and worker_stopping:
        return requeue(session=session, run=run)  # its worker stops: resume elsewhere
    tail = service.log_tail(run.run_dir)
    error = f"{failures.describe_exit(exit_code, tail)}\n{tail}"
    if exit_code < 0 or exit_code in RETRIED_EXITS:
        return retry_or_fail(
            session=session, run=run, error=error, retry_seconds=retry_seconds, exit_code=exit_code
        )
    return finish_run(
        session=session, run=run, status=RunStatus.failed, exit_code=exit_code, error=error
    )


def attempt_failed(
    *,
    session: Session,
    run: TrainingRun,
    worker: str,
    cause: str,
    retry: bool,
    retry_seconds: float,
) -> TrainingRun:
    """The worker failed while handling a run: retry it (transient cause) or fail it."""
    if run.status != RunStatus.running or run.worker != worker:
        return run
    tail = service.log_tail(run.run_dir)
    error = f"{cause}\n{tail}" if tail else cause
    if retry:
        return retry_or_fail(session=session, run=run, error=error, retry_seconds=retry_seconds)
    return finish_run(session=session, run=run, status=RunStatus.failed, error=error)


def requeue(*, session: Session, run: TrainingRun) -> TrainingRun:
    """A run its worker stopped cleanly (checkpointed) goes back to the queue at once."""
    lifecycle.move(run, Event.preempted)
    session.commit()
    return run


def requeue_stale(
    *, session: Session, stale_seconds: float, retry_seconds: float = 0.0
) -> list[int]:
    """Runs whose worker stopped heart-beating are retried (or fail when out of attempts)."""
    cutoff = utcnow() - timedelta(seconds=stale_seconds)
    stale = list(
        session.scalars(
            select(TrainingRun)
            .where(TrainingRun.status == RunStatus.running, TrainingRun.heartbeat_at < cutoff)
            .with_for_update(skip_locked=True)
            .execution_options(populate_existing=True)
        )
    )
    for run in stale:
        error = f"the worker {run.worker} was lost (no heartbeat for {stale_seconds:g} s)"
        tail = service.log_tail(run.run_dir)
        retry_or_fail(
            session=session,
            run=run,
            error=f"{error}\n{tail}" if tail else error,
            retry_seconds=retry_seconds,
        )
    session.commit()
    return [run.id for run in stale]


def worker_alive(
    *,
    session: Session,
    worker: str,
    run_id: int | None,
    resources: dict[str, Any] | None = None,
) -> None:
    """A worker's own heartbeat (idle or busy with `run_id`), with its machine's resources."""
    row = session.get(Worker, worker)
    now = utcnow()
    if row is None:
        session.add(
            Worker(
                name=worker, run_id=run_id, started_at=now, heartbeat_at=now, resources=resources
            )
        )
    else:
        row.run_id, row.heartbeat_at = run_id, now
        if resources is not None and row.resources != resources:
            row.resources = resources
    session.commit()


def worker_gone(*, session: Session, worker: str) -> None:
    """A worker that stops cleanly removes its row."""
    session.execute(delete(Worker).where(Worker.name == worker))
    session.commit()
