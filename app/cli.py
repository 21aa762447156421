"""The `rlhf` command: serve, database, users, projects, import and export."""

import json
import os
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated, Any

import typer

from app.aggregation.cli import commands as aggregation_commands
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
from app.errors import validation_messages
from app.projects.formats import ImportFormat
from app.projects.kinds import ProjectKind, RatingScale
from app.quality.cli import commands as quality_commands
from app.runs.cli import models_app, runs_app, train, worker

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
db_app = typer.Typer(no_args_is_help=True, help="Database migrations.")
users_app = typer.Typer(no_args_is_help=True, help="Users and API tokens.")
projects_app = typer.Typer(no_args_is_help=True, help="Projects.")
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


@users_app.command("create")
def users_create(
    email: str,
    role: Annotated[str, typer.Option(help="admin | labeler")] = "labeler",
    password_stdin: Annotated[bool, typer.Option(help="Read the password from stdin.")] = False,
    token: Annotated[bool, typer.Option(help="Also issue an API token (printed once).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Create a user."""
    from app.auth import service

    password = sys.stdin.readline().rstrip("\n") if password_stdin else None
    with db_session() as session:
        user = service.create_user(session=session, email=email, role=role, password=password)
        plain = service.create_token(session=session, user=user, name="cli")[1] if token else None
        session.commit()
        data = {"id": user.id, "email": user.email, "role": user.role, "token": plain}
    output(
        data,
        as_json,
        lambda d: (
            f"created user {d['id']} {d['email']} ({d['role']})"
            + (f"\napi token (shown once): {d['token']}" if d["token"] else "")
        ),
    )


@users_app.command("list")
def users_list(as_json: JsonOpt = False) -> None:
    """List users."""
    from app.auth import service

    with db_session() as session:
        data = [
            {"id": u.id, "email": u.email, "role": u.role, "active": u.is_active}
            for u in service.list_users(session=session)
        ]
    output(
        data,
        as_json,
        lambda d: "\n".join(
            f"{u['id']:4} {u['email']:32} {u['role']:8} {'active' if u['active'] else 'inactive'}"
            for u in d
        ),
    )


@users_app.command("update")
def users_update(
    email: str,
    role: Annotated[str | None, typer.Option(help="admin | labeler")] = None,
    active: Annotated[
        bool | None, typer.Option("--active/--inactive", help="Activate or deactivate.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Change a user's role or active flag (the last active admin keeps both)."""
    from app.auth import service

    with db_session() as session:
        user = service.get_by_email(session=session, email=email)
        if user is None:
            fail(f"no user with email {email!r}")
        assert user is not None
        if role is not None:
            service.set_role(session=session, user=user, role=role)
        if active is not None:
            service.set_active(session=session, user=user, active=active)
        session.commit()
        data = {"id": user.id, "email": user.email, "role": user.role, "active": user.is_active}
    output(
        data,
        as_json,
        lambda d: f"{d['email']}: {d['role']}, {'active' if d['active'] else 'inactive'}",
    )


QuestionsOpt = Annotated[
    Path | None,
    typer.Option(help="JSON file: a list of question definitions (see docs/questions.md)."),
]


def _questions_file(path: Path) -> Any:
    """The JSON list of question definitions in `path` (exits naming the file when unreadable)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        fail(f"--questions: cannot read {path} ({exc.strerror})")
    except json.JSONDecodeError as exc:
        fail(f"--questions: {path} line {exc.lineno} column {exc.colno}: invalid JSON: {exc.msg}")


def _project_dict(project: Any) -> dict[str, Any]:
    from app.projects.schemas import ProjectOut

    return ProjectOut.model_validate(project).model_dump(mode="json")


def _strength_scale_option(value: str) -> list[Any]:
    """--strength-scale: '' (none), 'default', or a JSON file of levels."""
    import json

    from app.projects.strength import DEFAULT_STRENGTH_SCALE

    if not value:
        return []
    if value == "default":
        return DEFAULT_STRENGTH_SCALE
    try:
        levels = json.loads(Path(value).read_text())
    except OSError as exc:
        fail(f"--strength-scale: cannot read {value}: {exc.strerror}")
    except json.JSONDecodeError as exc:
        fail(f"--strength-scale: {value} is not JSON ({exc.msg}, line {exc.lineno})")
    if not isinstance(levels, list):
        fail(f'--strength-scale: {value} must hold a list of {{"label", "margin"}} levels')
    return levels


@projects_app.command("create")
def projects_create(
    name: str,
    kind: Annotated[str, typer.Option(help=" | ".join(ProjectKind))],
    k: Annotated[int, typer.Option("--k", help="Responses shown per prompt.")] = 4,
    overlap: Annotated[int, typer.Option(help="Labelers per prompt.")] = 1,
    scale: Annotated[str, typer.Option(help=" | ".join(RatingScale))] = RatingScale.thumbs,
    lease_seconds: int = 1800,
    criteria: Annotated[str, typer.Option(help="Comma-separated flag names.")] = "",
    instructions_file: Annotated[Path | None, typer.Option(help="Markdown file.")] = None,
    strength_scale: Annotated[
        str,
        typer.Option(
            help="K=2 rankings: 'default' (much better … negligibly better, margins 1…0) or a "
            'JSON file [{"label", "margin"}, …], strongest first.'
        ),
    ] = "",
    questions: QuestionsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a project and print its id."""
    from pydantic import ValidationError

    from app.projects import service
    from app.projects.schemas import ProjectCreate

    try:
        data = ProjectCreate(
            name=name,
            kind=kind,
            k=k,
            overlap=overlap,
            rating_scale=scale,
            lease_seconds=lease_seconds,
            criteria=[c for c in criteria.split(",") if c.strip()],
            instructions=instructions_file.read_text() if instructions_file else "",
            strength_scale=_strength_scale_option(strength_scale),
            questions=_questions_file(questions) if questions else [],
        )
    except ValidationError as exc:
        fail("; ".join(validation_messages(exc, prefix="--")))
    with db_session() as session:
        project = service.create(session=session, data=data)
        session.commit()
        result = _project_dict(project)
    output(result, as_json, lambda p: str(p["id"]))


@projects_app.command("edit")
def projects_edit(
    project: str,
    name: Annotated[str | None, typer.Option(help="A new name.")] = None,
    overlap: Annotated[int | None, typer.Option(help="Labelers per prompt.")] = None,
    lease_seconds: Annotated[int | None, typer.Option()] = None,
    criteria: Annotated[str | None, typer.Option(help="Comma-separated flag names.")] = None,
    instructions_file: Annotated[Path | None, typer.Option(help="Markdown file.")] = None,
    questions: QuestionsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Change a project's settings; options left out keep their value."""
    from pydantic import ValidationError

    from app.projects import service
    from app.projects.schemas import ProjectUpdate

    changes: dict[str, Any] = {
        "name": name,
        "overlap": overlap,
        "lease_seconds": lease_seconds,
        "criteria": None if criteria is None else [c for c in criteria.split(",") if c.strip()],
        "instructions": instructions_file.read_text() if instructions_file else None,
        "questions": _questions_file(questions) if questions else None,
    }
    try:
        data = ProjectUpdate(**{k: v for k, v in changes.items() if v is not None})
    except ValidationError as exc:
        fail("; ".join(validation_messages(exc, prefix="--")))
    with db_session() as session:
        found = service.get_by_ref(session=session, ref=project)
        service.update(session=session, project=found, data=data)
        session.commit()
        result = _project_dict(found)
    output(result, as_json, lambda p: f"project {p['id']} ({p['name']}) saved")


@projects_app.command("list")
def projects_list(as_json: JsonOpt = False) -> None:
    """List projects."""
    from app.projects import service

    with db_session() as session:
        data = [_project_dict(p) for p in service.list_projects(session=session)]
    output(
        data,
        as_json,
        lambda d: "\n".join(
            f"{p['id']:4} {p['name']:32} {p['kind']:14} k={p['k']} overlap={p['overlap']}"
            for p in d
        ),
    )


@projects_app.command("show")
def projects_show(project: str, as_json: JsonOpt = False) -> None:
    """A project's settings and progress."""
    from app.projects import service

    with db_session() as session:
        found = service.get_by_ref(session=session, ref=project)
        data = _project_dict(found) | {
            "stats": service.stats(session=session, project=found).model_dump()
        }
    output(data, as_json, lambda d: "\n".join(f"{k}: {v}" for k, v in d.items()))


@app.command("import")
def import_(
    project: str,
    file: Path,
    format: Annotated[str, typer.Option("--format", help=" | ".join(ImportFormat))] = "auto",
    skip_invalid: Annotated[bool, typer.Option(help="Import the valid lines only.")] = False,
    label_config: Annotated[
        Path | None, typer.Option(help="Label Studio: the project's labeling config (XML).")
    ] = None,
    progress: ProgressOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Import prompts, responses and their labels from JSONL, a JSON array or Parquet (plain or
    gzip; all or nothing): our own lines, HH, TRL, Open-Assistant, or the exports of Label
    Studio, Argilla and Chatbot Arena, each label under its source annotator."""
    from app.projects import importer, service

    if not file.is_file():
        fail(f"no such file: {file}")
    if label_config is not None and not label_config.is_file():
        fail(f"no such file: {label_config}")
    with bulk_command("import", "prompts", progress) as (session, bar):
        found = service.get_by_ref(session=session, ref=project)
        report = importer.import_file(
            session=session,
            project=found,
            path=file,
            fmt=format,
            skip_invalid=skip_invalid,
            progress=bar,
            label_config=label_config.read_text() if label_config else None,
        )
    for e in report.skipped:
        typer.echo(f"skipped {report.unit} {e.line}: {e.error}", err=True)
    for note in report.notes:
        typer.echo(f"note: {note}", err=True)
    output(
        report.model_dump(),
        as_json,
        lambda r: (
            f"imported {r['imported']} prompts ({r['responses']} responses, {r['rankings']} "
            f"rankings, {r['labels']} labels) from {r['lines']} {r['unit']}s [{r['format']}]; "
            f"{r['duplicates']} already there; {r['skipped_count']} skipped"
        ),
    )


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
