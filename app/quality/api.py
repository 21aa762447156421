"""JSON routes of labeler quality (admins only)."""

from typing import Annotated

from fastapi import APIRouter, Query

from app.db import SessionDep
from app.deps import AdminUser
from app.http.bounds import Id
from app.projects import service as project_service
from app.quality import detail, service
from app.quality.schemas import AlphaPoint, LabelerDetail, QualityReport

router = APIRouter(prefix="/api/v1", tags=["quality"])


@router.get("/projects/{project_id}/quality", response_model=QualityReport)
def quality(
    project_id: Id,
    session: SessionDep,
    _: AdminUser,
    rounds: Annotated[int, Query(ge=0, le=10_000, description="bootstrap rounds for α")] = 200,
) -> object:
    """Krippendorff's α with its interval and one row per labeler (reliability, flags, …)."""
    project = project_service.get(session=session, project_id=project_id)
    return service.project_quality(session=session, project=project, rounds=rounds)


@router.get("/projects/{project_id}/quality/alpha", response_model=list[AlphaPoint])
def alpha_over_time(
    project_id: Id,
    session: SessionDep,
    _: AdminUser,
    days: Annotated[int, Query(ge=1, le=365)] = 14,
) -> object:
    """α of the labels stored up to the end of each of the last `days` days."""
    project = project_service.get(session=session, project_id=project_id)
    return service.alpha_over_time(session=session, project=project, days=days)


@router.get("/projects/{project_id}/quality/labelers/{user_id}", response_model=LabelerDetail)
def labeler(project_id: Id, user_id: Id, session: SessionDep, _: AdminUser) -> object:
    """One labeler's row and their labels next to the others' consensus and gold answers."""
    project = project_service.get(session=session, project_id=project_id)
    return detail.labeler_detail(session=session, project=project, user_id=user_id)


@router.post("/projects/{project_id}/quality/labelers/{user_id}/reinstate")
def reinstate(project_id: Id, user_id: Id, session: SessionDep, admin: AdminUser) -> object:
    """Count the labeler in again: their exclusion from this project goes, a hold is released."""
    project = project_service.get(session=session, project_id=project_id)
    changed = service.reinstate(session=session, project=project, user_id=user_id, by=admin)
    session.commit()
    return {"user_id": user_id, "reinstated": changed}
