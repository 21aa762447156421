"""HTML routes of labeler quality: per-project table, labeler drill-down, exclude / reinstate,
gold and hold settings, α over time."""

import math
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse
from pydantic import ValidationError

from app.aggregation import service as aggregation
from app.auth import service as auth_service
from app.db import SessionDep
from app.deps import AdminUser
from app.errors import Invalid, validation_messages
from app.http.bounds import Id, Keyword, Reason, form_bool
from app.projects import service as project_service
from app.projects.schemas import ProjectUpdate
from app.quality import detail, service
from app.quality.schemas import AlphaPoint
from app.templating import render

router = APIRouter(tags=["pages"])
SORTS = (
    "email",
    "labels",
    "gold_seen",
    "gold_accuracy",
    "agreement",
    "reliability",
    "suggestion_agreement",
    "median_seconds",
    "flags",
)
HEIGHT, TOP, BASE = 180, 24, 150
"""The α chart's height and its plot's top and bottom (px); it is as wide as its card."""


def _alpha_ticks(low: float) -> list[float]:
    """Tick values of the α axis from `low` (≤ 0) up to 1: quarters, or halves below −0.25."""
    step = 0.25 if low >= -0.25 else 0.5
    start = math.floor(low / step) * step
    return [round(start + i * step, 2) for i in range(round((1 - start) / step) + 1)]


def alpha_chart(points: list[AlphaPoint]) -> dict[str, Any]:
    """An inline SVG of α per day: x as a percentage of the width (the chart takes its card's
    width while its text keeps its pixel size), y in pixels on an axis from min(0, α) to 1."""
    known = [p.alpha for p in points if p.alpha is not None]
    ticks = _alpha_ticks(min([0.0, *known]))
    low = ticks[0]

    def y(value: float) -> float:
        return round(BASE - (value - low) / (1.0 - low) * (BASE - TOP), 1)

    step = 100 / max(len(points), 1)
    dots = [
        {"x": round(i * step + step / 2, 2), "y": y(p.alpha), "point": p}
        for i, p in enumerate(points)
        if p.alpha is not None
    ]
    return {
        "dots": dots,
        "segments": list(zip(dots, dots[1:], strict=False)),
        "ticks": [{"value": t, "y": y(t), "label": f"{t:g}"} for t in ticks],
        "days": [
            {"x": round(i * step + step / 2, 2), "label": p.day.strftime("%b %d")}
            for i, p in enumerate(points)
            if (len(points) - 1 - i) % 3 == 0  # every third day back from the last: they fit
        ],
        "height": HEIGHT,
        "base": BASE,
        "top": TOP,
        "enough": len(dots) >= 2,
    }


def _sort_key(column: str):
    def key(row: Any) -> tuple:
        value = len(row.flags) if column == "flags" else getattr(row, column)
        return (value is None, value if value is not None else 0)

    return key


@router.get("/admin/quality")
def overview(request: Request, session: SessionDep, _: AdminUser):
    """Every active project with its α and how many labelers carry a flag."""
    rows: list[tuple[Any, Any]] = []
    for project in project_service.list_projects(session=session):
        if project.kind == "demonstration":
            rows.append((project, None))
            continue
        rows.append((project, service.project_quality(session=session, project=project, rounds=0)))
    return render(request, "quality/overview.html", rows=rows)


@router.get("/admin/projects/{project_id}/quality")
def quality_page(
    request: Request,
    project_id: Id,
    session: SessionDep,
    _: AdminUser,
    sort: Annotated[Keyword, Query()] = "reliability",
    desc: bool = False,
    error: Reason | None = None,
):
    if sort not in SORTS:
        raise Invalid(f"sort must be one of {', '.join(SORTS)}; not {sort!r}", field="sort")
    project = project_service.get(session=session, project_id=project_id)
    report = service.project_quality(session=session, project=project)
    rows = sorted(report.labelers, key=_sort_key(sort), reverse=desc)
    return render(
        request,
        "quality/project.html",
        project=project,
        report=report,
        rows=rows,
        sort=sort,
        desc=desc,
        chart=alpha_chart(service.alpha_over_time(session=session, project=project)),
        exclusions=aggregation.list_exclusions(session=session, project_id=project_id),
        users={u.id: u for u in auth_service.list_users(session=session)},
        error=error,
    )


@router.get("/admin/projects/{project_id}/quality/labelers/{user_id}")
def labeler_page(request: Request, project_id: Id, user_id: Id, session: SessionDep, _: AdminUser):
    project = project_service.get(session=session, project_id=project_id)
    found = detail.labeler_detail(session=session, project=project, user_id=user_id)
    texts = {
        rid: text for item in found.labels for rid, text in _texts(session, item.prompt_id).items()
    }
    return render(request, "quality/labeler.html", project=project, detail=found, texts=texts)


def _texts(session: SessionDep, prompt_id: int) -> dict[int, str]:
    _, responses = project_service.prompt_with_responses(session=session, prompt_id=prompt_id)
    return {r.id: r.text for r in responses}


@router.post("/admin/projects/{project_id}/quality/labelers/{user_id}/reinstate")
def reinstate(project_id: Id, user_id: Id, session: SessionDep, admin: AdminUser):
    """Count the labeler in again: exclusion from this project removed, hold released."""
    project = project_service.get(session=session, project_id=project_id)
    service.reinstate(session=session, project=project, user_id=user_id, by=admin)
    session.commit()
    return RedirectResponse(f"/admin/projects/{project_id}/quality", status_code=303)


@router.post("/admin/projects/{project_id}/quality/settings")
def settings(
    project_id: Id,
    session: SessionDep,
    _: AdminUser,
    gold_rate: Annotated[str, Form()] = "0.1",
    hold_after_gold: Annotated[str, Form()] = "5",
    auto_hold: Annotated[str, Form()] = "",
):
    """Gold rate and auto-hold of the project."""
    project = project_service.get(session=session, project_id=project_id)
    try:
        data = ProjectUpdate.model_validate(
            {
                "gold_rate": gold_rate,
                "hold_after_gold": hold_after_gold,
                "auto_hold": form_bool(auto_hold),
            }
        )
    except ValidationError as exc:
        message = "; ".join(validation_messages(exc))
        return RedirectResponse(
            f"/admin/projects/{project_id}/quality?{urlencode({'error': message})}",
            status_code=303,
        )
    project_service.update(session=session, project=project, data=data)
    session.commit()
    return RedirectResponse(f"/admin/projects/{project_id}/quality", status_code=303)
