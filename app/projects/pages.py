"""HTML routes for admins: the dashboard, creating and configuring projects, imports."""

import json
import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request, UploadFile
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import ValidationError

from app.auth import service as auth_service
from app.datasets.kinds import DatasetKind
from app.db import SessionDep
from app.deps import AdminUser
from app.errors import DomainError, Invalid, validation_messages
from app.http.bounds import Id, form_bool
from app.labeling import exclusions, labels
from app.labeling import service as labeling_service
from app.projects import formats, import_progress, importer, service, strength
from app.projects.kinds import ProjectKind, RatingScale
from app.projects.models import Project
from app.projects.schemas import MemberIn, ProjectCreate, ProjectUpdate
from app.templating import render

router = APIRouter(prefix="/admin", tags=["pages"])

EXPORTS = {
    ProjectKind.ranking: [
        DatasetKind.rankings,
        DatasetKind.pairs,
        DatasetKind.kto,
        DatasetKind.prompts,
    ],
    ProjectKind.rating: [DatasetKind.ratings, DatasetKind.kto, DatasetKind.prompts],
    ProjectKind.demonstration: [DatasetKind.sft, DatasetKind.prompts],
}
FORMATS = list(formats.ImportFormat)
TOOLS = {
    "labelstudio": "Label Studio",
    "argilla": "Argilla",
    "oasst": "Open-Assistant",
    "arena": "Chatbot Arena",
    "ai": "a judge run (AI feedback)",
}
"""The tools source annotators come from (`User.source`), as the page names them."""
SOURCES_SHOWN = 100


def _settings(
    instructions: str,
    k: str | None,
    overlap: str,
    lease_seconds: str,
    rating_scale: str | None,
    criteria: str,
) -> dict[str, Any]:
    names = [c.strip() for c in criteria.replace(",", "\n").splitlines() if c.strip()]
    return {
        "instructions": instructions,
        "k": k,
        "overlap": overlap,
        "lease_seconds": lease_seconds,
        "rating_scale": rating_scale,
        "criteria": names,
    }


def _strength_scale(text: str) -> list[dict[str, Any]]:
    """The form's strength scale (one `label = margin` per line), or Invalid naming the line."""
    try:
        return strength.parse_lines(text)
    except ValueError as exc:
        raise Invalid(f"strength_scale: {exc}", field="strength_scale") from None


def _questions(value: str) -> Any:
    """The questions typed into the form (a JSON list; blank: none); ValueError names the spot."""
    if not value.strip():
        return []
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"questions: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None


@router.get("")
def dashboard(request: Request, session: SessionDep, _: AdminUser):
    projects = service.list_projects(session=session, include_archived=True)
    rows = [(p, service.stats(session=session, project=p)) for p in projects]
    per_day = labeling_service.labels_per_day(session=session, days=14)
    return render(request, "admin/dashboard.html", rows=rows, per_day=per_day)


@router.get("/projects/new")
def new_project(request: Request, _: AdminUser):
    return render(request, "admin/project_new.html", form={}, errors=[], kinds=list(ProjectKind))


@router.post("/projects")
def create_project(
    request: Request,
    session: SessionDep,
    _: AdminUser,
    name: Annotated[str, Form()] = "",
    kind: Annotated[str, Form()] = "",
    instructions: Annotated[str, Form()] = "",
    k: Annotated[str, Form()] = "4",
    overlap: Annotated[str, Form()] = "1",
    lease_seconds: Annotated[str, Form()] = "1800",
    rating_scale: Annotated[str, Form()] = RatingScale.thumbs,
    criteria: Annotated[str, Form()] = "",
    strength_scale: Annotated[str, Form()] = "",
    questions: Annotated[str, Form()] = "",
    suggestions: Annotated[str, Form()] = "off",
    order: Annotated[str, Form()] = "id",
    judge_accepts: Annotated[str, Form()] = "",
    judge_fills: Annotated[str, Form()] = "1",
    judge_template: Annotated[str, Form()] = "",
):
    form: dict[str, Any] = {"name": name, "kind": kind, "suggestions": suggestions}
    form |= _settings(instructions, k, overlap, lease_seconds, rating_scale, criteria)
    form |= {"order": order, "judge_accepts": judge_accepts.strip() or None}
    form["judge_fills"] = judge_fills.strip() or "1"
    form["judge_template"] = judge_template
    try:
        form["strength_scale"] = _strength_scale(strength_scale)
        form["questions"] = _questions(questions)
        project = service.create(session=session, data=ProjectCreate.model_validate(form))
        session.commit()
    except ValidationError as exc:
        errors = validation_messages(exc)
    except ValueError as exc:
        errors = [str(exc)]
    except DomainError as exc:
        session.rollback()
        errors = [exc.message]
    else:
        return RedirectResponse(f"/admin/projects/{project.id}?created=1", status_code=303)
    form["criteria"] = criteria
    form["strength_scale"] = strength_scale
    form["questions"] = questions
    return render(
        request, "admin/project_new.html", 422, form=form, errors=errors, kinds=list(ProjectKind)
    )


