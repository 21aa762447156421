"""HTML routes for labelers: the home page with their projects."""

from fastapi import APIRouter, Request

from app.db import SessionDep
from app.deps import CurrentUser
from app.labeling import service
from app.projects import service as project_service
from app.templating import render

router = APIRouter(tags=["pages"])


@router.get("/")
def home(request: Request, session: SessionDep, user: CurrentUser):  # type: ignore[no-untyped-def]
    projects = project_service.list_projects(session=session)
    rows = [
        (project, service.progress(session=session, project=project, user=user))
        for project in projects
    ]
    return render(request, "home.html", rows=rows)
