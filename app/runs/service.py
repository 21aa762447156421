"""Training runs as admins and scripts see them: create (one creator per kind), read, list,
cancel and retry.

The worker's side (claim, heartbeat, metrics, how an attempt ended) is app/runs/worker_steps.py;
every change of a run's status goes through app/runs/lifecycle.py.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.base import utcnow
from app.config import get_settings
from app.datasets import service as datasets_service
from app.errors import Conflict, Invalid, NotFound
from app.runs import generation, judging, lifecycle, registry, resources, run_config
from app.runs.lifecycle import Event
from app.runs.models import (
    TRAINS_ON,
    RunKind,
    RunMetric,
    TrainingRun,
    Worker,
)
from trainer.model_files import Role

LOG_TAIL_LINES = 40


@dataclass(frozen=True)
class RunRequest:
    """A run as its caller asked for it (API, start form, `rlhf runs start`, a next round);
    each kind's creator takes what it needs and refuses what does not fit."""

    kind: RunKind
    snapshot_id: int | None
    model: str
    models: list[str]
    reward_model: str | None
    config: dict[str, Any]
    name: str
    created_by_id: int | None
    project: str | int | None


def create_run(
    *,
    session: Session,
    kind: str,
    snapshot_id: int | None = None,
    model: str = "",
    reward_model: str | None = None,
    config: dict[str, Any] | None = None,
    name: str = "",
    created_by_id: int | None = None,
    project: str | int | None = None,
    models: list[str] | None = None,
) -> TrainingRun:
    """Queue a run of `kind` through its creator (CREATORS), which checks that the snapshot or
    project, the models and the config fit the kind."""
    if kind not in RunKind.__members__:
        raise Invalid(f"kind must be one of {', '.join(RunKind)}; not {kind!r}", field="kind")
    request = RunRequest(
        kind=RunKind(kind),
        snapshot_id=snapshot_id,
        model=model,
        models=list(models or []),
        reward_model=reward_model,
        config=config or {},
        name=name,
        created_by_id=created_by_id,
        project=project,
    )
    return CREATORS[request.kind](session, request)


def _create_training_run(session: Session, request: RunRequest) -> TrainingRun:
    """A training run (sft, rm, ppo, dpo): one model trained on a snapshot of a kind it takes."""
    kind, snapshot_id, models = request.kind, request.snapshot_id, request.models
    if snapshot_id is None:
        raise Invalid(f"a {kind} run needs a snapshot", field="snapshot_id")
    if models and len(models) > 1:
        raise Invalid(f"a {kind} run trains one model", field="model")
    model = request.model or (models[0] if models else "")
    snapshot = datasets_service.get_snapshot(session=session, snapshot_id=snapshot_id)
    if snapshot.kind not in TRAINS_ON[kind]:
        wanted = " or ".join(sorted(TRAINS_ON[kind]))
        raise Invalid(
            f"a {kind} run trains on a {wanted} snapshot; snapshot {snapshot_id} is "
            f"{snapshot.kind}",
            field="snapshot_id",
        )
    if snapshot.train_rows == 0:
        raise Invalid(
            f"snapshot {snapshot_id} has 0 train rows: it has no rows at all, so there is "
            "nothing to train on; label more prompts and make a new snapshot",
            field="snapshot_id",
        )
    checked = run_config.check_config(kind, request.config)
    _check_fits_a_worker(session, checked)
    role = Role.backbone if kind == RunKind.rm else Role.policy
    base_path, base = registry.resolve(session=session, ref=model, role=role, field="model")
    reward_path, reward = None, None
    if kind == RunKind.ppo:
        if not request.reward_model:
            raise Invalid("a ppo run needs a reward model", field="reward_model")
        reward_path, reward = registry.reward_model(session=session, ref=request.reward_model)
    run = TrainingRun(
        kind=kind,
        snapshot_id=snapshot.id,
        base_model=base_path,
        base_model_id=base.id if base else None,
        reward_model=reward_path,
        reward_model_id=reward.id if reward else None,
        config=checked,
        name=request.name or f"{kind} on snapshot {snapshot.id}",
        created_by_id=request.created_by_id,
    )
    session.add(run)
    session.flush()
    return run


def _create_generation_run(session: Session, request: RunRequest) -> TrainingRun:
    """A generation run: registered policies answer a project's prompts (no snapshot)."""
    if request.snapshot_id is not None:
        raise Invalid(
            "a generate run answers a project's prompts; it takes no snapshot",
            field="snapshot_id",
        )
    if request.project is None:
        raise Invalid("a generate run needs a project", field="project")
    return generation.create_generation_run(
        session=session,
        reward_model=request.reward_model,
        project=request.project,
        models=request.models or ([request.model] if request.model else []),
        config=request.config,
        name=request.name,
        created_by_id=request.created_by_id,
    )