def _project_page(
    request: Request, session: SessionDep, project: Project, status_code: int = 200, **context: Any
):
    context.setdefault("errors", [])
    return render(
        request,
        "admin/project.html",
        status_code,
        project=project,
        stats=service.stats(session=session, project=project),
        per_day=labeling_service.labels_per_day(session=session, days=14, project_id=project.id),
        exports=EXPORTS[ProjectKind(project.kind)],
        formats=FORMATS,
        has_labels=service.has_labels(session=session, project=project),
        members=service.list_members(session=session, project=project),
        labelers=[
            u
            for u in auth_service.list_users(session=session)
            if u.role == "labeler" and u.source is None
        ],
        sources=labels.source_annotators(session=session, project_id=project.id),
        sources_shown=SOURCES_SHOWN,
        excluded=exclusions.excluded_user_ids(session=session, project_id=project.id),
        tools=TOOLS,
        **context,
    )


@router.get("/projects/{project_id}")
def project_page(request: Request, project_id: Id, session: SessionDep, _: AdminUser):
    project = service.get(session=session, project_id=project_id)
    created = request.query_params.get("created")
    return _project_page(request, session, project, notice="Project created." if created else None)


@router.post("/projects/{project_id}")
def update_project(
    request: Request,
    project_id: Id,
    session: SessionDep,
    _: AdminUser,
    name: Annotated[str, Form()] = "",
    instructions: Annotated[str, Form()] = "",
    k: Annotated[str | None, Form()] = None,
    overlap: Annotated[str, Form()] = "1",
    lease_seconds: Annotated[str, Form()] = "1800",
    rating_scale: Annotated[str | None, Form()] = None,
    criteria: Annotated[str, Form()] = "",
    strength_scale: Annotated[str | None, Form()] = None,
    questions: Annotated[str, Form()] = "",
    is_archived: Annotated[str, Form()] = "",
    suggestions: Annotated[str | None, Form()] = None,
    order: Annotated[str | None, Form()] = None,
    judge_accepts: Annotated[str | None, Form()] = None,
    judge_accepts_shown: Annotated[str, Form()] = "",
    judge_fills: Annotated[str | None, Form()] = None,
    judge_template: Annotated[str | None, Form()] = None,
):
    """Save the settings form. K, the rating scale and the strength scale are absent when the
    form disabled them (the project has labels): an absent field is left as it is. A blank
    judge_accepts (the form marks that it showed the field: a blank arrives as absent) turns
    judge labels' counting off."""
    project = service.get(session=session, project_id=project_id)
    form = {
        "name": name,
        "is_archived": form_bool(is_archived),
        "suggestions": suggestions,
        "order": order,
        "judge_fills": (judge_fills or "").strip() or None,
    }
    form |= _settings(instructions, k, overlap, lease_seconds, rating_scale, criteria)
    form = {key: value for key, value in form.items() if value is not None}
    if judge_accepts is not None or judge_accepts_shown:
        form["judge_accepts"] = (judge_accepts or "").strip() or None
    if judge_template is not None:  # blank: the default question
        form["judge_template"] = judge_template
    # What the page shows again, as typed, when the settings are refused.
    typed = {"typed": questions, "typed_judge_template": judge_template}
    try:
        if strength_scale is not None:
            form["strength_scale"] = _strength_scale(strength_scale)
        form["questions"] = _questions(questions)
        service.update(session=session, project=project, data=ProjectUpdate.model_validate(form))
        session.commit()
    except ValidationError as exc:
        errors = validation_messages(exc)
        return _project_page(request, session, project, 422, errors=errors, **typed)
    except ValueError as exc:
        return _project_page(request, session, project, 422, errors=[str(exc)], **typed)
    except DomainError as exc:
        session.rollback()
        session.refresh(project)
        return _project_page(request, session, project, 422, errors=[exc.message])
    return _project_page(request, session, project, notice="Settings saved.")


