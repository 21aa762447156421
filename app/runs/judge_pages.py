"""HTML routes for judge runs (admins): the form that starts one from the Runs page or a
project's page; a refused field re-renders the form with the message."""

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse

from app.db import SessionDep
from app.deps import AdminUser
from app.errors import DomainError
from app.http.bounds import Id, loads_object
from app.projects import service as projects_service
from app.projects.kinds import ProjectKind
from app.runs import registry, service
from app.templating import render

router = APIRouter(prefix="/admin", tags=["pages"])

FIELDS = ["project", "model", "endpoint", "endpoint_model", "endpoint_key_env", "name"]
ENDPOINT_KEYS = ["endpoint", "endpoint_model", "endpoint_key_env"]


def _render(request: Request, session: Any, form: dict[str, Any], error: Any, status: int = 200):
    message, field = (
        (error.message, error.field) if isinstance(error, DomainError) else (error, None)
    )
    projects = [
        p
        for p in projects_service.list_projects(session=session)
        if p.kind != ProjectKind.demonstration
    ]
    return render(
        request,
        "runs/judge.html",
        status,
        projects=projects,
        models=registry.list_models(session=session),
        form=form,
        error=message,
        error_field=(field or "").removeprefix("config.") or None,
    )


@router.get("/runs/judge")
def judge_form(request: Request, session: SessionDep, _: AdminUser, project: Id | None = None):
    """Pick a project (preselected from its page) and a judge: a registered model, or an
    endpoint."""
    return _render(request, session, {"project": str(project or "")}, None)


@router.post("/runs/judge")
async def judge(request: Request, session: SessionDep, admin: AdminUser):
    data = await request.form()
    form: dict[str, Any] = {k: str(data.get(k) or "").strip() for k in [*FIELDS, "extra_config"]}
    try:
        config = loads_object(form["extra_config"], "more config") if form["extra_config"] else {}
        config |= {k: form[k] for k in ENDPOINT_KEYS if form[k]}
        run = service.create_run(
            session=session,
            kind="judge",
            project=form["project"] or None,
            model=form["model"],
            config=config,
            name=form["name"],
            created_by_id=admin.id,
        )
    except ValueError as exc:
        return _render(request, session, form, str(exc), 422)
    except DomainError as exc:
        session.rollback()
        return _render(request, session, form, exc, 422)
    session.commit()
    return RedirectResponse(f"/admin/runs/{run.id}", status_code=303)
