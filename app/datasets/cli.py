"""`rlhf` commands of datasets: snapshot, snapshots."""

from typing import Annotated, Any

import typer

from app.aggregation.consensus import ConsensusMethod
from app.cli_support import (
    JsonOpt,
    ProgressOpt,
    bulk_command,
    db_session,
    fail,
    output,
)
from app.datasets.kinds import DatasetKind
from app.datasets.schemas import METHODS
from app.errors import validation_messages
from app.labeling.sources import Sources

# Top-level `rlhf` commands; app/cli.py registers them.
commands = typer.Typer()


def _snapshot_dict(snapshot: Any, created: bool | None = None) -> dict[str, Any]:
    from app.datasets import service
    from app.datasets.schemas import SnapshotOut

    data = SnapshotOut.model_validate(snapshot).model_dump(mode="json")
    data["files"] = {n: str(p) for n, p in service.snapshot_files(snapshot=snapshot).items()}
    if created is not None:
        data["created"] = created
    return data


@commands.command()
def snapshot(
    project: str,
    kind: Annotated[str, typer.Option(help=" | ".join(DatasetKind))],
    method: Annotated[str, typer.Option(help=" | ".join(METHODS))] = ConsensusMethod.ranked_pairs,
    split: Annotated[float, typer.Option(help="Fraction of prompts in train.")] = 0.9,
    include_top_ranked: Annotated[
        bool, typer.Option(help="sft: add the top consensus response of ranked prompts.")
    ] = False,
    normalize: Annotated[bool, typer.Option(help="ratings: per-labeler z-scores.")] = False,
    with_labelers: Annotated[
        bool, typer.Option(help="Rows name their labelers (emails) and annotation times.")
    ] = False,
    weighting: Annotated[
        str, typer.Option(help="none | reliability: weigh labelers by fitted reliability.")
    ] = "none",
    desirable_at: Annotated[
        float, typer.Option(help="kto of 0-5 ratings: scores ≥ this are desirable (true).")
    ] = 4.0,
    undesirable_at: Annotated[
        float, typer.Option(help="kto of 0-5 ratings: scores ≤ this are undesirable (false).")
    ] = 2.0,
    sources: Annotated[
        str,
        typer.Option(
            help="human | ai | all: which labels go in, before any consensus (human: people's "
            "labels, labelers' and imported; ai: AI judges'; all: both, a consensus of both is "
            "a mixed row)."
        ),
    ] = Sources.human.value,
    progress: ProgressOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Freeze a project's labels into a versioned dataset snapshot (JSONL + Parquet)."""
    from pydantic import ValidationError

    from app.datasets import service
    from app.datasets.schemas import SnapshotCreate
    from app.projects import service as project_service

    try:
        data = SnapshotCreate(
            kind=kind,
            method=method,
            split=split,
            include_top_ranked=include_top_ranked,
            normalize=normalize,
            with_labelers=with_labelers,
            weighting=weighting,
            desirable_at=desirable_at,
            undesirable_at=undesirable_at,
            sources=sources,
        )
    except ValidationError as exc:
        fail("; ".join(validation_messages(exc, prefix="--")))
    with bulk_command("snapshot", "prompts", progress) as (session, bar):
        found = project_service.get_by_ref(session=session, ref=project)
        made, created = service.create_snapshot(
            session=session, project=found, data=data, progress=bar
        )
        result = _snapshot_dict(made, created)
    output(
        result,
        as_json,
        lambda s: (
            f"snapshot {s['id']} ({s['kind']} v{s['version']}): {s['train_rows']} train, "
            f"{s['test_rows']} test rows, sha256 {s['content_hash'][:12]}"
            + ("" if s["created"] else " — unchanged, the existing snapshot is returned")
            + f"\n{s['files']['manifest.json'].rsplit('/', 1)[0]}"
        ),
    )


@commands.command()
def snapshots(
    project: str,
    kind: Annotated[str | None, typer.Option(help="Only this kind.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List a project's snapshots, newest first."""
    from app.datasets import service
    from app.projects import service as project_service

    with db_session() as session:
        found = project_service.get_by_ref(session=session, ref=project)
        data = [
            _snapshot_dict(s)
            for s in service.list_snapshots(session=session, project_id=found.id, kind=kind)
        ]
    output(
        data,
        as_json,
        lambda d: "\n".join(
            f"{s['id']:4} {s['kind']:9} v{s['version']:<3} prev={s['previous_id'] or '-':<4} "
            f"train={s['train_rows']} test={s['test_rows']} {s['content_hash'][:12]}"
            + (f" sources={s['params']['sources']}" if "sources" in s["params"] else "")
            for s in d
        ),
    )
