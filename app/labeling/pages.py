"""HTML routes: the labeler's home and labeling pages, and the admins' annotations browser."""

from typing import Annotated, Any

from annotated_types import Ge, Le
from fastapi import APIRouter, Request
from pydantic import BeforeValidator
from sqlalchemy.orm import Session

from app.auth import service as auth_service
from app.db import SessionDep, get_sessionmaker
from app.deps import AdminUser, CurrentUser
from app.http.bounds import MAX_PAGE_NUMBER, Id, text
from app.labeling import service
from app.labeling.schemas import Task
from app.labeling.validation import MAX_DEMONSTRATION
from app.projects import service as project_service
from app.projects.models import Prompt
from app.projects.models import Response as ProjectResponse
from app.templating import render

router = APIRouter(tags=["pages"])

PROMPT_UNCLEAR = "The prompt is broken or unclear"
OFFENSIVE = "Offensive or disturbing content"
IDENTICAL = "The responses are (nearly) identical"
PAGE_SIZE = 25
PromptRef = text(200)
"""A prompt's row id or external id (at most 200 characters, as stored)."""


def skip_reasons(task: Any) -> list[str]:
    """The skip reasons offered for `task`: only those that fit what its page shows (a
    demonstration has no responses to judge; one response cannot be identical to another)."""
    if task.kind == "demonstration":
        return ["I don't know this topic well enough to write the reply", PROMPT_UNCLEAR, OFFENSIVE]
    identical = [IDENTICAL] if len(task.responses) > 1 else []
    return ["I can't judge this topic", PROMPT_UNCLEAR, *identical, OFFENSIVE]


def _blank_is_none(value: Any) -> Any:
    """An empty filter field of a GET form means 'any'."""
    return None if value == "" else value


@router.get("/")
def home(request: Request, session: SessionDep, user: CurrentUser):
    projects = project_service.list_projects(session=session, for_user=user)
    rows = [
        (project, service.progress(session=session, project=project, user=user))
        for project in projects
    ]
    return render(request, "labeling/home.html", rows=rows)


@router.get("/projects/{project_id}/label")
def label(
    request: Request, project_id: Id, session: SessionDep, user: CurrentUser, ahead: bool = False
):
    """The labeler's current task in the project (a new lease if they hold none); `ahead`: the
    task after it, which the page fetches and keeps ready to show at once after a submit."""
    project = project_service.get(session=session, project_id=project_id)
    task = service.next_task(session=session, project=project, user=user, ahead=ahead)
    return _task_page(request, session, project, user, task, ahead)


def _task_page(
    request: Request, session: Session, project: Any, user: Any, task: Any, ahead: bool = False
):
    """The labeling page of `task`; an `ahead` page is shown once the current task is done,
    so its count of remaining tasks leaves the current one out."""
    progress = service.progress(session=session, project=project, user=user)
    if task is None:
        return render(request, "labeling/done.html", project=project, progress=progress)
    return render(
        request,
        f"labeling/{project.kind}.html",
        project=project,
        task=task,
        progress=progress,
        remaining=progress.available + (1 if ahead else max(progress.leased, 1)),
        max_demonstration=MAX_DEMONSTRATION,
        skip_reasons=skip_reasons(task),
    )


def task_page_html(*, request: Request, project_id: int, user: Any, task: Task) -> str:
    """The labeling page of `task`, as HTML (the page swaps it in after a submit)."""
    with get_sessionmaker()() as session:
        project = project_service.get(session=session, project_id=project_id)
        return bytes(_task_page(request, session, project, user, task).body).decode()


@router.get("/admin/annotations")
def annotations_page(
    request: Request,
    session: SessionDep,
    _: AdminUser,
    project_id: Annotated[Id | None, BeforeValidator(_blank_is_none)] = None,
    user_id: Annotated[Id | None, BeforeValidator(_blank_is_none)] = None,
    prompt_id: Annotated[PromptRef | None, BeforeValidator(_blank_is_none)] = None,
    page: Annotated[int, Ge(1), Le(MAX_PAGE_NUMBER)] = 1,
):
    """Annotations, newest first, each next to its prompt and responses. `prompt_id` takes a
    prompt's row id or its external id (the id in the imported file); one that names no prompt
    is refused beside the field."""
    ref = prompt_id.strip() if prompt_id is not None else ""
    named = (
        project_service.prompts_named(session=session, ref=ref, project_id=project_id)
        if ref
        else None
    )
    annotations = (
        service.list_annotations(
            session=session,
            project_id=project_id,
            user_id=user_id,
            prompt_ids=named,
            limit=PAGE_SIZE + 1,
            offset=(page - 1) * PAGE_SIZE,
        )
        if named != []
        else []
    )
    prompts: dict[int, tuple[Prompt, dict[int, ProjectResponse]]] = {}
    for annotation in annotations[:PAGE_SIZE]:
        if annotation.prompt_id not in prompts:
            prompt, responses = project_service.prompt_with_responses(
                session=session, prompt_id=annotation.prompt_id
            )
            prompts[annotation.prompt_id] = (prompt, {r.id: r for r in responses})
    projects = {
        p.id: p for p in project_service.list_projects(session=session, include_archived=True)
    }
    error = None
    if named == []:
        where = f" in {projects[project_id].name}" if project_id in projects else ""
        error = f"no prompt{where} has the id or external id {ref!r}"
    return render(
        request,
        "admin/annotations.html",
        422 if error else 200,
        error=error,
        matched=len(named or []),
        annotations=annotations[:PAGE_SIZE],
        more=len(annotations) > PAGE_SIZE,
        page=page,
        prompts=prompts,
        projects=projects,
        users={u.id: u for u in auth_service.list_users(session=session)},
        filters={"project_id": project_id, "user_id": user_id, "prompt_id": ref},
    )
