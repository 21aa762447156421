"""HTML routes of aggregation: the model leaderboard with its interval chart."""

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse
from pydantic import ValidationError

from app.aggregation import service
from app.aggregation.schemas import ExclusionIn, Leaderboard
from app.db import SessionDep
from app.deps import AdminUser
from app.errors import DomainError, validation_messages
from app.http.bounds import Id, Seed
from app.labeling import exclusions
from app.projects import service as project_service
from app.templating import render

router = APIRouter(tags=["pages"])
CHART_WIDTH, ROW_HEIGHT, LABEL_WIDTH = 640, 28, 180


def interval_chart(board: Leaderboard) -> dict[str, Any]:
    """Coordinates of an inline SVG: one row per model, its interval as a bar, rating a dot."""
    if not board.rows:
        return {"rows": [], "width": CHART_WIDTH, "height": 0, "ticks": []}
    low = min(r.lower for r in board.rows)
    high = max(r.upper for r in board.rows)
    pad = max((high - low) * 0.05, 5.0)
    low, high = low - pad, high + pad
    span = CHART_WIDTH - LABEL_WIDTH - 20

    def x(value: float) -> float:
        return round(LABEL_WIDTH + (value - low) / (high - low) * span, 1)

    step = max(10, round((high - low) / 5, -1))
    first = int(low // step + 1) * step
    ticks = [{"x": x(t), "label": f"{t:.0f}"} for t in range(int(first), int(high), int(step))]
    rows = [
        {
            "model": r.model,
            "y": 20 + i * ROW_HEIGHT,
            "x1": x(r.lower),
            "x2": x(r.upper),
            "cx": x(r.rating),
            "rank": r.rank,
            "rating": r.rating,
            "lower": r.lower,
            "upper": r.upper,
        }
        for i, r in enumerate(board.rows)
    ]
    height = 30 + len(rows) * ROW_HEIGHT
    return {"rows": rows, "width": CHART_WIDTH, "height": height, "ticks": ticks}


def above(board: Leaderboard) -> dict[str, list[str]]:
    """Per model, the models whose interval lies entirely above its own (what sets its rank)."""
    return {r.model: [o.model for o in board.rows if o.lower > r.upper] for r in board.rows}


@router.get("/admin/projects/{project_id}/leaderboard")
def leaderboard_page(
    request: Request,
    project_id: Id,
    session: SessionDep,
    _: AdminUser,
    rounds: Annotated[int, Query(ge=1, le=100_000)] = 1000,
    seed: Seed = 0,
):
    project = project_service.get(session=session, project_id=project_id)
    board = service.model_leaderboard(session=session, project=project, rounds=rounds, seed=seed)
    excluded = service.list_exclusions(session=session, project_id=project_id)
    return render(
        request,
        "aggregation/leaderboard.html",
        project=project,
        board=board,
        chart=interval_chart(board),
        above=above(board),
        excluded=len(excluded),
    )


@router.post("/admin/projects/{project_id}/exclusions")
def exclude(
    project_id: Id,
    session: SessionDep,
    admin: AdminUser,
    request: Request,
    user_id: Annotated[str, Form()] = "",
    scope: Annotated[str, Form()] = "project",
    reason: Annotated[str, Form()] = "",
    confirmed: Annotated[str, Form()] = "",
):
    """Take a labeler out of this project (or of every project), once the admin has seen
    what that does on a confirmation page."""
    project = project_service.get(session=session, project_id=project_id)
    back = f"/admin/projects/{project_id}/quality"
    try:
        body = ExclusionIn.model_validate(
            {"user_id": user_id, "reason": reason.strip(), "all_projects": scope == "all"}
        )
        if confirmed != "1":
            effect = exclusions.preview(
                session=session,
                user_id=body.user_id,
                project_id=None if body.all_projects else project_id,
            )
            return render(
                request,
                "aggregation/exclude_confirm.html",
                project=project,
                body=body,
                scope=scope,
                effect=effect,
            )
        service.exclude_labeler(
            session=session,
            user_id=body.user_id,
            project_id=None if body.all_projects else project_id,
            reason=body.reason,
            created_by=admin,
        )
    except (ValidationError, DomainError) as exc:
        session.rollback()
        message = (
            "; ".join(validation_messages(exc)) if isinstance(exc, ValidationError) else exc.message
        )
        return RedirectResponse(f"{back}?{urlencode({'error': message})}", status_code=303)
    session.commit()
    return RedirectResponse(back, status_code=303)


@router.post("/admin/projects/{project_id}/exclusions/{exclusion_id}/remove")
def include_again(project_id: Id, exclusion_id: Id, session: SessionDep, _: AdminUser):
    """Reinstate a labeler: their labels count again and they get tasks again."""
    service.remove_exclusion(session=session, exclusion_id=exclusion_id)
    session.commit()
    return RedirectResponse(f"/admin/projects/{project_id}/quality", status_code=303)
