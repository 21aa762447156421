"""HTML routes for admins: start and watch training runs, and the model registry."""

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse
from pydantic import ValidationError
from sqlalchemy.orm import Session

from app.config import get_settings
from app.datasets import service as datasets_service
from app.db import SessionDep, get_engine, make_engine
from app.deps import AdminUser
from app.errors import DomainError, validation_messages
from app.http.bounds import Id, Keyword, ModelRefQuery, loads_object
from app.projects import service as project_service
from app.runs import health, lineage, metric_info, registry, resources, run_config, service
from app.runs.generation import generation_details
from app.runs.judging import judge_details
from app.runs.models import TRAINS_ON, RunKind, RunStatus, run_kinds_for
from app.runs.schemas import ModelCreate, RunCreate
from app.templating import render

router = APIRouter(prefix="/admin", tags=["pages"])

# The hyper-parameters the start form shows as fields; the rest go in "more config (JSON)".
MAIN_FIELDS = ["max_steps", "num_epochs", "learning_rate", "batch_size", "max_length", "seed"]


def _snapshots(session: Any) -> list[Any]:
    return datasets_service.list_snapshots(session=session)


def workers_running(session: Session | None = None) -> bool:
    """Whether any worker heart-beat within the stale limit (for the admin pages' notice).

    Without the page's session (the dashboard), a read of its own that never waits for the
    page's SQLite write lock.
    """
    stale_seconds = get_settings().run_stale_seconds
    if session is not None:
        return bool(service.live_workers(session=session, stale_seconds=stale_seconds))
    engine = get_engine()
    if engine.dialect.name == "sqlite":
        url = engine.url.render_as_string(hide_password=False)
        engine = make_engine(url, sqlite_immediate=False)
    try:
        with Session(engine) as reader:
            return bool(service.live_workers(session=reader, stale_seconds=stale_seconds))
    finally:
        if engine is not get_engine():
            engine.dispose()


# Form inputs a refused field's message is shown beside (config keys without one of their own:
# beside "more config").
DISTRIBUTION_FIELDS = ["strategy", "processes", "machines", "zero_stage"]
"""How a training run is spread (trainer/configs.py's keys), each a field of the start form."""
FORM_INPUTS = {
    "kind",
    "snapshot_id",
    "model",
    "reward_model",
    "name",
    "aspect",
    *MAIN_FIELDS,
    *DISTRIBUTION_FIELDS,
}


def _form_input(field: str | None) -> str | None:
    """The form input that a refused field (`config.learning_rate`, `model` …) belongs to."""
    if not field:
        return None
    head, _, key = field.partition(".")
    if head == "config":
        return key if key in FORM_INPUTS else "extra_config"
    return head if head in FORM_INPUTS else None


def _refusal(exc: Exception) -> tuple[str, str | None]:
    """(message, form input it belongs to) of a refused start."""
    if isinstance(exc, ValidationError):
        errors = exc.errors()
        loc = [str(p) for p in errors[0]["loc"]] if errors else []
        return "; ".join(validation_messages(exc)), _form_input(".".join(loc))
    if isinstance(exc, DomainError):
        return exc.message, _form_input(exc.field)
    return str(exc), "extra_config"  # loads_object: the "more config" JSON


