"""JSON routes of dataset files: a project's raw export, and snapshots (create, list, show,
download files)."""

from fastapi import APIRouter
from fastapi import Response as HTTPResponse
from fastapi.responses import FileResponse, StreamingResponse

from app.datasets import export as export_rows
from app.datasets import service
from app.datasets.kinds import DatasetKind
from app.datasets.schemas import SnapshotCreate, SnapshotOut, SnapshotResult
from app.db import SessionDep, get_sessionmaker
from app.deps import AdminUser
from app.http.bounds import Id, Keyword
from app.http.headers import attachment
from app.projects import service as project_service

router = APIRouter(prefix="/api/v1", tags=["datasets"])
MEDIA = {
    ".jsonl": "application/x-ndjson",
    ".parquet": "application/vnd.apache.parquet",
    ".md": "text/markdown; charset=utf-8",
}


@router.post(
    "/projects/{project_id}/snapshots",
    response_model=SnapshotResult,
    status_code=201,
    responses={200: {"description": "unchanged data: the newest equal snapshot is returned"}},
)
def create_snapshot(
    project_id: Id,
    body: SnapshotCreate,
    session: SessionDep,
    admin: AdminUser,
    response: HTTPResponse,
) -> object:
    """Freeze the project's labels into a new snapshot (201), or return the equal newest (200)."""
    project = project_service.get(session=session, project_id=project_id)
    snapshot, created = service.create_snapshot(
        session=session, project=project, data=body, created_by=admin
    )
    if not created:
        response.status_code = 200
    return SnapshotResult(**SnapshotOut.model_validate(snapshot).model_dump(), created=created)


@router.get("/projects/{project_id}/snapshots", response_model=list[SnapshotOut])
def list_snapshots(
    project_id: Id, session: SessionDep, _: AdminUser, kind: Keyword | None = None
) -> object:
    """The project's snapshots, newest first."""
    project_service.get(session=session, project_id=project_id)
    return service.list_snapshots(session=session, project_id=project_id, kind=kind)


@router.get("/snapshots/{snapshot_id}", response_model=SnapshotOut)
def get_snapshot(snapshot_id: Id, session: SessionDep, _: AdminUser) -> object:
    """One snapshot: parameters, row counts, hash, lineage."""
    return service.get_snapshot(session=session, snapshot_id=snapshot_id)


@router.get(
    "/snapshots/{snapshot_id}/files/{name}",
    response_class=FileResponse,
    responses={
        200: {
            "description": "the file",
            "content": {media: {} for media in (*MEDIA.values(), "application/json")},
        }
    },
)
def download(snapshot_id: Id, name: Keyword, session: SessionDep, _: AdminUser) -> FileResponse:
    """A snapshot file: train/test .jsonl and .parquet, manifest.json, README.md (the card)."""
    snapshot = service.get_snapshot(session=session, snapshot_id=snapshot_id)
    path = service.snapshot_file(snapshot=snapshot, name=name)
    return FileResponse(
        path,
        media_type=MEDIA.get(path.suffix, "application/json"),
        filename=f"snapshot-{snapshot.id}-{name}",
    )


@router.get(
    "/projects/{project_id}/export",
    response_class=StreamingResponse,
    responses={200: {"description": "JSON lines", "content": {"application/x-ndjson": {}}}},
)
def export_labels(
    project_id: Id,
    _: AdminUser,
    kind: DatasetKind,
    with_labelers: bool = False,
) -> StreamingResponse:
    """The project's labels as JSONL, streamed (one row per annotation); with_labelers adds
    each row's labeler (email) and annotation time."""
    session = get_sessionmaker()()
    try:
        project = project_service.get(session=session, project_id=project_id)
        lines = export_rows.jsonl(
            session=session, project=project, kind=kind, with_labelers=with_labelers
        )
    except BaseException:
        session.close()
        raise

    def stream():
        try:
            yield from lines
        finally:
            session.close()

    return StreamingResponse(
        stream(),
        media_type="application/x-ndjson",
        headers={"Content-Disposition": attachment(f"{project.name}-{kind}.jsonl")},
    )
