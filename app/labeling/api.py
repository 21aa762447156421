"""JSON routes of labeling: next task, annotate, skip, and one's own history."""

from typing import Annotated

from fastapi import APIRouter, Header, Query
from fastapi import Response as HTTPResponse

from app.db import SessionDep
from app.deps import CurrentUser, LabelerUser
from app.http.bounds import Id, Limit, Offset
from app.labeling import service
from app.labeling.schemas import (
    AnnotationIn,
    AnnotationOut,
    AssignmentOut,
    Progress,
    SkipIn,
    Task,
)
from app.projects import service as project_service

router = APIRouter(prefix="/api/v1", tags=["labeling"])


@router.get(
    "/projects/{project_id}/tasks/next",
    response_model=Task,
    responses={204: {"description": "nothing left for this labeler"}},
)
def next_task(project_id: Id, session: SessionDep, user: LabelerUser) -> object:
    project = project_service.get(session=session, project_id=project_id)
    task = service.next_task(session=session, project=project, user=user)
    if task is None:
        return HTTPResponse(status_code=204)
    return task


@router.get("/projects/{project_id}/progress", response_model=Progress)
def my_progress(project_id: Id, session: SessionDep, user: LabelerUser) -> object:
    project = project_service.get(session=session, project_id=project_id)
    return service.progress(session=session, project=project, user=user)


@router.post(
    "/assignments/{assignment_id}/annotations",
    response_model=AnnotationOut,
    status_code=201,
    responses={200: {"description": "a retry with the same Idempotency-Key: the first result"}},
)
def annotate(
    assignment_id: Id,
    body: AnnotationIn,
    response: HTTPResponse,
    session: SessionDep,
    user: LabelerUser,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> object:
    annotation, created = service.submit(
        session=session,
        assignment_id=assignment_id,
        user=user,
        body=body,
        idempotency_key=idempotency_key,
    )
    if not created:
        response.status_code = 200
        response.headers["Idempotent-Replayed"] = "true"
    return annotation


@router.post("/assignments/{assignment_id}/skip", response_model=AssignmentOut)
def skip(assignment_id: Id, body: SkipIn, session: SessionDep, user: LabelerUser) -> object:
    return service.skip(session=session, assignment_id=assignment_id, user=user, reason=body.reason)


@router.get("/assignments", response_model=list[AssignmentOut])
def my_assignments(
    session: SessionDep,
    user: LabelerUser,
    project_id: Id | None = None,
    status: Annotated[str | None, Query(max_length=20)] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> object:
    """The caller's own assignments."""
    return service.list_assignments(
        session=session,
        user_id=user.id,
        project_id=project_id,
        status=status,
        limit=limit,
        offset=offset,
    )


@router.get("/annotations", response_model=list[AnnotationOut])
def annotations(
    session: SessionDep,
    user: CurrentUser,
    project_id: Id | None = None,
    user_id: Id | None = None,
    prompt_id: Id | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> object:
    """Labelers see their own annotations; admins see all and may filter by labeler."""
    return service.list_annotations(
        session=session,
        user_id=user_id if user.is_admin else user.id,
        project_id=project_id,
        prompt_id=prompt_id,
        limit=limit,
        offset=offset,
    )
