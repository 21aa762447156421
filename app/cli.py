"""The `rlhf` command: serve, database, users, projects, import and export."""

import os
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated

import typer

from app.aggregation.cli import commands as aggregation_commands
from app.auth.cli import users_app
from app.cli_support import (
    JsonOpt,
    ProgressOpt,
    bulk_command,
    db_session,
    fail,
    output,
)
from app.datasets.cli import commands as dataset_commands
from app.datasets.kinds import DatasetKind
from app.projects.cli import commands as project_commands
from app.projects.cli import projects_app
from app.quality.cli import commands as quality_commands
from app.runs.cli import models_app, runs_app, train, worker

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
db_app = typer.Typer(no_args_is_help=True, help="Database migrations.")
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")
app.add_typer(projects_app, name="projects")
app.add_typer(runs_app, name="runs")
app.add_typer(models_app, name="models")
app.registered_commands += aggregation_commands.registered_commands
app.registered_commands += dataset_commands.registered_commands
app.registered_commands += quality_commands.registered_commands
app.command()(worker)
app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(train)

ROOT = Path(__file__).resolve().parent.parent


def alembic_config():
    from alembic.config import Config

    from app.config import get_settings

    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.set_main_option("sqlalchemy.url", get_settings().database_url.replace("%", "%%"))
    return config


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Migrate the database to REVISION (default: the newest)."""
    from alembic import command

    command.upgrade(alembic_config(), revision)
    typer.echo(f"database at {revision}")


@db_app.command("downgrade")
def db_downgrade(revision: str) -> None:
    """Migrate the database down to REVISION ('base' empties it)."""
    from alembic import command

    command.downgrade(alembic_config(), revision)
    typer.echo(f"database at {revision}")


KEEP_ALIVE_SECONDS = 65
SHUTDOWN_SECONDS = 7
"""On SIGTERM, in-flight requests get this long to finish; then they are cancelled."""


def default_processes() -> int:
    """One web process per CPU core this process may use."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)


@app.command()
def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: Annotated[
        int | None, typer.Option(help="Web server processes (default: one per CPU core).")
    ] = None,
    with_worker: Annotated[bool, typer.Option(help="Also run a training worker.")] = False,
) -> None:
    """Serve the web app (and, with --with-worker, a training worker beside it).

    Connection pools and worker threads follow from the number of processes
    (RLHF_DB_CONNECTIONS in all); SIGTERM drains in-flight requests for a few seconds.
    """
    import subprocess

    import uvicorn

    from app.config import get_settings

    processes = workers or default_processes()
    os.environ["RLHF_WEB_PROCESSES"] = str(processes)  # read by every web process
    get_settings.cache_clear()
    get_settings()
    worker_process = None
    if with_worker:
        worker_process = subprocess.Popen([sys.executable, "-m", "app", "worker"])
    typer.echo(f"rlhf-studio on http://{host}:{port} ({processes} processes)")
    try:
        uvicorn.run(
            "app.main:create_app",
            factory=True,
            host=host,
            port=port,
            workers=processes,
            log_level="warning",
            access_log=False,  # the app logs each request once, with its id (app/http/context)
            timeout_graceful_shutdown=SHUTDOWN_SECONDS,
            # Keep idle connections longer than uvicorn's 5 s: a client that reuses one just
            # as the server closes it gets an error, not an answer (busy API clients and
            # proxies keep their pooled connections for a minute or more).
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
        )
    finally:
        if worker_process is not None:
            worker_process.terminate()
            worker_process.wait(timeout=120)


@app.command()
def demo(as_json: JsonOpt = False) -> None:
    """Seed the demo: an admin, three labelers, three projects, tiny models (idempotent)."""
    from app.demo import seed

    with db_session() as session:
        result = seed(session=session)
    output(
        result,
        as_json,
        lambda r: "\n".join(
            ["demo logins:"]
            + [f"  {u['role']:8} {u['email']:28} password: {u['password']}" for u in r["users"]]
            + ["projects:"]
            + [
                f"  {p['id']:3} {p['name']} ({p['kind']}, {p['prompts']} prompts)"
                for p in r["projects"]
            ]
            + ["models (tiny and random, to try training on a CPU):"]
            + [f"  {m['kind']:7} {m['name']:16} {m['path']}" for m in r.get("models", [])]
            + (
                [
                    f"next round: project {r['next_round']['id']} {r['next_round']['name']} "
                    f"({r['next_round']['model']} vs its base, K={r['next_round']['k']}, blind; "
                    "the worker generates its candidates)"
                ]
                if "next_round" in r
                else []
            )
        ),
    )


# `rlhf import` (app/projects/cli.py): listed between demo and export in `rlhf --help`.
app.registered_commands += project_commands.registered_commands


@app.command("export")
def export(
    project: str,
    kind: Annotated[str, typer.Option(help=" | ".join([*DatasetKind, "labelstudio", "argilla"]))],
    format: Annotated[str, typer.Option("--format", help="jsonl")] = "jsonl",
    out: Annotated[Path | None, typer.Option("-o", "--out", help="File (default stdout).")] = None,
    with_labelers: Annotated[
        bool, typer.Option(help="Add each row's labeler (email) and annotation time.")
    ] = False,
    progress: ProgressOpt = None,
) -> None:
    """Export a project's labels in the training-file formats."""
    from app.datasets import export as export_rows
    from app.prefetch import WriteBehind
    from app.projects import service

    if format != "jsonl":
        fail("--format: only jsonl is supported here (Parquet comes with dataset snapshots)")
    with bulk_command("export", "rows", progress) as (session, bar):
        found = service.get_by_ref(session=session, ref=project)
        if kind in ("labelstudio", "argilla"):
            from app.datasets import tool_export

            blocks = tool_export.counted_json(session=session, project=found, tool=kind)
            if out:
                tool_export.write_settings(project=found, tool=kind, out=out)
        else:
            blocks = export_rows.counted_jsonl(
                session=session, project=found, kind=kind, with_labelers=with_labelers, progress=bar
            )
        count = 0
        with (
            open(out, "wb") if out else nullcontext(sys.stdout.buffer) as handle,
            WriteBehind(handle.write) as behind,
        ):
            for block, lines in blocks:
                behind.write(block)
                count += lines
    if out:
        typer.echo(f"wrote {count} rows to {out}", err=True)


def main() -> None:
    app()
