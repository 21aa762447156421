"""`rlhf projects …` and `rlhf import`: projects, and the prompts imported into them."""

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from app.cli_support import JsonOpt, ProgressOpt, bulk_command, db_session, fail, output
from app.errors import validation_messages
from app.projects.formats import ImportFormat
from app.projects.kinds import ProjectKind, RatingScale

projects_app = typer.Typer(no_args_is_help=True, help="Projects.")
# Top-level `rlhf` commands; app/cli.py registers them.
commands = typer.Typer()


QuestionsOpt = Annotated[
    Path | None,
    typer.Option(help="JSON file: a list of question definitions (see docs/questions.md)."),
]
SuggestionsOpt = Annotated[
    str | None,
    typer.Option(
        help="off | shown | prefilled: show labelers a judge's (or an imported) suggestion, "
        "or start their answer from it."
    ),
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


ORDER_HELP = (
    "Which prompts labelers get first: id (import order) | uncertainty (a reward model "
    "separates their candidates least) | judge-uncertainty (a judge was least sure of them)."
)
OrderOpt = Annotated[str, typer.Option(help=ORDER_HELP)]
JudgeAcceptsOpt = Annotated[
    str | None,
    typer.Option(
        help="A judge label whose margin is at least this counts toward overlap (filling "
        "--judge-fills slots); 'off' (the default): judge labels never replace a human's."
    ),
]


JudgeFillsOpt = Annotated[
    int | None,
    typer.Option(
        help="How many of a prompt's overlap slots an accepted judge label fills: 1 (the "
        "default) stands for one labeler; the overlap or more completes the prompt."
    ),
]


JudgeTemplateOpt = Annotated[
    str | None,
    typer.Option(
        help="A text file with the question a pairwise judge is asked ({prompt}, {a}, {b}); "
        "'default' goes back to the default question."
    ),
]


def _judge_template(value: str | None) -> str | None:
    """--judge-template: a file's text, or 'default' ('')."""
    if value is None or value == "default":
        return None if value is None else ""
    try:
        return Path(value).read_text()
    except OSError as exc:
        fail(f"--judge-template: cannot read {value}: {exc.strerror}")
        return None


def _judge_accepts(value: str | None) -> float | None:
    """--judge-accepts: a margin, or 'off' (None)."""
    if value is None or value.strip().lower() == "off":
        return None
    try:
        return float(value)
    except ValueError:
        fail(f"--judge-accepts: {value!r} is neither a margin (a number) nor 'off'")
        return None


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
    suggestions: SuggestionsOpt = "off",
    order: OrderOpt = "id",
    judge_accepts: JudgeAcceptsOpt = None,
    judge_fills: JudgeFillsOpt = 1,
    judge_template: JudgeTemplateOpt = None,
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
            suggestions=suggestions,
            order=order,
            judge_accepts=_judge_accepts(judge_accepts),
            judge_fills=judge_fills,
            judge_template=_judge_template(judge_template),
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
    suggestions: SuggestionsOpt = None,
    order: Annotated[str | None, typer.Option(help=ORDER_HELP)] = None,
    judge_accepts: JudgeAcceptsOpt = None,
    judge_fills: JudgeFillsOpt = None,
    judge_template: JudgeTemplateOpt = None,
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
        "suggestions": suggestions,
        "order": order,
        "judge_fills": judge_fills,
    }
    given = {k: v for k, v in changes.items() if v is not None}
    if judge_accepts is not None:  # "off" sets it to null
        given["judge_accepts"] = _judge_accepts(judge_accepts)
    if judge_template is not None:  # "default" sets it to null
        given["judge_template"] = _judge_template(judge_template)
    try:
        data = ProjectUpdate(**given)
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


@commands.command("import")
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
    from app.errors import Invalid
    from app.projects import importer, service

    if not file.is_file():
        fail(f"no such file: {file}")
    config = None
    if label_config is not None:
        if not label_config.is_file():
            fail(f"no such file: {label_config}")
        with label_config.open("rb") as handle:
            raw = handle.read(importer.MAX_LABEL_CONFIG + 1)
        try:
            config = importer.label_config_text(raw)
        except Invalid as exc:
            fail(f"--label-config: {exc.message}")
    with bulk_command("import", "prompts", progress) as (session, bar):
        found = service.get_by_ref(session=session, ref=project)
        report = importer.import_file(
            session=session,
            project=found,
            path=file,
            fmt=format,
            skip_invalid=skip_invalid,
            progress=bar,
            label_config=config,
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
