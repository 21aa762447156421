"""Judge runs: a reward model, a causal LM asked pairwise, or a chat endpoint labels a project's
prompts as a tracked annotator (AI feedback).

The worker runs `python -m trainer judge` like any trainer; this module holds what differs:
the items to judge (prepare: every prompt of the project that has responses to judge and is not
retired, gold items included, so whether a judge saw an item never tells which items are gold),
and streaming the verdicts the trainer writes into the project while it runs (ingest, through
`labeling.judged`), idempotently on (run, prompt): the trainer writes each item once, a
resumed trainer skips the items already in its judgments.jsonl, and a verdict stored before is
passed over, so a requeued or retried run stores nothing twice.

The endpoint's API key is never stored: the run's config holds the name of the environment
variable the worker's trainer reads it from (`endpoint_key_env`).
"""

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.errors import Invalid, NotFound
from app.labeling import judged
from app.projects import service as projects_service
from app.projects.kinds import ProjectKind, RatingScale
from app.projects.models import Project, Prompt, Response
from app.runs import appended, registry, run_config
from app.runs.models import RegisteredModel, RunKind, TrainingRun
from trainer.configs import ConfigError, JudgeConfig, build_config
from trainer.model_files import Role

ITEMS_FILE = "items.jsonl"
JUDGMENTS_FILE = "judgments.jsonl"  # trainer/judge.py JUDGMENTS_FILE (not imported: torch)
PROGRESS_FILE = "judged.json"
INGEST_BATCH = 500
STREAM_ROWS = 1000

SCALES: dict[str, dict[str, float]] = {
    RatingScale.thumbs: {"scale_low": -1.0, "scale_high": 1.0, "scale_step": 2.0},
    RatingScale.zero_to_five: {"scale_low": 0.0, "scale_high": 5.0, "scale_step": 1.0},
}
"""A rating project's scale as the judge's config gives it (the values `validation.SCALES`
accepts)."""


def fixed_config(project: Project) -> dict[str, Any]:
    """The judge's config keys the project sets: its kind and, for ratings, its scale."""
    fixed: dict[str, Any] = {"project_kind": project.kind}
    if project.kind == ProjectKind.rating:
        fixed |= SCALES[project.rating_scale]
    return fixed


def _judge_kind(cfg: JudgeConfig) -> str:
    """trainer/judge.py's choice of judge for this config (imported here: it loads torch)."""
    from trainer.judge import judge_kind

    return judge_kind(cfg)


def create_judge_run(
    *,
    session: Session,
    project: str | int,
    model: str,
    config: dict[str, Any],
    name: str = "",
    created_by_id: int | None = None,
) -> TrainingRun:
    """Queue a run whose judge labels a ranking or rating project's prompts: a registered model
    (`model`), or an OpenAI-compatible endpoint (config `endpoint` and `endpoint_model`)."""
    try:
        target = projects_service.get_by_ref(session=session, ref=project)
    except NotFound as exc:
        raise Invalid(exc.message, field="project") from None
    if target.kind == ProjectKind.demonstration:
        raise Invalid(
            f"project {target.name!r} is a demonstration project: labelers write its answers, "
            "so there is nothing for a judge to rank or rate",
            field="project",
        )
    fixed = fixed_config(target)
    if target.judge_template and "judge_template" not in config:
        config = {**config, "judge_template": target.judge_template}  # the project's question
    checked = run_config.check_config(RunKind.judge, config, fixed)
    endpoint = str(checked.get("endpoint") or "")
    judge: RegisteredModel | None = None
    if endpoint:
        if model:
            raise Invalid(
                "a judge is a registered model or an endpoint, not both: leave model empty "
                "with an endpoint",
                field="model",
            )
        judge_name, path = str(checked["endpoint_model"]), endpoint
    else:
        if not model:
            raise Invalid(
                "a judge run needs a registered model (a reward model, or a causal LM asked "
                "pairwise), or config endpoint and endpoint_model",
                field="model",
            )
        try:
            path, judge = registry.resolve(
                session=session, ref=model, role=Role.judge, field="model", registered_only=True
            )
        except NotFound as exc:
            raise Invalid(exc.message, field="model") from None
        assert judge is not None
        judge_name = judge.name
        _check_local_kind(target, {**checked, **fixed, "model": path}, judge_name)
    run = TrainingRun(
        kind=RunKind.judge,
        snapshot_id=None,
        project_id=target.id,
        model_ids=[judge.id] if judge else [],
        base_model=path,
        base_model_id=judge.id if judge else None,
        config=checked,
        name=name or f"judge {target.name} with {judge_name}",
        created_by_id=created_by_id,
    )
    session.add(run)
    session.flush()
    return run


def _check_local_kind(project: Project, values: dict[str, Any], judge_name: str) -> None:
    """Refuse a local judge the trainer would refuse: one whose kind its config.json does not
    tell (or contradicts), or one that gives no value on a rating project's scale."""
    cfg = build_config(RunKind.judge, values)
    assert isinstance(cfg, JudgeConfig)
    try:
        found = _judge_kind(dataclasses.replace(cfg, judge_kind="auto"))
        kind = _judge_kind(cfg)
    except ConfigError as exc:
        raise run_config.ConfigInvalid(str(exc), exc.key) from None
    if kind != found:
        raise run_config.ConfigInvalid(
            f"judge_kind {kind} does not fit model {judge_name!r}, which is judged as {found}",
            "judge_kind",
        )
    if project.kind == ProjectKind.rating and kind != "reward_model":
        raise Invalid(
            f"project {project.name!r} is a rating project: its judge must give each response "
            f"a value on the scale, which only a reward model does; {judge_name!r} is a causal "
            "LM that compares responses",
            field="model",
        )


