"""HTML routes for admins: start and watch training runs, and the model registry."""

import json
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse

from app.db import SessionDep
from app.deps import AdminUser
from app.errors import DomainError
from app.runs import health, lineage, service
from app.runs.models import TRAINS_ON, RunKind, RunStatus, run_kinds_for
from app.runs.worker import log_tail
from app.templating import render

router = APIRouter(prefix="/admin", tags=["pages"])

# The hyper-parameters the start form shows as fields; the rest go in "more config (JSON)".
MAIN_FIELDS = ["max_steps", "num_epochs", "learning_rate", "batch_size", "max_length", "seed"]


def _snapshots(session: Any) -> list[Any]:
    from app.datasets import service as datasets_service

    return datasets_service.list_snapshots(session=session)


def _form_context(session: Any, form: dict[str, Any], error: str | None) -> dict[str, Any]:
    kind = form.get("kind", "sft")
    snapshots = _snapshots(session)
    chosen = next((s for s in snapshots if str(s.id) == str(form.get("snapshot_id"))), None)
    models = service.list_models(session=session)
    # Suggested settings per kind: for any model ("") and for each registered model by its size.
    suggestions = {
        name: {k.value: service.suggested_config(k, path) for k in TRAINS_ON}
        for name, path in [("", None)] + [(m.name, m.path) for m in models]
    }
    for_model = suggestions.get(form.get("model") or "", suggestions[""])
    return {
        "chosen": chosen,
        "form": form,
        "error": error,
        "kinds": list(TRAINS_ON),  # generate starts from a project's page
        "snapshot_kinds": {k.value: list(v) for k, v in TRAINS_ON.items()},
        "snapshots": snapshots,
        "models": models,
        "defaults": {k.value: service.trainer_defaults(k) for k in TRAINS_ON},
        "suggestions": suggestions,
        "suggested": for_model[kind],
        "main_fields": MAIN_FIELDS,
        "kind": kind,
    }


@router.get("/runs")
def runs(request: Request, session: SessionDep, _: AdminUser, status: str = "", kind: str = ""):
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
    )


@router.get("/runs/new")
def new_run(
    request: Request,
    session: SessionDep,
    _: AdminUser,
    snapshot: int | None = None,
    model: str = "",
    kind: str = "",
):
    """The start form; `snapshot` (and `kind`) preselect what "Train on it" links offer."""
    error = None
    if snapshot is not None:
        from app.datasets import service as datasets_service

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
    form = {"kind": kind or RunKind.sft, "snapshot_id": snapshot, "model": model}
    context = _form_context(session, form, error)
    return render(request, "runs/new.html", 422 if error else 200, **context)


@router.post("/runs")
async def start_run(
    request: Request,
    session: SessionDep,
    admin: AdminUser,
    kind: Annotated[str, Form()],
    snapshot_id: Annotated[int, Form()],
    model: Annotated[str, Form()],
    reward_model: Annotated[str, Form()] = "",
    name: Annotated[str, Form()] = "",
    extra_config: Annotated[str, Form()] = "",
):
    form = dict(await request.form())
    config: dict[str, Any] = {}
    try:
        if extra_config.strip():
            extra = json.loads(extra_config)
            if not isinstance(extra, dict):
                raise ValueError("more config must be a JSON object")
            config.update(extra)
        for field in MAIN_FIELDS:
            value = str(form.get(field, "")).strip()
            if value and str(service.trainer_defaults(kind).get(field)) != value:
                config[field] = value
        run = service.create_run(
            session=session,
            kind=kind,
            snapshot_id=snapshot_id,
            model=model,
            reward_model=reward_model or None,
            config=config,
            name=name,
            created_by_id=admin.id,
        )
    except (ValueError, DomainError) as exc:
        session.rollback()
        message = exc.message if isinstance(exc, DomainError) else f"more config: {exc}"
        context = _form_context(session, form, message)
        return render(request, "runs/new.html", 422, **context)
    session.commit()
    return RedirectResponse(f"/admin/runs/{run.id}", status_code=303)


@router.get("/runs/{run_id}")
def run_page(request: Request, run_id: int, session: SessionDep, _: AdminUser):
    run = service.get_run(session=session, run_id=run_id)
    output = (
        service.get_model(session=session, model_id=run.output_model_id)
        if (run.output_model_id)
        else None
    )
    from app.datasets import service as datasets_service
    from app.runs.generation import generation_details

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
        log=log_tail(run.run_dir, 60),
        warnings=health.warnings(session=session, run=run),
        evaluation=health.evaluation(output.metrics) if output else {},
    )


@router.post("/runs/{run_id}/cancel")
def cancel(run_id: int, session: SessionDep, _: AdminUser) -> RedirectResponse:
    service.cancel_run(session=session, run=service.get_run(session=session, run_id=run_id))
    session.commit()
    return RedirectResponse(f"/admin/runs/{run_id}", status_code=303)


@router.get("/models")
def models(request: Request, session: SessionDep, _: AdminUser):
    rows = service.list_models(session=session)
    by_id = {m.id: m for m in rows}
    return render(request, "runs/models.html", models=rows, by_id=by_id, error=None)


@router.get("/models/{model_id}")
def model_page(request: Request, model_id: int, session: SessionDep, _: AdminUser):
    """A registered model with its whole lineage, each step a link."""
    model = service.get_model(session=session, model_id=model_id)
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
    name: Annotated[str, Form()],
    path: Annotated[str, Form()],
    kind: Annotated[str, Form()] = "policy",
):
    try:
        service.register_model(session=session, name=name.strip(), kind=kind, path=path.strip())
    except DomainError as exc:
        session.rollback()
        rows = service.list_models(session=session)
        return render(
            request,
            "runs/models.html",
            422,
            models=rows,
            by_id={m.id: m for m in rows},
            error=exc.message,
        )
    session.commit()
    return RedirectResponse("/admin/models", status_code=303)
