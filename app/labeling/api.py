"""JSON routes of labeling: next task, annotate, skip, and one's own history."""

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from app.db import SessionDep
from app.deps import CurrentUser, LabelerUser
from app.http.bounds import Id, Limit, Offset, PublicId
from app.labeling import hot, pages, public, service
from app.labeling.schemas import (
    AnnotationIn,
    AnnotationOut,
    AssignmentOut,
    Progress,
    SkipIn,
    SkipOut,
    SubmitOut,
    Task,
)
from app.labeling.submitting import MAX_KEY
from app.projects import service as project_service

router = APIRouter(prefix="/api/v1", tags=["labeling"])


@router.get(
    "/projects/{project_id}/tasks/next",
    response_model=Task,
    responses={204: {"description": "nothing left for this labeler"}},
)
async def next_task(project_id: Id, request: Request, user: LabelerUser) -> object:
    task = await hot.next_task(project_id=project_id, user=user, memory=request.app.state.memory)
    if task is None:
        return Response(status_code=204)
    return task


@router.get("/projects/{project_id}/progress", response_model=Progress)
def my_progress(project_id: Id, session: SessionDep, user: LabelerUser) -> object:
    project = project_service.get_for(session=session, project_id=project_id, user=user)
    return service.progress(session=session, project=project, user=user)


NextQuery = Annotated[
    Literal["0", "1", "page"] | None,
    Query(description="1: also lease the next task; page: and render its labeling page"),
]


async def _with_next(out: Any, request: Request, project_id: int, user: Any, mode: str | None):
    """`out` (SubmitOut or SkipOut) with the next task leased in the same project, if asked."""
    if mode not in ("1", "page"):
        return out
    memory = request.app.state.memory
    out.next_task = await hot.next_task(project_id=project_id, user=user, memory=memory)
    if mode == "page" and out.next_task is not None:
        out.next_page = await run_in_threadpool(
            pages.task_page_html,
            request=request,
            project_id=project_id,
            user=user,
            task=out.next_task,
        )
    return out


@router.post(
    "/assignments/{assignment_id}/annotations",
    response_model=SubmitOut,
    status_code=201,
    responses={200: {"description": "a retry with the same Idempotency-Key: the first result"}},
)
async def annotate(
    assignment_id: PublicId,
    body: AnnotationIn,
    request: Request,
    response: Response,
    user: LabelerUser,
    idempotency_key: Annotated[str | None, Header(max_length=MAX_KEY)] = None,
    next: NextQuery = None,
) -> object:
    """Store an annotation; with ?next=1 the response also carries the next task."""
    annotation, created = await hot.submit(
        assignment_id=assignment_id,
        user=user,
        body=body,
        idempotency_key=idempotency_key,
        memory=request.app.state.memory,
    )
    if not created:
        response.status_code = 200
        response.headers["Idempotent-Replayed"] = "true"
    out = SubmitOut.model_validate(public.annotation(annotation))
    return await _with_next(out, request, annotation.project_id, user, next)


@router.post("/assignments/{assignment_id}/skip", response_model=SkipOut)
async def skip(
    assignment_id: PublicId,
    body: SkipIn,
    request: Request,
    user: LabelerUser,
    next: NextQuery = None,
) -> object:
    """Skip a leased task; with ?next=1 the response also carries the next task."""
    row = await hot.skip(assignment_id=assignment_id, user=user, reason=body.reason)
    return await _with_next(
        SkipOut.model_validate(public.assignment(row)), request, row.project_id, user, next
    )


HOT = (next_task, annotate, skip)
"""The labeling hot path: served by `app.labeling.lane` from these routes' declarations."""


@router.post("/assignments/{assignment_id}/return", status_code=204)
def give_back(assignment_id: PublicId, session: SessionDep, user: LabelerUser) -> None:
    """Give a live lease back without skipping it (the prompt may come to you again); a
    labeling page does this for the task it held ready when it is left. Idempotent."""
    service.give_back(session=session, assignment_id=assignment_id, user=user)


@router.get("/assignments", response_model=list[AssignmentOut])
def my_assignments(
    session: SessionDep,
    user: LabelerUser,
    project_id: Id | None = None,
    status: Annotated[str | None, Query(max_length=20)] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> object:
    """The caller's own assignments (with public ids, as their tasks showed them)."""
    rows = service.list_assignments(
        session=session,
        user_id=user.id,
        project_id=project_id,
        status=status,
        limit=limit,
        offset=offset,
    )
    return [public.assignment(row) for row in rows]


@router.get("/annotations", response_model=list[AnnotationOut])
def annotations(
    session: SessionDep,
    user: CurrentUser,
    project_id: Id | None = None,
    user_id: Id | None = None,
    prompt_id: PublicId | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> object:
    """Labelers see their own annotations with public ids (`prompt_id` is one too); admins
    see all with row ids and may filter by labeler."""
    if not user.is_admin and prompt_id is not None:
        prompt_id = public.decode(public.Kind.prompt, prompt_id)
    rows = service.list_annotations(
        session=session,
        user_id=user_id if user.is_admin else user.id,
        project_id=project_id,
        prompt_id=prompt_id,
        limit=limit,
        offset=offset,
    )
    return rows if user.is_admin else [public.annotation(row) for row in rows]
