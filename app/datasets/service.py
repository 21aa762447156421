"""Dataset snapshots: freeze a project's aggregated labels into immutable, hashed files.

A snapshot is a folder `artifacts_dir/snapshots/<id>/` (train/test as JSONL and Parquet, and
manifest.json) plus a row with its parameters, row counts, content hash and lineage (the
previous snapshot of the same project and kind, and a version number per project and kind).
If the newest snapshot of the project and kind made with the same parameters has the same
content hash, it is returned instead of a duplicate.
"""

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.aggregation import service as aggregation
from app.auth import service as auth_service
from app.auth.models import User
from app.config import get_settings
from app.datasets import writer
from app.datasets.card import dataset_card
from app.datasets.kinds import NEEDS, DatasetKind, kinds_for
from app.datasets.models import Snapshot
from app.datasets.rows import Tally, snapshot_rows
from app.datasets.schemas import FILES, SnapshotCreate
from app.db import make_engine
from app.errors import Conflict, Invalid, NotFound
from app.progress import Progress
from app.projects.kinds import ProjectKind
from app.projects.models import Project
from app.projects.questions import likert_names
from app.quality import service as quality


def snapshots_dir() -> Path:
    """Where snapshot folders live."""
    return get_settings().artifacts_dir / "snapshots"


@contextmanager
def _reader(session: Session) -> Iterator[Session]:
    """A read-only session that sees one consistent state of the database for the export.

    SQLite: a deferred transaction (WAL snapshot) that never holds the write lock labelers
    need; PostgreSQL: REPEATABLE READ.
    """
    bind = session.get_bind()
    if bind.dialect.name == "sqlite":
        url = bind.engine.url.render_as_string(hide_password=False)
        engine = make_engine(url, sqlite_immediate=False)
        try:
            with Session(engine) as reader, reader.begin():
                yield reader
        finally:
            engine.dispose()
    else:
        repeatable = bind.execution_options(isolation_level="REPEATABLE READ")
        with Session(repeatable) as reader, reader.begin():
            yield reader


def _newest(session: Session, project_id: int, kind: str) -> Snapshot | None:
    return session.scalar(
        select(Snapshot)
        .where(Snapshot.project_id == project_id, Snapshot.kind == kind)
        .order_by(Snapshot.version.desc())
        .limit(1)
    )


def _newest_with(session: Session, project_id: int, params: dict) -> Snapshot | None:
    """The newest snapshot of the project and kind made with exactly these parameters."""
    query = (
        select(Snapshot)
        .where(Snapshot.project_id == project_id, Snapshot.kind == params["kind"])
        .order_by(Snapshot.version.desc())
    )
    return next((s for s in session.scalars(query) if s.params == params), None)


def _freeze(directory: Path) -> None:
    for path in directory.iterdir():
        path.chmod(0o444)


def _manifest(snapshot: Snapshot, project: Project, written: writer.Written, json_cols: list[str]):
    return {
        "snapshot_id": snapshot.id,
        "project_id": project.id,
        "project": project.name,
        "kind": snapshot.kind,
        "version": snapshot.version,
        "previous_id": snapshot.previous_id,
        "params": snapshot.params,
        "content_hash": snapshot.content_hash,
        "rows": written.rows,
        "sha256": {f"{s}.jsonl": written.sha256[s] for s in writer.SPLITS},
        "parquet_json_columns": json_cols,
        "created_at": snapshot.created_at.isoformat(),
        "created_by_id": snapshot.created_by_id,
    }


def _reliability_params(
    reader: Session, project: Project, excluded: list[int], sources: str
) -> dict:
    """Weights (reliability per labeler, fitted on the labels of `sources`), α of the labels
    used, and the excluded labelers."""
    weights = quality.labeler_weights(session=reader, project=project, sources=sources)
    alpha, _ = quality.alpha_of(session=reader, project=project, sources=sources)
    return {
        "weights": {str(user_id): w for user_id, w in sorted(weights.items())},
        "alpha": None if alpha.value is None else round(alpha.value, 6),
        "alpha_interval": None
        if alpha.lower is None
        else [round(alpha.lower, 6), round(alpha.upper, 6)],
        "excluded": excluded,
    }


def project_kinds(project: Project) -> tuple[DatasetKind, ...]:
    """The snapshot kinds that can have rows for this project (`kinds.kinds_for`)."""
    return kinds_for(project.kind, bool(likert_names(project.questions or [])))


