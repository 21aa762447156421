"""Streaming export of a project's labels in the dataset formats (one row per annotation).

Rows come in batches by annotation id (keyset pagination), so memory stays bounded whatever
the project's size. Superseded annotations and gold items (known answers used to measure
labelers) are left out.
"""

import json
from collections.abc import Iterator
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.datasets.kinds import (
    DatasetKind,
    pair_rows,
    prompt_row,
    ranking_row,
    rating_row,
    sft_row,
)
from app.errors import Invalid
from app.labeling import labels
from app.labeling.models import Annotation
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


def _ranked_rows(session: Session, project: Project, pairs: bool) -> Iterator[dict[str, Any]]:
    for batch in _live(session, project, "ranking"):
        prompts, texts = _context(session, batch)
        for a in batch:
            ranked = [texts[int(rid)] for rid in a.payload["ranking"]]
            if pairs:
                yield from pair_rows(prompts[a.prompt_id], ranked)
            else:
                yield ranking_row(prompts[a.prompt_id], ranked)
        session.expunge_all()


def _sft_rows(session: Session, project: Project) -> Iterator[dict[str, Any]]:
    for batch in _live(session, project, "demonstration"):
        prompts, _ = _context(session, batch)
        for a in batch:
            yield sft_row(prompts[a.prompt_id], a.payload["demonstration"])
        session.expunge_all()


def _rating_rows(session: Session, project: Project) -> Iterator[dict[str, Any]]:
    for batch in _live(session, project, "rating"):
        prompts, texts = _context(session, batch)
        for a in batch:
            for rid, score in a.payload["scores"].items():
                yield rating_row(prompts[a.prompt_id], texts[int(rid)], score)
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


def rows(*, session: Session, project: Project, kind: str) -> Iterator[dict[str, Any]]:
    """The export rows of `kind` (rankings | pairs | sft | ratings | prompts)."""
    if kind == DatasetKind.rankings:
        return _ranked_rows(session, project, pairs=False)
    if kind == DatasetKind.pairs:
        return _ranked_rows(session, project, pairs=True)
    if kind == DatasetKind.sft:
        return _sft_rows(session, project)
    if kind == DatasetKind.ratings:
        return _rating_rows(session, project)
    if kind == DatasetKind.prompts:
        return _prompt_rows(session, project)
    names = ", ".join(DatasetKind)
    raise Invalid(f"kind must be one of {names}; not {kind!r}", field="kind")


def jsonl(*, session: Session, project: Project, kind: str) -> Iterator[str]:
    """The export as JSON lines."""
    for row in rows(session=session, project=project, kind=kind):
        yield json.dumps(row, ensure_ascii=False) + "\n"
