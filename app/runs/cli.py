"""`rlhf runs …`, `rlhf models …`, `rlhf worker` and `rlhf train …`."""

import json
from typing import Annotated, Any

import typer

from app.cli_support import JsonOpt, db_session, fail, output
from app.runs import health, judging, registry, service
from app.runs.models import ModelKind, RunKind
from app.runs.schemas import ModelOut, RunOut
from app.runs.worker import main as worker_main

runs_app = typer.Typer(no_args_is_help=True, help="Training runs.")
models_app = typer.Typer(no_args_is_help=True, help="The model registry.")


def _run_dict(run: Any) -> dict[str, Any]:
    return RunOut.model_validate(run).model_dump(mode="json")


def _parse_sets(sets: list[str]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for item in sets:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            fail(f"--set expects KEY=VALUE, got {item!r}")
        try:
            config[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            config[key.strip()] = value
    return config


@runs_app.command("start")
def runs_start(
    kind: Annotated[str, typer.Option(help=" | ".join(RunKind))],
    model: Annotated[
        list[str],
        typer.Option(
            help="Registered model id/name, a path or a hub id (generate: repeatable; judge: "
            "a registered reward model or causal LM, or none with --set endpoint=URL)."
        ),
    ] = [],  # noqa: B006
    snapshot: Annotated[
        int | None, typer.Option(help="Training runs: dataset snapshot id.")
    ] = None,
    project: Annotated[
        str | None,
        typer.Option(help="generate: the ranking/rating project to fill; judge: to label."),
    ] = None,
    reward_model: Annotated[str | None, typer.Option(help="PPO: the reward model.")] = None,
    set_: Annotated[list[str], typer.Option("--set", help="Trainer config KEY=VALUE.")] = [],  # noqa: B006
    name: str = "",
    as_json: JsonOpt = False,
) -> None:
    """Queue a training, generation or judge run; a worker picks it up."""

    with db_session() as session:
        run = service.create_run(
            session=session,
            kind=kind,
            snapshot_id=snapshot,
            models=model,
            reward_model=reward_model,
            config=_parse_sets(set_),
            name=name,
            project=project,
        )
        session.commit()
        data = _run_dict(run)
    output(data, as_json, lambda r: str(r["id"]))


@runs_app.command("show")
def runs_show(run_id: int, as_json: JsonOpt = False) -> None:
    """A run's status, its latest metrics and the end of its log."""

    with db_session() as session:
        run = service.get_run(session=session, run_id=run_id)
        rows = service.metrics(session=session, run_id=run_id)
        judge = judging.judge_details(session=session, run=run)
        output_model = (
            registry.get_model(session=session, model_id=run.output_model_id)
            if run.output_model_id
            else None
        )
        summary = output_model.metrics if output_model else {}
        data = _run_dict(run) | {
            "distribution": health.distribution(run.config, summary),
            "latest_metrics": rows[-1].values if rows else None,
            "log_tail": service.log_tail(run.run_dir, 20),
        }
        if judge is not None:  # items judged, labels stored, abstentions, disagreeing orders
            data["judge"] = {k: v for k, v in judge.items() if k != "project"}
    output(
        data,
        as_json,
        lambda d: (
            "\n".join(f"{k}: {v}" for k, v in d.items() if k != "log_tail")
            + "\n"
            + (d["log_tail"] or "")
        ),
    )


@runs_app.command("list")
def runs_list(status: str | None = None, kind: str | None = None, as_json: JsonOpt = False) -> None:
    """Runs, newest first."""

    with db_session() as session:
        data = [_run_dict(r) for r in service.list_runs(session=session, status=status, kind=kind)]
    output(
        data,
        as_json,
        lambda d: "\n".join(
            f"{r['id']:4} {r['kind']:4} {r['state']:10} attempt {r['attempt']} {r['name']}"
            for r in d
        ),
    )


@runs_app.command("cancel")
def runs_cancel(run_id: int, as_json: JsonOpt = False) -> None:
    """Cancel a run (a running one gets SIGTERM and keeps its last checkpoint)."""

    with db_session() as session:
        run = service.cancel_run(
            session=session, run=service.get_run(session=session, run_id=run_id)
        )
        session.commit()
        data = _run_dict(run)
    output(
        data,
        as_json,
        lambda r: (
            f"run {r['id']}: {r['status']}"
            + (" (cancel requested)" if r["cancel_requested"] and r["status"] == "running" else "")
        ),
    )


@runs_app.command("retry")
def runs_retry(run_id: int, as_json: JsonOpt = False) -> None:
    """Queue a failed or cancelled run again; it resumes from its last checkpoint."""

    with db_session() as session:
        run = service.retry_run(
            session=session, run=service.get_run(session=session, run_id=run_id)
        )
        session.commit()
        data = _run_dict(run)
    output(
        data,
        as_json,
        lambda r: f"run {r['id']}: {r['status']}, resumes as attempt {r['attempt'] + 1}",
    )


@models_app.command("list")
def models_list(kind: str | None = None, as_json: JsonOpt = False) -> None:
    """Registered models, newest first."""

    with db_session() as session:
        data = [
            ModelOut.model_validate(m).model_dump(mode="json")
            for m in registry.list_models(session=session, kind=kind)
        ]
    output(
        data,
        as_json,
        lambda d: "\n".join(f"{m['id']:4} {m['kind']:7} {m['name']:28} {m['path']}" for m in d),
    )


@models_app.command("show")
def models_show(name: str, as_json: JsonOpt = False) -> None:
    """A model's whole lineage: run, snapshot, project, base model, reward model (PPO)."""
    from app.runs import lineage

    with db_session() as session:
        model = lineage.get_model_by_ref(session=session, ref=name)
        tree = lineage.model_lineage(session=session, model=model)
    output(tree, as_json, lambda t: "\n".join(_tree_lines(t, 0)))


def _tree_lines(tree: dict[str, Any], depth: int) -> list[str]:
    pad = "  " * depth
    model = tree["model"]
    lines = [f"{pad}model {model['name']} ({model['kind']}) {model['path']}"]
    run = tree["run"]
    if run is None:
        return lines + [f"{pad}  registered by hand"]
    snap = run["snapshot"]
    lines.append(f"{pad}  run #{run['id']} {run['kind']} config {json.dumps(run['config'])}")
    if snap is not None:
        projects = ", ".join(p["name"] for p in snap["projects"])
        lines.append(
            f"{pad}  snapshot #{snap['id']} {snap['kind']} v{snap['version']} "
            f"{snap['content_hash'][:12]} of {projects}"
        )
    for key, label in (("base_model", "from"), ("reward_model", "reward model")):
        source = run.get(key)
        if source is None:
            continue
        if "model" in source:
            lines += [f"{pad}  {label}:"] + _tree_lines(source, depth + 2)
        else:
            lines.append(f"{pad}  {label}: {source['path']}")
    return lines


@models_app.command("register")
def models_register(
    name: str,
    path: str,
    kind: Annotated[str, typer.Option(help=" | ".join(ModelKind))] = ModelKind.policy,
    as_json: JsonOpt = False,
) -> None:
    """Register a model directory or hub id under a name."""

    with db_session() as session:
        model = registry.register_model(session=session, name=name, kind=kind, path=path)
        session.commit()
        data = {"id": model.id, "name": model.name, "kind": model.kind, "path": model.path}
    output(data, as_json, lambda m: str(m["id"]))


@models_app.command("leaderboard")
def models_leaderboard(
    rounds: Annotated[int, typer.Option(help="Bootstrap rounds.")] = 1000,
    seed: int = 0,
    as_json: JsonOpt = False,
) -> None:
    """Human preference by model version: rating, 95% interval, win rate against the base."""
    from app.runs import rounds as round_service

    with db_session() as session:
        board = round_service.registry_leaderboard(session=session, rounds=rounds, seed=seed)
        data = board.model_dump(mode="json")

    def table(d: dict[str, Any]) -> str:
        lines = [f"{'rank':>4}  {'model':28} {'rating':>7}  {'95% interval':>15}  vs base"]
        for r in d["rows"]:
            if r["rating"] is None:
                lines.append(f"{'-':>4}  {r['name']:28} {'unrated':>7}")
                continue
            vs = (
                f"{100 * r['win_rate_vs_base']:.0f}% of {r['games_vs_base']} "
                f"vs {r['base_model_name']}"
                if r["win_rate_vs_base"] is not None
                else ""
            )
            lines.append(
                f"{r['rank']:>4}  {r['name']:28} {r['rating']:7.0f}  "
                f"{r['lower']:7.0f}…{r['upper']:<7.0f}  {vs}"
            )
        lines.append(f"{d['comparisons']} comparisons")
        return "\n".join(lines)

    output(data, as_json, table)


@models_app.command("next-round")
def models_next_round(
    model: Annotated[str, typer.Argument(help="The registered policy (id or name).")],
    name: Annotated[str, typer.Option(help="Name of the new ranking project.")],
    snapshot: Annotated[int | None, typer.Option(help="A prompts snapshot.")] = None,
    project: Annotated[str | None, typer.Option(help="Or a project to take prompts from.")] = None,
    compare_with: Annotated[
        list[str] | None, typer.Option(help="Policies to compare with (default: its base).")
    ] = None,
    n: Annotated[int, typer.Option(help="Samples per prompt per model.")] = 1,
    overlap: Annotated[int, typer.Option(help="Labelers per prompt.")] = 1,
    set_: Annotated[list[str], typer.Option("--set", help="Generation KEY=VALUE.")] = [],  # noqa: B006
    as_json: JsonOpt = False,
) -> None:
    """Create a blind ranking project of MODEL against others and queue its generation run."""
    from app.runs import rounds as round_service

    with db_session() as session:
        policy = registry.registered(session=session, ref=model)
        if policy is None:
            fail(f"no registered model {model!r}")
        assert policy is not None
        created, run = round_service.next_round(
            session=session,
            model_id=policy.id,
            name=name,
            snapshot_id=snapshot,
            source_project=project,
            compare_with=compare_with,
            n=n,
            overlap=overlap,
            config=_parse_sets(set_),
        )
        session.commit()
        data = {"project_id": created.id, "project": created.name, "k": created.k}
        data["run"] = _run_dict(run)
    output(data, as_json, lambda d: f"project {d['project_id']} (K={d['k']}), run {d['run']['id']}")


def worker(
    poll: Annotated[float, typer.Option(help="Seconds between polls.")] = 1.0,
    once: Annotated[bool, typer.Option(help="Run at most one queued run, then exit.")] = False,
) -> None:
    """Claim queued training runs and run them (SIGTERM: checkpoint, requeue, exit)."""
    worker_main(poll_seconds=poll, once=once)


def train(ctx: typer.Context) -> None:
    """Run the trainer directly: `rlhf train sft|rm|ppo|dpo|generate --config run.json [flags]`."""
    from trainer.__main__ import main as trainer_main  # torch: loaded by this command only

    raise typer.Exit(trainer_main(ctx.args))