def check_fits(project: Project, data: SnapshotCreate) -> None:
    """Invalid, naming the field, for a snapshot that could have no rows for this project's
    kind: a kind its labels cannot make, or an option it cannot use."""
    where = f"project {project.name!r} is a {project.kind} project"
    kinds = project_kinds(project)
    if data.kind not in kinds:
        raise Invalid(
            f"{where}: it has no {NEEDS[data.kind]}, so a {data.kind} snapshot of it would have "
            f"no rows; its snapshot kinds are {', '.join(kinds)}",
            field="kind",
        )
    ranking = project.kind == ProjectKind.ranking
    if data.kind == DatasetKind.sft and data.include_top_ranked != ranking:
        raise Invalid(
            f"{where}: its sft snapshot is the top consensus response of each ranked prompt "
            "(include_top_ranked must be true)"
            if ranking
            else f"{where}: it has no rankings to take a top response from (include_top_ranked "
            "must be false)",
            field="include_top_ranked",
        )
    if data.kind == DatasetKind.ratings and data.normalize and project.kind != ProjectKind.rating:
        raise Invalid(
            f"{where}: its ratings rows hold the means of Likert questions, no main rating to "
            "normalise per labeler",
            field="normalize",
        )


def create_snapshot(
    *,
    session: Session,
    project: Project,
    data: SnapshotCreate,
    created_by: User | None = None,
    progress: Progress | None = None,
) -> tuple[Snapshot, bool]:
    """Write a snapshot and commit it; (snapshot, False) when it equals the newest one.
    Invalid first when the kind or an option cannot have rows for the project (`check_fits`)."""
    check_fits(project, data)
    params = data.canonical()
    session.commit()  # hold no lock while exporting (SQLite: the write lock labelers need)
    root = snapshots_dir()
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".tmp-{uuid.uuid4().hex}"
    tmp.mkdir()
    try:
        with _reader(session) as reader:
            excluded = sorted(aggregation.excluded_user_ids(session=reader, project_id=project.id))
            if params.get("weighting") == "reliability":
                params |= _reliability_params(reader, project, excluded, params["sources"])
            tally = Tally()
            written, json_cols = writer.write_files(
                tmp,
                snapshot_rows(
                    session=reader, project=project, params=params, progress=progress, tally=tally
                ),
                params,
            )
        same = _newest_with(session, project.id, params)
        if same is not None and same.content_hash == written.content_hash:
            shutil.rmtree(tmp)
            session.commit()
            return same, False
        newest = _newest(session, project.id, params["kind"])
        snapshot = Snapshot(
            project_id=project.id,
            kind=params["kind"],
            version=newest.version + 1 if newest else 1,
            previous_id=newest.id if newest else None,
            params=params,
            content_hash=written.content_hash,
            train_rows=written.rows["train"],
            test_rows=written.rows["test"],
            directory="",
            created_by_id=created_by.id if created_by else None,
        )
        session.add(snapshot)
        session.flush()
        snapshot.directory = f"snapshots/{snapshot.id}"
        manifest = _manifest(snapshot, project, written, json_cols)
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False))
        emails = {u.id: u.email for u in auth_service.list_users(session=session)}
        card = dataset_card(
            snapshot=snapshot,
            project=project,
            rows=written.rows,
            emails=emails,
            excluded=excluded,
            tally=tally,
        )
        (tmp / "README.md").write_text(card)
        _freeze(tmp)
        final = root / str(snapshot.id)
        if final.exists():  # left by a process that died before its commit: no row points here
            shutil.rmtree(final)
        os.replace(tmp, final)
        try:
            session.commit()
        except BaseException:
            shutil.rmtree(final, ignore_errors=True)
            raise
    except IntegrityError:
        session.rollback()
        shutil.rmtree(tmp, ignore_errors=True)
        raise Conflict(
            "another snapshot of this project and kind was made at the same time; retry"
        ) from None
    except BaseException:
        session.rollback()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return snapshot, True


def get_snapshot(*, session: Session, snapshot_id: int) -> Snapshot:
    """The snapshot with this id, or NotFound."""
    snapshot = session.get(Snapshot, snapshot_id)
    if snapshot is None:
        raise NotFound(f"no snapshot {snapshot_id}")
    return snapshot


def list_snapshots(
    *, session: Session, project_id: int | None = None, kind: str | None = None
) -> list[Snapshot]:
    """A project's snapshots (or every project's), newest first."""
    query = select(Snapshot)
    if project_id is not None:
        query = query.where(Snapshot.project_id == project_id)
    if kind is not None:
        query = query.where(Snapshot.kind == kind)
    return list(session.scalars(query.order_by(Snapshot.id.desc())))


def snapshot_files(*, snapshot: Snapshot) -> dict[str, Path]:
    """The snapshot's files by name (train/test .jsonl and .parquet, manifest.json)."""
    directory = get_settings().artifacts_dir / snapshot.directory
    return {name: directory / name for name in FILES}


def snapshot_file(*, snapshot: Snapshot, name: str) -> Path:
    """One file of a snapshot, or NotFound (unknown name, or the folder was removed)."""
    path = snapshot_files(snapshot=snapshot).get(name)
    if path is None:
        raise NotFound(f"a snapshot has no file {name!r}; it has {', '.join(FILES)}")
    if not path.is_file():
        raise NotFound(f"{snapshot.directory}/{name} is missing on disk")
    return path
