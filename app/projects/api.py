"""JSON routes of projects: settings, stats, members and import (export: app/datasets/api.py)."""

import shutil
import tempfile
from pathlib import Path

from fastapi import APIRouter, Request, UploadFile
from starlette.concurrency import run_in_threadpool

from app.auth.schemas import UserOut
from app.db import SessionDep, get_sessionmaker
from app.deps import AdminUser, CurrentUser
from app.errors import Invalid
from app.http.bounds import Id
from app.projects import importer, service
from app.projects.formats import ImportFormat
from app.projects.schemas import (
    ImportReport,
    MemberIn,
    ProjectCreate,
    ProjectOut,
    ProjectStats,
    ProjectUpdate,
)

router = APIRouter(prefix="/api/v1/projects", tags=["projects"])


@router.get("", response_model=list[ProjectOut])
def list_projects(session: SessionDep, user: CurrentUser, archived: bool = False) -> object:
    return service.list_projects(
        session=session, include_archived=archived and user.is_admin, for_user=user
    )


@router.post("", response_model=ProjectOut, status_code=201)
def create_project(body: ProjectCreate, session: SessionDep, _: AdminUser) -> object:
    project = service.create(session=session, data=body)
    session.commit()
    return project


@router.get("/{project_id}", response_model=ProjectOut)
def get_project(project_id: Id, session: SessionDep, user: CurrentUser) -> object:
    """The project; 403 for a labeler who is not a member of a members-only project."""
    return service.get_for(session=session, project_id=project_id, user=user)


@router.patch("/{project_id}", response_model=ProjectOut)
def update_project(
    project_id: Id, body: ProjectUpdate, session: SessionDep, _: AdminUser
) -> object:
    project = service.get(session=session, project_id=project_id)
    service.update(session=session, project=project, data=body)
    session.commit()
    return project


@router.get("/{project_id}/stats", response_model=ProjectStats)
def project_stats(project_id: Id, session: SessionDep, _: AdminUser) -> object:
    return service.stats(
        session=session, project=service.get(session=session, project_id=project_id)
    )


async def _spool(request: Request, file: UploadFile | None) -> Path:
    """The upload (multipart `file`, or the raw request body) in a temporary file."""
    with tempfile.NamedTemporaryFile(
        prefix="rlhf-import-", suffix=".jsonl", delete=False
    ) as handle:
        if file is not None:
            await run_in_threadpool(shutil.copyfileobj, file.file, handle)
        else:
            async for chunk in request.stream():
                handle.write(chunk)
    return Path(handle.name)


@router.post(
    "/{project_id}/items",
    response_model=ImportReport,
    responses={422: {"description": "bad lines, with line numbers; nothing was imported"}},
)
async def import_items(
    project_id: Id,
    request: Request,
    _: AdminUser,
    file: UploadFile | None = None,
    label_config: UploadFile | None = None,
    format: ImportFormat = ImportFormat.auto,
    skip_invalid: bool = False,
) -> object:
    """Import JSONL, a JSON array or Parquet (or gzip) as a multipart `file` or as the raw
    body; all or nothing. A Label Studio export may come with its labeling config (multipart
    `label_config`, XML)."""
    if file is None and request.headers.get("content-type", "").startswith("multipart/"):
        raise Invalid("a multipart upload needs a part named 'file'", field="file")
    config = None
    if label_config is not None:
        config = importer.label_config_text(await label_config.read(importer.MAX_LABEL_CONFIG + 1))
    path = await _spool(request, file)
    try:
        return await run_in_threadpool(_import, project_id, path, format, skip_invalid, config)
    finally:
        path.unlink(missing_ok=True)


def _import(
    project_id: int, path: Path, fmt: str, skip_invalid: bool, label_config: str | None
) -> ImportReport:
    with get_sessionmaker()() as session:
        project = service.get(session=session, project_id=project_id)
        return importer.import_file(
            session=session,
            project=project,
            path=path,
            fmt=fmt,
            skip_invalid=skip_invalid,
            label_config=label_config,
        )


@router.get("/{project_id}/members", response_model=list[UserOut])
def list_members(project_id: Id, session: SessionDep, _: AdminUser) -> object:
    """The labelers the project is restricted to; empty means open to every labeler."""
    return service.list_members(
        session=session, project=service.get(session=session, project_id=project_id)
    )


@router.post("/{project_id}/members", response_model=list[UserOut])
def add_member(project_id: Id, body: MemberIn, session: SessionDep, _: AdminUser) -> object:
    project = service.get(session=session, project_id=project_id)
    service.add_member(session=session, project=project, user_id=body.user_id)
    session.commit()
    return service.list_members(session=session, project=project)


@router.delete("/{project_id}/members/{user_id}", response_model=list[UserOut])
def remove_member(project_id: Id, user_id: Id, session: SessionDep, _: AdminUser) -> object:
    project = service.get(session=session, project_id=project_id)
    service.remove_member(session=session, project=project, user_id=user_id)
    session.commit()
    return service.list_members(session=session, project=project)
