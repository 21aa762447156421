"""What the import tests read back: labels with their labelers and response texts."""

from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth.models import User
from app.labeling.models import Annotation, Assignment
from app.projects.models import Prompt, Response

FIXTURES = Path(__file__).parent / "fixtures"


def _texts(value: Any, texts: dict[int, str]) -> Any:
    if isinstance(value, list):
        return [_texts(v, texts) for v in value]
    return texts[int(value)]


def labels(session: Session, project_id: int) -> list[dict[str, Any]]:
    """The project's annotations (id order): prompt external id, labeler, payload with response
    texts in place of ids, time spent, whether a newer one supersedes it."""
    texts = dict(session.execute(select(Response.id, Response.text)).all())
    prompts = dict(session.execute(select(Prompt.id, Prompt.external_id)).all())
    emails = dict(session.execute(select(User.id, User.email)).all())
    rows = session.scalars(
        select(Annotation).where(Annotation.project_id == project_id).order_by(Annotation.id)
    ).all()
    superseded = {a.supersedes_id for a in rows if a.supersedes_id is not None}
    out = []
    for a in rows:
        payload = dict(a.payload)
        if "ranking" in payload:
            payload["ranking"] = _texts(payload["ranking"], texts)
        if "scores" in payload:
            payload["scores"] = {texts[int(k)]: v for k, v in payload["scores"].items()}
        out.append(
            {
                "prompt": prompts[a.prompt_id],
                "labeler": emails.get(a.user_id) if a.user_id else None,
                "payload": payload,
                "duration_ms": a.duration_ms,
                "live": a.id not in superseded,
                "source": a.source,
            }
        )
    return out


def assignments(session: Session, project_id: int) -> list[tuple[str, str, str]]:
    """(prompt external id, labeler, status) of each assignment of the project, sorted."""
    rows = session.execute(
        select(Prompt.external_id, User.email, Assignment.status)
        .join(Prompt, Prompt.id == Assignment.prompt_id)
        .join(User, User.id == Assignment.user_id)
        .where(Assignment.project_id == project_id)
    ).all()
    return sorted(tuple(r) for r in rows)
