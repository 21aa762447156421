"""Streaming export of a project's labels in the dataset formats (one row per annotation).

Rows come in batches by annotation id (keyset pagination), so memory stays bounded whatever
the project's size. Superseded annotations and gold items (known answers used to measure
labelers) are left out.
"""

import json
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth.models import User
from app.datasets import rows as rows_of
from app.datasets.kinds import (
    DatasetKind,
    kto_row,
    pair_rows,
    prompt_row,
    ranking_row,
    rating_row,
    sft_row,
)
from app.datasets.schemas import SnapshotCreate
from app.errors import Invalid
from app.labeling import labels, ranks
from app.labeling.models import Annotation
from app.projects import strength
from app.projects.kinds import ProjectKind
from app.projects.models import Project, Prompt, Response

BATCH = 1000


def _live(session: Session, project: Project, kind: str) -> Iterator[list[Annotation]]:
    return labels.live_annotations(session=session, project_id=project.id, kind=kind, batch=BATCH)


def _context(session: Session, batch: list[Annotation]) -> tuple[dict[int, Any], dict[int, str]]:
    prompt_ids = {a.prompt_id for a in batch}
    prompts: dict[int, Any] = dict(
        session.execute(select(Prompt.id, Prompt.messages).where(Prompt.id.in_(prompt_ids))).all()
    )
    texts = dict(
        session.execute(
            select(Response.id, Response.text).where(Response.prompt_id.in_(prompt_ids))
        ).all()
    )
    return prompts, texts


Emails = dict[int, str] | None


def _labeled(row: dict[str, Any], annotation: Annotation, emails: Emails) -> dict[str, Any]:
    """The row, plus its labeler's email ("import" for an imported label) and the time."""
    if emails is None:
        return row
    labeler = emails.get(annotation.user_id, "import") if annotation.user_id else "import"
    return row | {"labeler": labeler, "annotated_at": annotation.created_at.isoformat()}


def _ranked_rows(
    session: Session, project: Project, pairs: bool, emails: Emails
) -> Iterator[dict[str, Any]]:
    for batch in _live(session, project, "ranking"):
        prompts, texts = _context(session, batch)
        for a in batch:
            ranked = [texts[rid] for rid in ranks.order(a.payload["ranking"])]
            places = ranks.ranks(a.payload["ranking"])
            if pairs:
                margin = strength.margin(project.strength_scale, a.payload.get("strength"))
                for row in pair_rows(prompts[a.prompt_id], ranked, places, margin):
                    yield _labeled(row, a, emails)
            elif len(set(places)) >= 2:
                yield _labeled(ranking_row(prompts[a.prompt_id], ranked, places), a, emails)
        session.expunge_all()


def _sft_rows(session: Session, project: Project, emails: Emails) -> Iterator[dict[str, Any]]:
    for batch in _live(session, project, "demonstration"):
        prompts, _ = _context(session, batch)
        for a in batch:
            yield _labeled(sft_row(prompts[a.prompt_id], a.payload["demonstration"]), a, emails)
        session.expunge_all()


def _rating_rows(session: Session, project: Project, emails: Emails) -> Iterator[dict[str, Any]]:
    for batch in _live(session, project, "rating"):
        prompts, texts = _context(session, batch)
        for a in batch:
            for rid, score in a.payload["scores"].items():
                row = rating_row(prompts[a.prompt_id], texts[int(rid)], score)
                yield _labeled(row, a, emails)
        session.expunge_all()


def _kto_rows(session: Session, project: Project, emails: Emails) -> Iterator[dict[str, Any]]:
    """KTO rows per annotation: a ranking's top and bottom, or each rating by the default
    thresholds of the kto snapshot (👍 true, 👎 false; 0–5: ≥ 4 true, ≤ 2 false)."""
    kind = "ranking" if project.kind == ProjectKind.ranking else "rating"
    thresholds = SnapshotCreate(kind=DatasetKind.kto).canonical()
    for batch in _live(session, project, kind):
        prompts, texts = _context(session, batch)
        for a in batch:
            messages = prompts[a.prompt_id]
            judged: Sequence[tuple[int, bool | None]]
            if kind == "ranking":
                groups = ranks.groups(a.payload["ranking"])
                if len(groups) < 2:
                    continue
                judged = [(rid, True) for rid in groups[0]] + [(rid, False) for rid in groups[-1]]
            else:
                judged = [
                    (int(rid), rows_of.desirable(v, project.rating_scale, thresholds))
                    for rid, v in a.payload["scores"].items()
                ]
            for rid, label in judged:
                if label is not None:
                    yield _labeled(kto_row(messages, texts[rid], label), a, emails)
        session.expunge_all()


def _prompt_rows(session: Session, project: Project) -> Iterator[dict[str, Any]]:
    last_id = 0
    while True:
        rows = session.execute(
            select(Prompt.id, Prompt.messages)
            .where(Prompt.project_id == project.id, Prompt.id > last_id, Prompt.is_gold.is_(False))
            .order_by(Prompt.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        for row in rows:
            yield prompt_row(row.messages)
        last_id = rows[-1].id


def rows(
    *, session: Session, project: Project, kind: str, with_labelers: bool = False
) -> Iterator[dict[str, Any]]:
    """The export rows of `kind` (rankings | pairs | sft | ratings | prompts | kto); with_labelers
    adds each row's `labeler` (email) and `annotated_at` (prompts rows have no labeler)."""
    emails = dict(session.execute(select(User.id, User.email)).all()) if with_labelers else None
    if kind == DatasetKind.rankings:
        return _ranked_rows(session, project, False, emails)
    if kind == DatasetKind.pairs:
        return _ranked_rows(session, project, True, emails)
    if kind == DatasetKind.sft:
        return _sft_rows(session, project, emails)
    if kind == DatasetKind.ratings:
        return _rating_rows(session, project, emails)
    if kind == DatasetKind.prompts:
        return _prompt_rows(session, project)
    if kind == DatasetKind.kto and project.kind != ProjectKind.demonstration:
        return _kto_rows(session, project, emails)
    names = ", ".join(DatasetKind)
    raise Invalid(f"kind must be one of {names}; not {kind!r}", field="kind")


def jsonl(
    *, session: Session, project: Project, kind: str, with_labelers: bool = False
) -> Iterator[str]:
    """The export as JSON lines."""
    for row in rows(session=session, project=project, kind=kind, with_labelers=with_labelers):
        yield json.dumps(row, ensure_ascii=False) + "\n"