def _form_context(
    session: Any, form: dict[str, Any], error: str | None, error_field: str | None = None
) -> dict[str, Any]:
    # The kinds this form starts (generate starts from a project's page).
    kind = form.get("kind") if form.get("kind") in {k.value for k in TRAINS_ON} else "sft"
    snapshots = _snapshots(session)
    chosen = next((s for s in snapshots if str(s.id) == str(form.get("snapshot_id"))), None)
    # The snapshot selected: the one asked for when it can train the kind, else the newest that can.
    trains_on = TRAINS_ON.get(RunKind(str(kind)), ())
    fits = [s for s in snapshots if s.train_rows and s.kind in trains_on]
    selected = chosen if chosen in fits else (fits[0] if fits else None)
    projects = project_service.list_projects(session=session, include_archived=True)
    models = registry.list_models(session=session)
    # Suggested settings per kind: for any model ("") and for each registered model by its size.
    suggestions = {
        name: {k.value: run_config.suggested_config(k, path) for k in TRAINS_ON}
        for name, path in [("", None)] + [(m.name, m.path) for m in models]
    }
    for_model = suggestions.get(form.get("model") or "", suggestions[""])
    return {
        "chosen": chosen,
        "selected": selected,
        "empty": chosen if chosen is not None and not chosen.train_rows else None,
        "project_names": {p.id: p.name for p in projects},
        "form": form,
        "error": error,
        "error_field": error_field,
        "kinds": list(TRAINS_ON),  # generate starts from a project's page
        "snapshot_kinds": {k.value: list(v) for k, v in TRAINS_ON.items()},
        "snapshots": snapshots,
        "models": models,
        "defaults": {k.value: run_config.trainer_defaults(k) for k in TRAINS_ON},
        "suggestions": suggestions,
        "suggested": for_model[str(kind)],
        "main_fields": MAIN_FIELDS,
        "kind": kind,
        "strategies": resources.STRATEGIES,
        "workers": [
            (w.name, resources.describe(w.resources))
            for w in service.live_workers(
                session=session, stale_seconds=get_settings().run_stale_seconds
            )
        ],
    }


@router.get("/runs")
def runs(
    request: Request, session: SessionDep, _: AdminUser, status: Keyword = "", kind: Keyword = ""
):
    rows = service.list_runs(session=session, status=status or None, kind=kind or None)
    return render(
        request,
        "runs/list.html",
        rows=lineage.run_rows(session=session, runs=rows),
        status=status,
        kind=kind,
        statuses=list(RunStatus),
        kinds=list(RunKind),
        counts=service.counts(session=session),
        workers_running=workers_running(session),
    )


@router.get("/runs/new")
def new_run(
    request: Request,
    session: SessionDep,
    _: AdminUser,
    snapshot: Id | None = None,
    model: ModelRefQuery = "",
    kind: Keyword = "",
):
    """The start form; `snapshot` (and `kind`) preselect what "Train on it" links offer."""
    error = None
    if snapshot is not None:
        chosen = datasets_service.get_snapshot(session=session, snapshot_id=snapshot)
        feeds = run_kinds_for(chosen.kind)
        if not feeds:
            error = f"snapshot {snapshot} is a {chosen.kind} snapshot: no run kind trains on it"
        elif kind and kind not in feeds:
            error = (
                f"a {kind} run cannot train on snapshot {snapshot} ({chosen.kind}); "
                f"it feeds {' or '.join(feeds)}"
            )
        kind = kind if kind in feeds else (feeds[0] if feeds else "")
    elif not kind:  # the kind of the newest snapshot any run can train on
        newest = next(
            (s for s in _snapshots(session) if s.train_rows and run_kinds_for(s.kind)), None
        )
        kind = run_kinds_for(newest.kind)[0] if newest else ""
    form = {"kind": kind or RunKind.sft, "snapshot_id": snapshot, "model": model}
    context = _form_context(session, form, error)
    return render(request, "runs/new.html", 422 if error else 200, **context)


@router.post("/runs")
async def start_run(
    request: Request,
    session: SessionDep,
    admin: AdminUser,
    kind: Annotated[str, Form()] = "",
    snapshot_id: Annotated[str, Form()] = "",
    model: Annotated[str, Form()] = "",
    reward_model: Annotated[str, Form()] = "",
    name: Annotated[str, Form()] = "",
    extra_config: Annotated[str, Form()] = "",
):
    """Queue a run from the form; a bad field re-renders the form with the message."""
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    try:
        config = loads_object(extra_config, "more config") if extra_config.strip() else {}
        defaults = run_config.trainer_defaults(kind) if kind in RunKind.__members__ else {}
        for field in MAIN_FIELDS + DISTRIBUTION_FIELDS:
            value = form.get(field, "").strip()
            if value and str(defaults.get(field)) != value:
                config[field] = value
        if form.get("aspect", "").strip():  # rm on a ratings snapshot: the aspect to learn
            config["aspect"] = form["aspect"].strip()
        body = RunCreate.model_validate(
            {
                "kind": kind,
                "snapshot_id": snapshot_id.strip() or None,
                "model": model.strip(),
                "reward_model": reward_model.strip() or None,
                "config": config,
                "name": name.strip(),
            }
        )
        run = service.create_run(
            session=session,
            kind=body.kind,
            snapshot_id=body.snapshot_id,
            model=body.model,
            reward_model=body.reward_model,
            config=body.config,
            name=body.name,
            created_by_id=admin.id,
        )
    except (ValueError, DomainError) as exc:
        session.rollback()
        message, refused = _refusal(exc)
        context = _form_context(session, form, message, refused)
        return render(request, "runs/new.html", 422, **context)
    session.commit()
    return RedirectResponse(f"/admin/runs/{run.id}", status_code=303)


