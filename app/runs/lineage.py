"""Where a model came from, and the runs list's summary columns.

A model's lineage is a tree: the model, the run that made it (kind, config), the snapshot it
trained on (id, kind, version, hash) and that snapshot's project, the model the run started
from (with its own lineage) and, for PPO, the reward model (with its own lineage). The page
and `rlhf models show --json` print the same tree.
"""

from datetime import datetime
from typing import Any

from sqlalchemy import func, select, tuple_
from sqlalchemy.orm import Session

from app.base import utcnow
from app.runs.models import RegisteredModel, RunKind, RunMetric, TrainingRun

MAX_DEPTH = 20
# The metrics that say how a run went, per kind, best first: summary (eval) then last step.
HEADLINE: dict[RunKind, list[tuple[str, ...]]] = {
    RunKind.sft: [("eval_loss", "loss")],
    RunKind.rm: [("eval_accuracy", "accuracy", "eval_loss", "loss")],
    RunKind.dpo: [("eval_accuracy", "accuracy", "loss")],
    RunKind.ppo: [("score", "eval_score"), ("kl", "eval_kl")],
}


def _snapshot(session: Session, snapshot_id: int | None) -> dict[str, Any] | None:
    from app.datasets import service as datasets_service
    from app.projects import service as project_service

    if snapshot_id is None:  # a run that reads no snapshot (generation)
        return None
    snapshot = datasets_service.get_snapshot(session=session, snapshot_id=snapshot_id)
    project = project_service.get(session=session, project_id=snapshot.project_id)
    return {
        "id": snapshot.id,
        "kind": snapshot.kind,
        "version": snapshot.version,
        "content_hash": snapshot.content_hash,
        "train_rows": snapshot.train_rows,
        "test_rows": snapshot.test_rows,
        "projects": [{"id": project.id, "name": project.name}],
    }


def _source(session: Session, path: str | None, model_id: int | None, depth: int) -> Any:
    """A model a run started from: its own lineage if registered, else its path or hub id."""
    if model_id is not None:
        model = session.get(RegisteredModel, model_id)
        if model is not None:
            return model_lineage(session=session, model=model, _depth=depth + 1)
    return {"path": path} if path else None


def model_lineage(*, session: Session, model: RegisteredModel, _depth: int = 0) -> dict[str, Any]:
    """The whole chain behind a registered model, as nested dicts."""
    tree: dict[str, Any] = {
        "model": {"id": model.id, "name": model.name, "kind": model.kind, "path": model.path},
        "run": None,
    }
    run = session.get(TrainingRun, model.run_id) if model.run_id is not None else None
    if run is None or _depth >= MAX_DEPTH:
        return tree
    tree["run"] = {
        "id": run.id,
        "kind": run.kind,
        "name": run.name,
        "status": run.status,
        "config": run.config,
        "snapshot": _snapshot(session, run.snapshot_id),
        "base_model": _source(session, run.base_model, run.base_model_id, _depth),
    }
    if run.kind == RunKind.ppo:
        tree["run"]["reward_model"] = _source(
            session, run.reward_model, run.reward_model_id, _depth
        )
    return tree


def get_model_by_ref(*, session: Session, ref: str) -> RegisteredModel:
    """A registered model by name or id, or NotFound."""
    from app.errors import NotFound

    model = session.scalar(select(RegisteredModel).where(RegisteredModel.name == ref))
    if model is None and ref.isdigit():
        model = session.get(RegisteredModel, int(ref))
    if model is None:
        raise NotFound(f"no registered model with name or id {ref!r}")
    return model


def short_name(ref: str) -> str:
    """The last part of a model's path or hub id (`/models/qwen-0.5b/` -> `qwen-0.5b`)."""
    parts = [part for part in ref.replace("\\", "/").split("/") if part]
    return parts[-1] if parts else ref


def base_of(run: TrainingRun, registered: dict[int, RegisteredModel]) -> dict[str, Any]:
    """How the runs list names a run's base model: its registered name, else the last part of
    its path; `path` is the whole reference (shown on hover)."""
    model = registered.get(run.base_model_id) if run.base_model_id is not None else None
    return {
        "id": model.id if model else None,
        "name": model.name if model else short_name(run.base_model),
        "path": run.base_model,
    }


def duration(run: TrainingRun, now: datetime | None = None) -> str:
    """How long a run ran (so far), as '1h 02m', '3m 05s' or '42s'; '–' before it starts."""
    if run.started_at is None:
        return "–"
    seconds = int(((run.finished_at or now or utcnow()) - run.started_at).total_seconds())
    hours, rest = divmod(max(seconds, 0), 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {seconds:02d}s" if minutes else f"{seconds}s"


def headline(kind: str, summary: dict[str, Any], last: dict[str, Any]) -> list[tuple[str, float]]:
    """The metrics that say how a run ended: (name, value) from its summary or last step."""
    out = []
    for names in HEADLINE.get(RunKind(kind), []):
        for name in names:
            value = summary.get(name, last.get(name))
            if isinstance(value, int | float) and not isinstance(value, bool):
                out.append((name, float(value)))
                break
    return out


def run_rows(*, session: Session, runs: list[TrainingRun]) -> list[dict[str, Any]]:
    """The runs list's columns: project, snapshot, base model, duration, headline metric,
    output model."""
    from app.datasets import service as datasets_service
    from app.projects import service as project_service

    ids = [r.id for r in runs]
    newest = (
        select(RunMetric.run_id, func.max(RunMetric.step))
        .where(RunMetric.run_id.in_(ids))
        .group_by(RunMetric.run_id)
    )
    last = {
        m.run_id: m.values
        for m in session.scalars(
            select(RunMetric).where(tuple_(RunMetric.run_id, RunMetric.step).in_(newest))
        )
    }
    projects = {
        p.id: p for p in project_service.list_projects(session=session, include_archived=True)
    }
    snapshots = {s.id: s for s in datasets_service.list_snapshots(session=session)}
    wanted = {r.output_model_id for r in runs} | {r.base_model_id for r in runs}
    models = {
        m.id: m
        for m in session.scalars(
            select(RegisteredModel).where(RegisteredModel.id.in_(wanted - {None}))
        )
    }
    now = utcnow()
    rows = []
    for run in runs:
        snapshot = snapshots.get(run.snapshot_id)
        output = models.get(run.output_model_id) if run.output_model_id else None
        rows.append(
            {
                "run": run,
                "snapshot": snapshot,
                "base": base_of(run, models),
                "project": projects.get(snapshot.project_id if snapshot else run.project_id),
                "duration": duration(run, now),
                "headline": headline(
                    run.kind, output.metrics if output else {}, last.get(run.id, {})
                ),
                "output": output,
            }
        )
    return rows
