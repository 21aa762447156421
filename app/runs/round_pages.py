"""HTML routes for generation runs, the next round and the registry leaderboard (admins)."""

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse

from app.db import SessionDep
from app.deps import AdminUser
from app.errors import DomainError
from app.projects import service as projects_service
from app.runs import registry, run_config, service
from app.runs import rounds as round_service
from app.runs.models import ModelKind, RegisteredModel
from app.templating import render

router = APIRouter(prefix="/admin", tags=["pages"])

# Generation keys the forms show, with what a field left empty means.
GENERATE_FIELDS = ["max_new_tokens", "temperature", "top_p", "seed"]


def _generation_config(form: dict[str, Any]) -> dict[str, Any]:
    """The generation keys the admin filled in (the trainer's defaults fill the rest)."""
    defaults = run_config.trainer_defaults("generate")
    config: dict[str, Any] = {}
    for key in ["n", *GENERATE_FIELDS]:
        value = str(form.get(key) or "").strip()
        if value and str(defaults.get(key)) != value:
            config[key] = value
    return config


def _policies(session: Any) -> list[RegisteredModel]:
    return registry.list_models(session=session, kind=ModelKind.policy)


@router.get("/projects/{project_id}/generate")
def generate_form(request: Request, project_id: int, session: SessionDep, _: AdminUser):
    """Pick policies and sampling settings; the run fills this project's prompts."""
    project = projects_service.get(session=session, project_id=project_id)
    form = {"n": project.k if project.kind == "ranking" else 1, "models": []}
    return _render_generate(request, session, project, form, None)


def _render_generate(request, session, project, form, error, status=200):
    return render(
        request,
        "runs/generate.html",
        status,
        project=project,
        policies=_policies(session),
        defaults=run_config.trainer_defaults("generate"),
        fields=GENERATE_FIELDS,
        form=form,
        error=error,
    )


@router.post("/projects/{project_id}/generate")
async def generate(request: Request, project_id: int, session: SessionDep, admin: AdminUser):
    project = projects_service.get(session=session, project_id=project_id)
    data = await request.form()
    form: dict[str, Any] = {k: data.get(k) for k in ["n", *GENERATE_FIELDS]}
    form["models"] = [str(m) for m in data.getlist("models")]
    try:
        run = service.create_run(
            session=session,
            kind="generate",
            project=project.id,
            models=form["models"],
            config=_generation_config(form),
            created_by_id=admin.id,
        )
    except DomainError as exc:
        session.rollback()
        return _render_generate(request, session, project, form, exc.message, 422)
    session.commit()
    return RedirectResponse(f"/admin/runs/{run.id}", status_code=303)


@router.get("/models/leaderboard")
def leaderboard(request: Request, session: SessionDep, _: AdminUser, rounds: int = 1000):
    """Human preference by model version, across every project."""
    board = round_service.registry_leaderboard(session=session, rounds=rounds)
    return render(request, "runs/leaderboard.html", board=board)


def next_round_context(*, session: Any, model: RegisteredModel) -> dict[str, Any]:
    """What the model page's next-round form offers: prompt sources and models to compare."""
    from app.datasets import service as datasets_service

    return {
        "policies": [m for m in _policies(session) if m.id != model.id],
        "reward_models": registry.list_models(session=session, kind=ModelKind.reward),
        "prompt_snapshots": datasets_service.list_snapshots(session=session, kind="prompts"),
        "projects": projects_service.list_projects(session=session),
        "round_defaults": run_config.trainer_defaults("generate"),
        "round_fields": GENERATE_FIELDS,
    }


@router.post("/models/{model_id}/next-round")
async def next_round(
    request: Request,
    model_id: int,
    session: SessionDep,
    admin: AdminUser,
    name: Annotated[str, Form()],
    source: Annotated[str, Form()] = "",
):
    data = await request.form()
    form: dict[str, Any] = {k: data.get(k) for k in ["n", *GENERATE_FIELDS]}
    kind, _, ref = source.partition(":")
    try:
        project, run = round_service.next_round(
            session=session,
            model_id=model_id,
            name=name.strip(),
            snapshot_id=int(ref) if kind == "snapshot" and ref.isdigit() else None,
            source_project=ref if kind == "project" else None,
            compare_with=[str(m) for m in data.getlist("compare_with")],
            n=int(str(form.get("n") or 1)),
            overlap=int(str(data.get("overlap") or 1)),
            config={k: v for k, v in _generation_config(form).items() if k != "n"},
            created_by_id=admin.id,
            reward_model=str(data.get("reward_model") or "") or None,
        )
    except (DomainError, ValueError) as exc:
        session.rollback()
        message = exc.message if isinstance(exc, DomainError) else f"n and overlap: {exc}"
        model = registry.get_model(session=session, model_id=model_id)
        from app.runs import lineage

        return render(
            request,
            "runs/model.html",
            422,
            model=model,
            tree=lineage.model_lineage(session=session, model=model),
            round_error=message,
            **next_round_context(session=session, model=model),
        )
    session.commit()
    return RedirectResponse(f"/admin/runs/{run.id}?project={project.id}", status_code=303)
