"""Generation runs: registered policies sample candidates for a project's prompts.

The worker runs `python -m trainer generate` like any trainer; this module holds what differs:
which samples to ask for (prepare), and streaming the samples the trainer writes into the
project while it runs (ingest), idempotently on (prompt, model, sample index). A requeued or
retried run asks again only for what is still missing, and the trainer skips rows it already
wrote, so nothing is stored twice.
"""

import json
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from app.errors import Invalid
from app.projects import generated
from app.projects import service as projects_service
from app.projects.kinds import ProjectKind
from app.runs import appended, registry, run_config
from app.runs.models import RegisteredModel, RunKind, TrainingRun

PROMPTS_FILE = "prompts.jsonl"
SAMPLES_FILE = "samples.jsonl"
PROGRESS_FILE = "ingested.json"
INGEST_BATCH = 500


def create_generation_run(
    *,
    session: Session,
    project: str | int,
    models: list[str],
    config: dict[str, Any],
    name: str = "",
    created_by_id: int | None = None,
    reward_model: str | None = None,
) -> TrainingRun:
    """Queue a run that samples `n` responses per prompt per model into a ranking/rating project."""
    target = projects_service.get_by_ref(session=session, ref=project)
    if target.kind == ProjectKind.demonstration:
        raise Invalid(
            f"project {target.name!r} is a demonstration project: labelers write its answers, "
            "so there is nothing to generate",
            field="project",
        )
    checked = run_config.check_config(RunKind.generate, config)
    policies = registry.policies(session=session, refs=models)
    scorer_path, scorer = None, None
    if reward_model:
        scorer_path, scorer = registry.reward_model(session=session, ref=reward_model)
    run = TrainingRun(
        kind=RunKind.generate,
        snapshot_id=None,
        project_id=target.id,
        model_ids=[m.id for m in policies],
        base_model=policies[0].path,
        base_model_id=policies[0].id,
        reward_model=scorer_path,
        reward_model_id=scorer.id if scorer else None,
        config=checked,
        name=name or f"generate for {target.name}: {', '.join(m.name for m in policies)}",
        created_by_id=created_by_id,
    )
    session.add(run)
    session.flush()
    return run


def _label(model: RegisteredModel) -> str:
    """The name the trainer writes in each row (NAME=PATH must split at its first '=')."""
    return str(model.id) if "=" in model.name else model.name


def _policies(session: Session, run: TrainingRun) -> list[RegisteredModel]:
    found = [session.get(RegisteredModel, mid) for mid in run.model_ids]
    return [m for m in found if m is not None]


def prepare(*, session: Session, run: TrainingRun, run_dir: Path) -> Path:
    """Write the prompts still missing samples and the trainer config into run_dir."""
    if run.project_id is None:
        raise Invalid(f"generation run {run.id} has no project (was it deleted?)")
    (run_dir / "output").mkdir(parents=True, exist_ok=True)
    n = int(run.config.get("n", 1))
    wanted: dict[int, dict[str, list[int]]] = {}
    for model in _policies(session, run):
        missing = generated.missing_samples(
            session=session,
            project_id=run.project_id,
            model_id=model.id,
            model_name=model.name,
            n=n,
        )
        for prompt_id, indices in missing.items():
            wanted.setdefault(prompt_id, {})[_label(model)] = indices
    messages = projects_service.prompt_messages(session=session, prompt_ids=list(wanted))
    with open(run_dir / PROMPTS_FILE, "w", encoding="utf-8") as f:
        for prompt_id, samples in wanted.items():
            row = {"prompt_id": prompt_id, "prompt": messages[prompt_id], "sample_indices": samples}
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    total = sum(len(v) for per_model in wanted.values() for v in per_model.values())
    config: dict[str, Any] = dict(run.config)
    config["models"] = [f"{_label(m)}={m.path}" for m in _policies(session, run)]
    config["train_file"] = str(run_dir / PROMPTS_FILE)
    config["output_dir"] = str(run_dir / "output")
    if run.reward_model:
        config["reward_model"] = run.reward_model
    (run_dir / "config.json").write_text(json.dumps(config, indent=2))
    progress = read_progress(run_dir)
    progress["planned"] = progress.get("stored", 0) + total
    _write_progress(run_dir, progress)
    return run_dir


def read_progress(run_dir: str | Path | None) -> dict[str, int]:
    """{"offset": bytes of samples.jsonl ingested, "stored": responses stored, "planned": …}."""
    return appended.read_progress(run_dir, PROGRESS_FILE)


def _write_progress(run_dir: Path, progress: dict[str, int]) -> None:
    appended.write_progress(run_dir, PROGRESS_FILE, progress)


def ingest(*, session: Session, run: TrainingRun, run_dir: Path) -> int:
    """Store the complete rows of samples.jsonl not ingested yet; returns how many were new."""
    path = run_dir / "output" / SAMPLES_FILE
    progress = read_progress(run_dir)
    lines, offset = appended.new_lines(path, int(progress.get("offset", 0)))
    if not lines:
        return 0
    by_label = {_label(m): m for m in _policies(session, run)}
    rows = []
    for line in lines:
        sample = json.loads(line)
        model = by_label.get(sample["model"])
        if model is None:
            continue
        rows.append(
            {
                "prompt_id": int(sample["prompt_id"]),
                "text": sample["text"].replace("\x00", "\ufffd"),  # PostgreSQL text has no NUL
                "model": model.name,
                "model_id": model.id,
                "sample_index": int(sample["sample_index"]),
                "meta": {
                    "run_id": run.id,
                    "finish_reason": sample["finish_reason"],
                    "prompt_tokens": sample["prompt_tokens"],
                    "completion_tokens": sample["completion_tokens"],
                    "truncated": sample["truncated"],
                    **({"reward": sample["reward"]} if "reward" in sample else {}),
                },
            }
        )
    new = 0
    for first in range(0, len(rows), INGEST_BATCH):
        new += generated.store_generated(session=session, rows=rows[first : first + INGEST_BATCH])
    session.commit()
    progress["offset"] = offset
    progress["stored"] = int(progress.get("stored", 0)) + new
    _write_progress(run_dir, progress)
    return new


def generation_details(*, session: Session, run: TrainingRun) -> dict[str, Any] | None:
    """What a run page shows of a generation run: project, models, samples stored / planned."""
    if run.kind != RunKind.generate:
        return None
    project = (
        projects_service.get(session=session, project_id=run.project_id)
        if run.project_id is not None
        else None
    )
    return {"project": project, "models": _policies(session, run), **read_progress(run.run_dir)}
