"""Training runs, their metrics, and the model registry."""

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.base import Base, utcnow
from app.config import get_settings
from app.datasets.kinds import DatasetKind
from app.runs import failures


class RunKind(StrEnum):
    """Which trainer a run starts (`python -m trainer <kind>`)."""

    sft = "sft"
    rm = "rm"
    ppo = "ppo"
    dpo = "dpo"
    generate = "generate"
    judge = "judge"


TRAINS_ON: dict[RunKind, tuple[DatasetKind, ...]] = {
    RunKind.sft: (DatasetKind.sft,),
    RunKind.rm: (DatasetKind.rankings, DatasetKind.pairs, DatasetKind.ratings),
    RunKind.ppo: (DatasetKind.prompts,),
    RunKind.dpo: (DatasetKind.pairs,),
}
"""The snapshot kinds each run kind trains on (the one table the form, pages and service read).
A generate run reads no snapshot: it answers a project's prompts; nor does a judge run, which
labels them. No run kind trains on `kto`
(its files are for other trainers, e.g. TRL's KTOTrainer)."""


def run_kinds_for(snapshot_kind: str) -> list[RunKind]:
    """The run kinds a snapshot of this kind can feed, in RunKind order (may be none)."""
    return [kind for kind, kinds in TRAINS_ON.items() if snapshot_kind in kinds]


class RunStatus(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


FINISHED = {RunStatus.succeeded, RunStatus.failed, RunStatus.cancelled}


class ModelKind(StrEnum):
    policy = "policy"
    reward = "reward"


class RegisteredModel(Base):
    """A model the product knows: a base model someone registered, or a run's output."""

    __tablename__ = "models"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(10))
    path: Mapped[str] = mapped_column(Text)
    """A local directory or a hub id; what `from_pretrained` receives."""
    base_model: Mapped[str | None] = mapped_column(Text)
    """What the run started from (a path, hub id, or another registered model's path)."""
    base_model_id: Mapped[int | None] = mapped_column(ForeignKey("models.id"))
    snapshot_content_hash: Mapped[str | None] = mapped_column(String(64))
    run_id: Mapped[int | None]
    """The run that produced it (no foreign key: runs also point at models, see output_model_id)."""
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """The run's summary (eval loss, accuracy, mean score …)."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TrainingRun(Base):
    __tablename__ = "training_runs"
    __table_args__ = (Index("ix_training_runs_status_id", "status", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(10), default=RunStatus.queued)
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """Trainer config keys set for this run (the trainer's defaults fill the rest)."""
    snapshot_id: Mapped[int | None] = mapped_column(ForeignKey("snapshots.id"))
    """What a training run trains on (None for a generation run)."""
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id", ondelete="SET NULL"))
    """A generation run: the project whose prompts it answers; a judge run: the one it labels."""
    model_ids: Mapped[list[Any]] = mapped_column(default=list)
    """A generation run: the registered models it samples from; a judge run: its judge."""
    base_model: Mapped[str] = mapped_column(Text)
    base_model_id: Mapped[int | None] = mapped_column(ForeignKey("models.id"))
    reward_model: Mapped[str | None] = mapped_column(Text)
    reward_model_id: Mapped[int | None] = mapped_column(ForeignKey("models.id"))
    name: Mapped[str] = mapped_column(String(200), default="")
    attempt: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=3)
    worker: Mapped[str | None] = mapped_column(String(200))
    heartbeat_at: Mapped[datetime | None]
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    exit_code: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(Text)
    """Why it failed, with the tail of the trainer's log."""
    run_dir: Mapped[str | None] = mapped_column(Text)
    metrics_offset: Mapped[int] = mapped_column(default=0)
    """Bytes of metrics.jsonl already copied into run_metrics."""
    output_model_id: Mapped[int | None] = mapped_column(ForeignKey("models.id"))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    retry_at: Mapped[datetime | None]
    """A retried run waits in the queue until then (backoff after a failed attempt)."""

    @property
    def state(self) -> str:
        """The status as it stands: `stale` for a running run whose heartbeat is too old."""
        limit = timedelta(seconds=get_settings().run_stale_seconds)
        beat = self.heartbeat_at
        if self.status == RunStatus.running and (beat is None or utcnow() - beat > limit):
            return "stale"
        return self.status

    @property
    def cause(self) -> str | None:
        """Why its last attempt ended badly, in one line (None: nothing went wrong)."""
        if self.status == RunStatus.failed and not self.error:
            return "the run failed"
        return failures.cause_of(self.error)

    @property
    def failure_log(self) -> str:
        """The end of the log recorded under the cause."""
        return failures.log_of(self.error)

    @property
    def retryable(self) -> bool:
        """Whether a retry can get further (failed for a passing cause, or cancelled)."""
        return failures.retryable(self.status, self.exit_code, self.error)


class Worker(Base):
    """A live `rlhf worker`: it heart-beats here whether idle or running a run."""

    __tablename__ = "workers"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    run_id: Mapped[int | None]
    """The run it is training now (no foreign key: a worker row outlives nothing)."""
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow)
    resources: Mapped[dict[str, Any] | None]
    """What its machine offers a run (`app.runs.resources.measure`), measured when it starts."""


class RunMetric(Base):
    __tablename__ = "run_metrics"
    __table_args__ = (UniqueConstraint("run_id", "step"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("training_runs.id", ondelete="CASCADE"))
    step: Mapped[int]
    values: Mapped[dict[str, Any]]
    """One line of the trainer's metrics.jsonl."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