@router.post("/projects/{project_id}/import")
def import_items(
    request: Request,
    project_id: Id,
    session: SessionDep,
    _: AdminUser,
    file: UploadFile | None = None,
    label_config: UploadFile | None = None,
    format: Annotated[str, Form()] = "auto",
    progress_id: Annotated[str, Form()] = "",
):
    """Import an uploaded file (with a Label Studio export, its labeling config if given); all
    or nothing, with the bad lines listed. The page's script names the import (`progress_id`)
    to poll its progress while it runs."""
    project = service.get(session=session, project_id=project_id)

    def refused(exc: DomainError) -> Any:
        """The page again, with the error naming its field and that field marked."""
        message = f"{exc.field}: {exc.message}" if exc.field else exc.message
        return _project_page(
            request, session, project, 422, errors=[message], bad_field=exc.field, chosen=format
        )

    if format not in FORMATS:
        return refused(Invalid(f"unknown format {format!r}", field="format"))
    if file is None:
        return refused(Invalid("choose a file", field="file"))
    config = None
    if label_config is not None:
        try:
            config = importer.label_config_text(
                label_config.file.read(importer.MAX_LABEL_CONFIG + 1)
            )
        except DomainError as exc:
            return refused(exc)
    with tempfile.NamedTemporaryFile(prefix="rlhf-import-", suffix=".jsonl", delete=False) as out:
        shutil.copyfileobj(file.file, out)
    path = Path(out.name)
    progress = (
        import_progress.ImportProgress(progress_id) if import_progress.valid(progress_id) else None
    )
    report = None
    try:
        report = importer.import_file(
            session=session,
            project=project,
            path=path,
            fmt=format,
            progress=progress,
            label_config=config,
        )
    except importer.ImportFailed as exc:
        session.rollback()
        return _project_page(
            request,
            session,
            project,
            422,
            import_failure=exc,
            filename=file.filename,
            chosen=format,
        )
    except DomainError as exc:
        session.rollback()
        return refused(exc)
    finally:
        path.unlink(missing_ok=True)
        if progress is not None:
            progress.finish(report.imported if report else 0, ok=report is not None)
    return _project_page(request, session, project, report=report, filename=file.filename)


@router.get("/projects/{project_id}/import/progress")
def import_progress_of(project_id: Id, _: AdminUser, id: str = "") -> JSONResponse:
    """How far the import the page named `id` has got: prompts stored, lines read of all."""
    state = import_progress.read(id)
    if state is None:
        return JSONResponse({"detail": "no import with this id (yet)"}, status_code=404)
    return JSONResponse(state, headers={"Cache-Control": "no-store"})


@router.post("/projects/{project_id}/members")
def add_member(
    request: Request,
    project_id: Id,
    session: SessionDep,
    _: AdminUser,
    user_id: Annotated[str, Form()] = "",
):
    """Restrict the project to its members, adding one."""
    project = service.get(session=session, project_id=project_id)
    try:
        member = MemberIn.model_validate({"user_id": user_id})
        service.add_member(session=session, project=project, user_id=member.user_id)
    except (ValidationError, DomainError) as exc:
        session.rollback()
        errors = validation_messages(exc) if isinstance(exc, ValidationError) else [exc.message]
        return _project_page(request, session, project, 422, errors=errors)
    session.commit()
    return RedirectResponse(f"/admin/projects/{project_id}#members", status_code=303)


@router.post("/projects/{project_id}/members/{user_id}/remove")
def remove_member(
    project_id: Id, user_id: Id, session: SessionDep, _: AdminUser
) -> RedirectResponse:
    """Take a labeler off the project (without members it is open to all again)."""
    project = service.get(session=session, project_id=project_id)
    service.remove_member(session=session, project=project, user_id=user_id)
    session.commit()
    return RedirectResponse(f"/admin/projects/{project_id}#members", status_code=303)
