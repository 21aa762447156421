"""HTML routes of task management: a project's Prompts page and its actions.

An action on every prompt of a filter first answers a page that states how many prompts it
would change and asks to confirm (works without JavaScript); the confirmation carries that
count, and a filter that matches a different number by then is asked about again.
"""

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse

from app.db import SessionDep
from app.deps import AdminUser
from app.http.bounds import AfterId, Id, Keyword, Offset, SearchText
from app.projects import service as project_service
from app.prompts import service
from app.prompts.service import PromptFilter
from app.templating import render

router = APIRouter(prefix="/admin/projects/{project_id}", tags=["pages"])
NOTICES = {
    "released": "Lease released: the prompt can go to another labeler.",
    "requeued": "Re-queued for one more label: {n} prompt(s).",
    "retired": "Retired (no longer served; labels kept): {n} prompt(s).",
    "restored": "Restored (served again): {n} prompt(s).",
}
VERBS = {"requeue": "Re-queue", "retire": "Retire", "restore": "Restore"}


def _filter(status: str, model: str, q: str) -> PromptFilter:
    return PromptFilter(status=status or None, model=model or None, q=q.strip() or None)


def _back(project_id: Id, where: PromptFilter, done: str, n: int = 1) -> RedirectResponse:
    query = urlencode(where.as_dict() | {"done": done, "n": n})
    return RedirectResponse(f"/admin/projects/{project_id}/prompts?{query}", status_code=303)


@router.get("/prompts")
def prompts_page(
    request: Request,
    project_id: Id,
    session: SessionDep,
    _: AdminUser,
    status: Keyword = "",
    model: SearchText = "",
    q: SearchText = "",
    after: AfterId = 0,
    done: Keyword = "",
    n: Offset = 0,
):
    """Every prompt with its responses, labels, open leases and skips; filters and search."""
    project = project_service.get(session=session, project_id=project_id)
    where = _filter(status, model, q)
    rows, next_after = service.list_prompts(
        session=session, project=project, where=where, after=max(after, 0)
    )
    notice = NOTICES[done].format(n=n) if done in NOTICES else None
    return render(
        request,
        "prompts/list.html",
        project=project,
        rows=rows,
        where=where,
        query=where.as_dict(),
        next_url=f"?{urlencode(where.as_dict() | {'after': next_after})}" if next_after else None,
        first_url=f"?{urlencode(where.as_dict())}",
        after=after,
        statuses=service.STATUSES,
        models=service.models_of(session=session, project=project),
        matching=service.count_prompts(session=session, project=project, where=where),
        bulk_actions=service.actions_for(where.status),
        verbs=VERBS,
        actions=service.recent_actions(session=session, project=project),
        describe_action=service.describe_action,
        notice=notice,
    )


@router.post("/assignments/{assignment_id}/release")
def release(
    project_id: Id,
    assignment_id: Id,
    session: SessionDep,
    admin: AdminUser,
    status: Annotated[Keyword, Form()] = "",
    model: Annotated[SearchText, Form()] = "",
    q: Annotated[SearchText, Form()] = "",
) -> RedirectResponse:
    """End a labeler's open lease now."""
    project = project_service.get(session=session, project_id=project_id)
    service.release_lease(session=session, project=project, assignment_id=assignment_id, by=admin)
    session.commit()
    return _back(project_id, _filter(status, model, q), "released")


@router.post("/prompts/{prompt_id}/{action}")
def act_on_one(
    project_id: Id,
    prompt_id: Id,
    action: Keyword,
    session: SessionDep,
    admin: AdminUser,
    status: Annotated[Keyword, Form()] = "",
    model: Annotated[SearchText, Form()] = "",
    q: Annotated[SearchText, Form()] = "",
) -> RedirectResponse:
    """Re-queue, retire or restore one prompt."""
    project = project_service.get(session=session, project_id=project_id)
    n = service.act(session=session, project=project, by=admin, action=action, prompt_id=prompt_id)
    session.commit()
    return _back(project_id, _filter(status, model, q), f"{action}d", n)


@router.post("/prompts")
def act_on_filter(
    request: Request,
    project_id: Id,
    session: SessionDep,
    admin: AdminUser,
    action: Annotated[Keyword, Form()] = "",
    status: Annotated[Keyword, Form()] = "",
    model: Annotated[SearchText, Form()] = "",
    q: Annotated[SearchText, Form()] = "",
    confirm: Annotated[Keyword, Form()] = "",
    expected: Annotated[Keyword, Form()] = "",
):
    """Re-queue, retire or restore every prompt of the filter the action can change: first a
    page that states how many and asks; the action once confirmed for that same number."""
    project = project_service.get(session=session, project_id=project_id)
    where = _filter(status, model, q)
    service.check_bulk(action, where)
    count = service.count_for(session=session, project=project, where=where, action=action)
    if confirm != "yes" or expected != str(count):
        return render(
            request,
            "prompts/confirm.html",
            project=project,
            action=action,
            verb=VERBS[action],
            count=count,
            asked=expected if confirm == "yes" else None,
            where=where,
            query=where.as_dict(),
            back=f"/admin/projects/{project_id}/prompts?{urlencode(where.as_dict())}",
        )
    n = service.act(session=session, project=project, by=admin, action=action, where=where)
    session.commit()
    return _back(project_id, where, f"{action}d", n)