def _create_judge_run(session: Session, request: RunRequest) -> TrainingRun:
    """A judge run: a registered model or an endpoint labels a project's prompts."""
    if request.snapshot_id is not None:
        raise Invalid(
            "a judge run labels a project's prompts; it takes no snapshot", field="snapshot_id"
        )
    if request.project is None:
        raise Invalid("a judge run needs a project", field="project")
    if request.reward_model:
        raise Invalid(
            "a judge run takes its judge as model; it takes no reward_model", field="reward_model"
        )
    if len(request.models) > 1 or (request.model and request.models):
        raise Invalid("a judge run has one judge", field="model")
    return judging.create_judge_run(
        session=session,
        project=request.project,
        model=request.model or (request.models[0] if request.models else ""),
        config=request.config,
        name=request.name,
        created_by_id=request.created_by_id,
    )


CREATORS: dict[RunKind, Callable[[Session, RunRequest], TrainingRun]] = {
    **{kind: _create_training_run for kind in TRAINS_ON},
    RunKind.generate: _create_generation_run,
    RunKind.judge: _create_judge_run,
}
"""The creator of each run kind: the training kinds (those with snapshots to train on,
TRAINS_ON) share one; a generation run and a judge run have their own."""


def get_run(*, session: Session, run_id: int) -> TrainingRun:
    """A run, or NotFound."""
    run = session.get(TrainingRun, run_id)
    if run is None:
        raise NotFound(f"no training run {run_id}")
    return run


def list_runs(
    *, session: Session, status: str | None = None, kind: str | None = None, limit: int = 100
) -> list[TrainingRun]:
    """Runs, newest first, filtered by status and kind."""
    query = select(TrainingRun).order_by(TrainingRun.id.desc()).limit(limit)
    if status:
        query = query.where(TrainingRun.status == status)
    if kind:
        query = query.where(TrainingRun.kind == kind)
    return list(session.scalars(query))


def cancel_run(*, session: Session, run: TrainingRun) -> TrainingRun:
    """Cancel: a queued run ends now; a running one is asked to stop (SIGTERM by its worker).

    Conditional updates, so a worker claiming the run at the same moment cannot be overwritten.
    """
    if lifecycle.move_where(session, run.id, Event.cancel) is None:
        session.refresh(run)
        raise Conflict(f"run {run.id} is {run.status} already")
    session.flush()
    session.refresh(run)
    return run


def metrics(*, session: Session, run_id: int, after: int = -1) -> list[RunMetric]:
    """Metric rows of a run with step > after, in step order."""
    return list(
        session.scalars(
            select(RunMetric)
            .where(RunMetric.run_id == run_id, RunMetric.step > after)
            .order_by(RunMetric.step)
        )
    )


def retry_run(*, session: Session, run: TrainingRun) -> TrainingRun:
    """Queue a failed or cancelled run again; it resumes from its last checkpoint. A failure
    the same config and model would repeat (failures.retryable) is not retried."""
    if not lifecycle.allows(run.status, Event.retried):
        raise Conflict(f"run {run.id} is {run.status}; only failed or cancelled runs are retried")
    if not run.retryable:
        raise Conflict(
            f"run {run.id} failed with an error a retry would repeat ({run.cause}): "
            "start a new run with the config or model fixed"
        )
    lifecycle.move(run, Event.retried, max_attempts=run.attempt + DEFAULT_ATTEMPTS)
    session.flush()
    return run


DEFAULT_ATTEMPTS = 3


def log_tail(run_dir: str | Path | None, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of a run's train.log."""
    if not run_dir:
        return ""
    path = Path(run_dir) / "train.log"
    if not path.is_file():
        return ""
    with open(path, "rb") as f:
        f.seek(max(0, path.stat().st_size - 64_000))
        return "\n".join(f.read().decode("utf-8", "replace").splitlines()[-lines:])


def _check_fits_a_worker(session: Session, config: dict[str, Any]) -> None:
    """Refuse a distribution no live worker can run (`resources.refusal`), naming the key."""
    stale = get_settings().run_stale_seconds
    reported = [w.resources for w in live_workers(session=session, stale_seconds=stale)]
    refused = resources.refusal(
        [r for r in reported if r],
        str(config.get("strategy", "ddp")),
        int(config.get("processes", 1)),
        int(config.get("machines", 1)),
    )
    if refused is not None:
        raise run_config.ConfigInvalid(*refused)


def live_workers(*, session: Session, stale_seconds: float) -> list[Worker]:
    """Workers that heart-beat within the stale limit."""
    cutoff = utcnow() - timedelta(seconds=stale_seconds)
    return list(session.scalars(select(Worker).where(Worker.heartbeat_at >= cutoff)))


def counts(*, session: Session) -> dict[str, int]:
    """Runs per status."""
    rows = session.execute(select(TrainingRun.status, func.count()).group_by(TrainingRun.status))
    return {status: n for status, n in rows.all()}