def judge_model_name(*, session: Session, run: TrainingRun) -> str:
    """The judge's model name (its annotator is `judge:<name>`): the registered model's name,
    or the endpoint's model."""
    for model_id in run.model_ids:
        model = session.get(RegisteredModel, model_id)
        if model is not None:
            return model.name
    return str(run.config.get("endpoint_model") or run.base_model)


def _project(session: Session, run: TrainingRun) -> Project:
    if run.project_id is None:
        raise Invalid(f"judge run {run.id} has no project (was it deleted?)")
    return projects_service.get(session=session, project_id=run.project_id)


def items(*, session: Session, project: Project) -> Iterator[dict[str, Any]]:
    """The items to judge, in trainer/judge.py's input format, one prompt at a time (streamed:
    a project's texts need not fit in memory): every prompt of the project that is not retired
    and has responses to judge (2 to rank, 1 to rate), gold items included, each response under
    its id."""
    wanted = 2 if project.kind == ProjectKind.ranking else 1
    enough = (
        select(Response.prompt_id)
        .join(Prompt, Prompt.id == Response.prompt_id)
        .where(Prompt.project_id == project.id, Prompt.retired_at.is_(None))
        .group_by(Response.prompt_id)
        .having(func.count() >= wanted)
    )
    rows = session.execute(
        select(Prompt.id, Prompt.messages, Response.id, Response.text)
        .join(Response, Response.prompt_id == Prompt.id)
        .where(Prompt.id.in_(enough))
        .order_by(Prompt.id, Response.position, Response.id)
        .execution_options(yield_per=STREAM_ROWS)
    )
    item: dict[str, Any] | None = None
    for prompt_id, messages, response_id, text in rows:
        if item is None or item["id"] != prompt_id:
            if item is not None:
                yield item
            item = {"id": prompt_id, "prompt": messages, "responses": []}
        item["responses"].append({"id": response_id, "text": text})
    if item is not None:
        yield item


def prepare(*, session: Session, run: TrainingRun, run_dir: Path) -> Path:
    """Write the items and the trainer config into run_dir."""
    project = _project(session, run)
    (run_dir / "output").mkdir(parents=True, exist_ok=True)
    planned = 0
    with open(run_dir / ITEMS_FILE, "w", encoding="utf-8") as f:
        for item in items(session=session, project=project):
            f.write(json.dumps(item, ensure_ascii=False) + "\n")
            planned += 1
    config: dict[str, Any] = {**run.config, **fixed_config(project)}
    if not config.get("endpoint"):
        config["model"] = run.base_model
    config["train_file"] = str(run_dir / ITEMS_FILE)
    config["output_dir"] = str(run_dir / "output")
    (run_dir / "config.json").write_text(json.dumps(config, indent=2))
    progress = read_progress(run_dir)
    progress["planned"] = planned
    _write_progress(run_dir, progress)
    return run_dir


def read_progress(run_dir: str | Path | None) -> dict[str, int]:
    """{"offset": bytes of judgments.jsonl ingested, "planned": items in the items file}."""
    return appended.read_progress(run_dir, PROGRESS_FILE)


def _write_progress(run_dir: Path, progress: dict[str, int]) -> None:
    appended.write_progress(run_dir, PROGRESS_FILE, progress)


def ingest(*, session: Session, run: TrainingRun, run_dir: Path) -> int:
    """Store the complete rows of judgments.jsonl not ingested yet; how many verdicts were new."""
    path = run_dir / "output" / JUDGMENTS_FILE
    progress = read_progress(run_dir)
    lines, offset = appended.new_lines(path, int(progress.get("offset", 0)))
    if not lines:
        return 0
    verdicts = []
    for line in lines:
        try:
            verdicts.append(judged.Verdict.of(json.loads(line)))
        except (ValueError, TypeError, KeyError):
            continue  # not one of this project's prompts (ids are prompt ids)
    new = 0
    if verdicts:
        project = _project(session, run)
        user_id = judged.judge_user(
            session=session, model=judge_model_name(session=session, run=run)
        )
        for first in range(0, len(verdicts), INGEST_BATCH):
            new += judged.store_verdicts(
                session=session,
                project=project,
                run_id=run.id,
                user_id=user_id,
                verdicts=verdicts[first : first + INGEST_BATCH],
            )
    session.commit()
    progress["offset"] = offset
    _write_progress(run_dir, progress)
    return new


def judge_details(*, session: Session, run: TrainingRun) -> dict[str, Any] | None:
    """What a run page and `rlhf runs show` say of a judge run: the project, the judge, items
    judged of those planned, labels stored, abstentions (by reason) and orders that
    disagreed."""
    if run.kind != RunKind.judge:
        return None
    project = (
        projects_service.get(session=session, project_id=run.project_id)
        if run.project_id is not None
        else None
    )
    name = judge_model_name(session=session, run=run)
    return {
        "project": project,
        "judge": judged.judge_name(name),
        "planned": read_progress(run.run_dir).get("planned"),
        **judged.judged_counts(session=session, run_id=run.id),
    }