@router.get("/runs/{run_id}")
def run_page(request: Request, run_id: Id, session: SessionDep, _: AdminUser):
    run = service.get_run(session=session, run_id=run_id)
    output = (
        registry.get_model(session=session, model_id=run.output_model_id)
        if (run.output_model_id)
        else None
    )
    log = service.log_tail(run.run_dir, 60)
    snapshot = (
        datasets_service.get_snapshot(session=session, snapshot_id=run.snapshot_id)
        if run.snapshot_id is not None
        else None
    )
    return render(
        request,
        "runs/show.html",
        run=run,
        output=output,
        snapshot=snapshot,
        generation=generation_details(session=session, run=run),
        judge=judge_details(session=session, run=run),
        log=log,
        workers_running=workers_running(session),
        warnings=health.warnings(session=session, run=run),
        evaluation=health.evaluation(output.metrics) if output else {},
        distribution=health.distribution(run.config, output.metrics if output else {}),
        zero_floor=metric_info.non_negative(run.kind),
    )


@router.post("/runs/{run_id}/cancel")
def cancel(run_id: Id, session: SessionDep, _: AdminUser) -> RedirectResponse:
    service.cancel_run(session=session, run=service.get_run(session=session, run_id=run_id))
    session.commit()
    return RedirectResponse(f"/admin/runs/{run_id}", status_code=303)


@router.post("/runs/{run_id}/retry")
def retry(run_id: Id, session: SessionDep, _: AdminUser) -> RedirectResponse:
    service.retry_run(session=session, run=service.get_run(session=session, run_id=run_id))
    session.commit()
    return RedirectResponse(f"/admin/runs/{run_id}", status_code=303)


@router.get("/models")
def models(request: Request, session: SessionDep, _: AdminUser):
    rows = registry.list_models(session=session)
    by_id = {m.id: m for m in rows}
    return render(request, "runs/models.html", models=rows, by_id=by_id, error=None, form={})


@router.get("/models/{model_id}")
def model_page(request: Request, model_id: Id, session: SessionDep, _: AdminUser):
    """A registered model with its whole lineage, each step a link."""
    model = registry.get_model(session=session, model_id=model_id)
    tree = lineage.model_lineage(session=session, model=model)
    from app.runs.round_pages import next_round_context

    return render(
        request,
        "runs/model.html",
        model=model,
        tree=tree,
        **next_round_context(session=session, model=model),
    )


@router.post("/models")
def register(
    request: Request,
    session: SessionDep,
    _: AdminUser,
    name: Annotated[str, Form()] = "",
    path: Annotated[str, Form()] = "",
    kind: Annotated[str, Form()] = "policy",
):
    """Register a model; a bad field re-renders the page with the message."""
    try:
        body = ModelCreate.model_validate({"name": name, "kind": kind, "path": path.strip()})
        registry.register_model(session=session, name=body.name, kind=body.kind, path=body.path)
    except (ValidationError, DomainError) as exc:
        session.rollback()
        message = (
            "; ".join(validation_messages(exc)) if isinstance(exc, ValidationError) else exc.message
        )
        rows = registry.list_models(session=session)
        field = exc.errors()[0]["loc"][0] if isinstance(exc, ValidationError) else exc.field
        return render(
            request,
            "runs/models.html",
            422,
            models=rows,
            by_id={m.id: m for m in rows},
            error=message,
            error_field=field if field in ("name", "path", "kind") else None,
            form={"name": name, "path": path, "kind": kind},
        )
    session.commit()
    return RedirectResponse("/admin/models", status_code=303)
