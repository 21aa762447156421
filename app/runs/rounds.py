"""The next round and human preference by model version.

A next round is a blind ranking project: its prompts come from a prompts snapshot or another
project, its candidates from a registered policy and the models it is compared with (by default
its base model), K = every candidate of a prompt, shown shuffled and without model names (every
assignment shows responses in its own random order, and labelers never see model names). The
project, its prompts and the generation run that fills it are made in one transaction.

The registry leaderboard rates every registered policy by Bradley-Terry (with a bootstrap
interval) from all rankings of responses it generated, in every project, and gives its win rate
against its base model from the same comparisons.
"""

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.aggregation import service as aggregation_service
from app.errors import Invalid
from app.projects import importer
from app.projects import service as projects_service
from app.projects.kinds import ProjectKind
from app.projects.models import Project, Prompt
from app.projects.schemas import ProjectCreate
from app.runs import generation, registry, run_config
from app.runs.models import ModelKind, RegisteredModel, TrainingRun
from app.runs.schemas import RegistryLeaderboard, RegistryRow
from trainer.model_files import Role

BLIND_INSTRUCTIONS = (
    "Rank the responses from best to worst: correct, helpful, honest and safe first.\n\n"
    "They come from different model versions, in random order and without names."
)


def _prompt_lines(
    session: Session, snapshot_id: int | None, project: str | int | None
) -> list[dict[str, Any]]:
    """The round's prompts as native import records, one per line a file would hold
    ({"id"?, "prompt" | "messages"})."""
    from app.datasets import service as datasets_service

    if (snapshot_id is None) == (project is None):
        raise Invalid("take the prompts from a prompts snapshot or from a project (one of them)")
    if snapshot_id is not None:
        snapshot = datasets_service.get_snapshot(session=session, snapshot_id=snapshot_id)
        if snapshot.kind != "prompts":
            raise Invalid(
                f"snapshot {snapshot_id} is a {snapshot.kind} snapshot; a round needs prompts",
                field="snapshot_id",
            )
        files = datasets_service.snapshot_files(snapshot=snapshot)
        lines = []
        for split in ("train.jsonl", "test.jsonl"):
            with open(files[split], encoding="utf-8") as f:
                lines += [{"prompt": json.loads(line)["prompt"]} for line in f if line.strip()]
        return lines
    source = projects_service.get_by_ref(session=session, ref=project)  # type: ignore[arg-type]
    rows = session.execute(
        select(Prompt.external_id, Prompt.messages)
        .where(
            Prompt.project_id == source.id,
            Prompt.is_gold.is_(False),
            Prompt.retired_at.is_(None),
        )
        .order_by(Prompt.id)
    )
    return [{"id": external_id, "messages": messages} for external_id, messages in rows]


def next_round(
    *,
    session: Session,
    model_id: int,
    name: str,
    snapshot_id: int | None = None,
    source_project: str | int | None = None,
    compare_with: list[str] | None = None,
    n: int = 1,
    overlap: int = 1,
    config: dict[str, Any] | None = None,
    created_by_id: int | None = None,
    reward_model: str | None = None,
) -> tuple[Project, TrainingRun]:
    """Create a blind ranking project of this policy against others, with its prompts, and
    queue its generation run: one transaction, which the caller commits (or rolls back, and
    nothing of the round is left)."""
    run_config.check_config("generate", {"n": n, **(config or {})})
    policy = registry.get_model(session=session, model_id=model_id)
    registry.resolve(session=session, ref=policy.name, role=Role.policy, field="model_id")
    if compare_with is None:
        compare_with = [str(policy.base_model_id)] if policy.base_model_id else []
    if reward_model:
        registry.reward_model(session=session, ref=reward_model)
    others = registry.policies(session=session, refs=compare_with) if compare_with else []
    candidates = [policy, *[m for m in others if m.id != policy.id]]
    if n < 1:
        raise Invalid("n (samples per model) must be at least 1", field="n")
    k = len(candidates) * n
    if not 2 <= k <= 9:
        raise Invalid(
            f"{len(candidates)} models × n={n} make {k} candidates per prompt; a ranking shows "
            "2 to 9 (tick another model, or change n)",
            field="compare_with",
        )
    rows = _prompt_lines(session, snapshot_id, source_project)
    if not rows:
        raise Invalid("the round has no prompts", field="snapshot_id")
    created = projects_service.create(
        session=session,
        data=ProjectCreate(
            name=name,
            kind=ProjectKind.ranking,
            k=k,
            overlap=overlap,
            instructions=BLIND_INSTRUCTIONS,
            order="uncertainty" if reward_model else "id",
        ),
    )
    importer.import_rows(session=session, project=created, rows=rows)
    project = projects_service.get(session=session, project_id=created.id)  # the import expunged it
    run = generation.create_generation_run(
        session=session,
        project=project.id,
        models=[str(m.id) for m in candidates],
        config={"n": n, **(config or {})},
        name=f"next round: {project.name}",
        created_by_id=created_by_id,
        reward_model=reward_model,
    )
    return project, run


def registry_leaderboard(
    *, session: Session, rounds: int = 1000, seed: int = 0
) -> RegistryLeaderboard:
    """Every registered policy's Bradley-Terry rating (95% interval) from all rankings of its
    generated responses, and its win rate against its base model; rated ones first."""
    rated, comparisons = aggregation_service.generated_model_ratings(
        session=session, rounds=rounds, seed=seed
    )
    by_model = {int(row.model): row for row in rated}
    index = {model: i for i, model in enumerate(comparisons.models)}
    wins = comparisons.win_matrix()
    policies = session.scalars(
        select(RegisteredModel).where(RegisteredModel.kind == ModelKind.policy)
    ).all()
    names = {m.id: m.name for m in policies}
    rows = []
    for model in policies:
        row = by_model.get(model.id)
        base = model.base_model_id
        win_rate, games = None, 0.0
        if base is not None and model.id in index and base in index:
            won, lost = wins[index[model.id], index[base]], wins[index[base], index[model.id]]
            games = float(won + lost)
            win_rate = float(won / games) if games else None
        rows.append(
            RegistryRow(
                model_id=model.id,
                name=model.name,
                base_model_id=base,
                base_model_name=names.get(base) if base is not None else None,
                rating=row.rating if row else None,
                lower=row.lower if row else None,
                upper=row.upper if row else None,
                rank=row.rank if row else None,
                comparisons=row.comparisons if row else 0,
                win_rate_vs_base=win_rate,
                games_vs_base=int(games),
            )
        )
    rows.sort(key=lambda r: (r.rank is None, r.rank or 0, -(r.rating or 0.0), r.model_id))
    return RegistryLeaderboard(comparisons=len(comparisons.a), rounds=rounds, seed=seed, rows=rows)
