"""HTML routes of dataset snapshots: list with lineage and downloads, a form to make one (only
the kinds and options that can have rows for the project), and one snapshot's page with its
dataset card."""

import re
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse
from pydantic import ValidationError

from app.aggregation.consensus import ConsensusMethod
from app.datasets import service
from app.datasets.kinds import DatasetKind
from app.datasets.schemas import FILES, METHODS, SnapshotCreate
from app.db import SessionDep
from app.deps import AdminUser
from app.errors import DomainError, validation_messages
from app.http.bounds import Id, form_bool
from app.labeling.sources import Sources
from app.projects import service as project_service
from app.projects.kinds import ProjectKind
from app.runs.models import run_kinds_for
from app.templating import render

router = APIRouter(tags=["pages"])
LABELS = {
    "kind": "Kind",
    "method": "Method",
    "split": "Train fraction",
    "include_top_ranked": "sft (the top consensus response of each ranked prompt)",
    "normalize": "ratings: normalise per labeler",
    "with_labelers": "name the labelers",
    "weighting": "Weighting",
    "desirable_at": "kto of 0–5 ratings: desirable at ≥",
    "undesirable_at": "kto of 0–5 ratings: undesirable at ≤",
    "sources": "Labels from",
}
"""The form's labels by field name: errors on the page name what the admin sees."""
SOURCES = (
    (Sources.human, "people (labelers and imports): human feedback"),
    (Sources.ai, "AI judges only"),
    (Sources.all, "both (a consensus of both is a mixed row)"),
)
"""The form's choices of `sources`, the default first."""


def in_form_words(message: str, field: str | None = None) -> str:
    """An error for the form: the label of its field in front (`field`, or the "name: " that
    validation puts there), and the field names in its text as their labels."""
    message = message.removeprefix("form: ")
    name, sep, rest = message.partition(": ")
    if field is None and sep and name in LABELS:
        field, message = name, rest
    message = message.replace("weighting=reliability", "weighting “reliability”")
    for name, label in LABELS.items():
        if "_" in name:
            message = re.sub(rf"\b{name}\b", f"“{label}”", message)
    return f"{LABELS[field]}: {message}" if field in LABELS else message


def _page(request: Request, session: SessionDep, project_id: int, status: int = 200, **extra):
    project = project_service.get(session=session, project_id=project_id)
    snapshots = service.list_snapshots(session=session, project_id=project_id)
    return render(
        request,
        "datasets/snapshots.html",
        status,
        project=project,
        snapshots=snapshots,
        files=FILES,
        kinds=service.project_kinds(project),
        methods=METHODS,
        sources=SOURCES,
        run_kinds_for=run_kinds_for,
        **{"error": None, "made": None, "created": None} | extra,
    )


@router.get("/admin/snapshots")
def all_snapshots(request: Request, session: SessionDep, _: AdminUser):
    """Every project's snapshots, newest first, each linking to its project's page."""
    projects = project_service.list_projects(session=session, include_archived=True)
    return render(
        request,
        "datasets/all.html",
        snapshots=service.list_snapshots(session=session),
        projects={p.id: p for p in projects},
        run_kinds_for=run_kinds_for,
    )


@router.get("/admin/projects/{project_id}/snapshots")
def snapshots_page(
    request: Request,
    project_id: Id,
    session: SessionDep,
    _: AdminUser,
    made: Id | None = None,
    created: bool | None = None,
):
    return _page(request, session, project_id, made=made, created=created)


@router.post("/admin/projects/{project_id}/snapshots")
def make_snapshot(
    request: Request,
    project_id: Id,
    session: SessionDep,
    admin: AdminUser,
    kind: Annotated[str, Form()] = "",
    method: Annotated[str, Form()] = ConsensusMethod.ranked_pairs,
    split: Annotated[str, Form()] = "0.9",
    include_top_ranked: Annotated[str, Form()] = "",
    normalize: Annotated[str, Form()] = "",
    with_labelers: Annotated[str, Form()] = "",
    weighting: Annotated[str, Form()] = "none",
    desirable_at: Annotated[str, Form()] = "4",
    undesirable_at: Annotated[str, Form()] = "2",
    sources: Annotated[str, Form()] = Sources.human.value,
):
    """Freeze a snapshot from the form; a bad field re-renders the page with the message. The
    form's sft of a ranking project is the top consensus response of each ranked prompt."""
    project = project_service.get(session=session, project_id=project_id)
    top_ranked = form_bool(include_top_ranked) or (
        kind == DatasetKind.sft and project.kind == ProjectKind.ranking
    )
    try:
        data = SnapshotCreate.model_validate(
            {
                "kind": kind,
                "method": method,
                "split": split.strip() or "0.9",
                "include_top_ranked": top_ranked,
                "normalize": form_bool(normalize),
                "with_labelers": form_bool(with_labelers),
                "weighting": weighting,
                "desirable_at": desirable_at.strip() or "4",
                "undesirable_at": undesirable_at.strip() or "2",
                "sources": sources.strip() or Sources.human,
            }
        )
        snapshot, created = service.create_snapshot(
            session=session, project=project, data=data, created_by=admin
        )
    except (ValidationError, DomainError) as exc:
        session.rollback()
        if isinstance(exc, ValidationError):
            error = "; ".join(in_form_words(m) for m in validation_messages(exc))
        else:
            error = in_form_words(exc.message, exc.field)
        return _page(request, session, project_id, 422, error=error)
    return RedirectResponse(
        f"/admin/projects/{project_id}/snapshots?made={snapshot.id}&created={str(created).lower()}",
        status_code=303,
    )


@router.get("/admin/snapshots/{snapshot_id}")
def snapshot_page(request: Request, snapshot_id: Id, session: SessionDep, _: AdminUser):
    """One snapshot: its numbers, files, the runs it can feed, and its dataset card (markdown,
    rendered with raw HTML escaped)."""
    snapshot = service.get_snapshot(session=session, snapshot_id=snapshot_id)
    project = project_service.get(session=session, project_id=snapshot.project_id)
    try:
        card = service.snapshot_file(snapshot=snapshot, name="README.md").read_text("utf-8")
    except DomainError:
        card = None
    return render(
        request,
        "datasets/snapshot.html",
        snapshot=snapshot,
        project=project,
        card=card,
        files=FILES,
        run_kinds_for=run_kinds_for,
    )
