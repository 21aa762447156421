"""JSON routes of task management: a project's prompts with their state, and the actions."""

from fastapi import APIRouter, Query

from app.db import SessionDep
from app.deps import AdminUser
from app.http.bounds import AfterId, Id, Keyword, SearchText
from app.projects import service as project_service
from app.prompts import service
from app.prompts.schemas import (
    BulkAction,
    Changed,
    LeaseOut,
    PromptPage,
    PromptState,
    ResponseBrief,
    SkipOut,
)
from app.prompts.service import PromptFilter, PromptRow

router = APIRouter(prefix="/api/v1/projects/{project_id}", tags=["prompts"])


def _state(row: PromptRow) -> PromptState:
    p = row.prompt
    return PromptState(
        id=p.id,
        external_id=p.external_id,
        messages=p.messages,
        is_gold=p.is_gold,
        retired_at=p.retired_at,
        labels_done=p.done_count,
        labels_needed=row.wanted,
        responses=[ResponseBrief(id=r.id, model=r.model, text=r.text) for r in row.responses],
        leases=[LeaseOut(**vars(lease)) for lease in row.leases],
        skips=[SkipOut(**vars(skip)) for skip in row.skips],
    )


@router.get("/prompts", response_model=PromptPage)
def list_prompts(
    project_id: Id,
    session: SessionDep,
    _: AdminUser,
    status: Keyword | None = None,
    model: SearchText | None = None,
    q: SearchText | None = None,
    after: AfterId = 0,
    limit: int = Query(service.PAGE_SIZE, ge=1, le=500),
) -> PromptPage:
    """Prompts with id > after, in id order, filtered (keyset pages: follow `next_after`)."""
    project = project_service.get(session=session, project_id=project_id)
    rows, next_after = service.list_prompts(
        session=session,
        project=project,
        where=PromptFilter(status=status, model=model, q=q),
        after=after,
        limit=limit,
    )
    return PromptPage(prompts=[_state(r) for r in rows], next_after=next_after)


@router.post("/prompts/actions", response_model=Changed)
def act_on_filter(
    project_id: Id, body: BulkAction, session: SessionDep, admin: AdminUser
) -> Changed:
    """Re-queue, retire or restore every prompt the filter matches that the action can change
    (logged per prompt); 422 on an action that cannot apply to the filter's status."""
    project = project_service.get(session=session, project_id=project_id)
    where = PromptFilter(status=body.status, model=body.model, q=body.q)
    changed = service.act(
        session=session, project=project, by=admin, action=body.action, where=where
    )
    session.commit()
    return Changed(changed=changed)


@router.post("/prompts/{prompt_id}/requeue", response_model=Changed)
def requeue(project_id: Id, prompt_id: Id, session: SessionDep, admin: AdminUser) -> Changed:
    """Serve the prompt again for one more label than it has (409 when it is retired)."""
    project = project_service.get(session=session, project_id=project_id)
    changed = service.requeue(session=session, project=project, by=admin, prompt_id=prompt_id)
    session.commit()
    return Changed(changed=changed)


@router.post("/prompts/{prompt_id}/retire", response_model=Changed)
def retire(project_id: Id, prompt_id: Id, session: SessionDep, admin: AdminUser) -> Changed:
    """Stop serving the prompt; its labels stay (409 when it is retired already)."""
    project = project_service.get(session=session, project_id=project_id)
    changed = service.retire(session=session, project=project, by=admin, prompt_id=prompt_id)
    session.commit()
    return Changed(changed=changed)


@router.post("/prompts/{prompt_id}/restore", response_model=Changed)
def restore(project_id: Id, prompt_id: Id, session: SessionDep, admin: AdminUser) -> Changed:
    """Serve a retired prompt again, as it was (409 when it is not retired)."""
    project = project_service.get(session=session, project_id=project_id)
    changed = service.restore(session=session, project=project, by=admin, prompt_id=prompt_id)
    session.commit()
    return Changed(changed=changed)


@router.post("/assignments/{assignment_id}/release", response_model=Changed)
def release(project_id: Id, assignment_id: Id, session: SessionDep, admin: AdminUser) -> Changed:
    """End a labeler's open lease now."""
    project = project_service.get(session=session, project_id=project_id)
    service.release_lease(session=session, project=project, assignment_id=assignment_id, by=admin)
    session.commit()
    return Changed(changed=1)
