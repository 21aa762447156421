"""Streaming export of a project's labels in the dataset formats (one row per annotation).

Rows come in batches by annotation id (keyset pagination), so memory stays bounded whatever
the project's size. Superseded annotations and gold items (known answers used to measure
labelers) are left out. In a project with questions or criteria every row carries the
annotation's `answers` (shaped by `kinds.row_answers`).
"""

import json
from collections.abc import Iterator
from itertools import combinations
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth.models import User
from app.datasets.kinds import (
    DatasetKind,
    pair_rows,
    prompt_row,
    ranking_row,
    rating_row,
    row_answers,
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


Emails = dict[int, str] | None


def _labeled(row: dict[str, Any], annotation: Annotation, emails: Emails) -> dict[str, Any]:
    """The row, plus its labeler's email ("import" for an imported label) and the time."""
    if emails is None:
        return row
    labeler = emails.get(annotation.user_id, "import") if annotation.user_id else "import"
    return row | {"labeler": labeler, "annotated_at": annotation.created_at.isoformat()}


def _answers(project: Project, annotation: Annotation) -> dict[str, Any] | None:
    """The annotation's answers to the project's questions, its flags under "flags"; None when
    the project asks no questions and has no criteria (its rows carry no `answers`)."""
    if not (project.questions or project.criteria):
        return None
    answers = dict(annotation.payload.get("answers", {}))
    if project.criteria:
        answers["flags"] = annotation.flags or {}
    return answers


def _with_answers(
    row: dict[str, Any], answers: dict[str, Any] | None, ids: list[str] | str | None
) -> dict[str, Any]:
    return row if answers is None else row | {"answers": row_answers(answers, ids)}


def _ranked_rows(
    session: Session, project: Project, pairs: bool, emails: Emails
) -> Iterator[dict[str, Any]]:
    for batch in _live(session, project, "ranking"):
        prompts, texts = _context(session, batch)
        for a in batch:
            ids = [str(rid) for rid in a.payload["ranking"]]
            ranked = [texts[int(rid)] for rid in ids]
            answers = _answers(project, a)
            if pairs:
                # pair_rows yields the pairs of `ranked` in combinations() order.
                for row, pair in zip(
                    pair_rows(prompts[a.prompt_id], ranked), combinations(ids, 2), strict=True
                ):
                    yield _labeled(_with_answers(row, answers, list(pair)), a, emails)
            else:
                row = ranking_row(prompts[a.prompt_id], ranked)
                yield _labeled(_with_answers(row, answers, ids), a, emails)
        session.expunge_all()


def _sft_rows(session: Session, project: Project, emails: Emails) -> Iterator[dict[str, Any]]:
    for batch in _live(session, project, "demonstration"):
        prompts, _ = _context(session, batch)
        for a in batch:
            row = sft_row(prompts[a.prompt_id], a.payload["demonstration"])
            yield _labeled(_with_answers(row, _answers(project, a), None), a, emails)
        session.expunge_all()


def _rating_rows(session: Session, project: Project, emails: Emails) -> Iterator[dict[str, Any]]:
    for batch in _live(session, project, "rating"):
        prompts, texts = _context(session, batch)
        for a in batch:
            answers = _answers(project, a)
            for rid, score in a.payload["scores"].items():
                row = rating_row(prompts[a.prompt_id], texts[int(rid)], score)
                yield _labeled(_with_answers(row, answers, rid), a, emails)
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
    """The export rows of `kind` (rankings | pairs | sft | ratings | prompts); with_labelers
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
    names = ", ".join(DatasetKind)
    raise Invalid(f"kind must be one of {names}; not {kind!r}", field="kind")


def jsonl(
    *, session: Session, project: Project, kind: str, with_labelers: bool = False
) -> Iterator[str]:
    """The export as JSON lines."""
    for row in rows(session=session, project=project, kind=kind, with_labelers=with_labelers):
        yield json.dumps(row, ensure_ascii=False) + "\n"
