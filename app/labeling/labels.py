"""Labeling's service to the other domains: the live labels of a project, counts, imports.

Labeling owns the annotation and assignment tables; projects, aggregation, quality and datasets
read and write them only through these functions (the labeler's own path — next task, submit,
skip — is `service.py`). This module imports no other domain's service, so the projects domain
can use it without an import cycle.

"Live" is decided here, once: an annotation that a newer one supersedes is dropped, and so are
those of labelers the caller excludes (aggregation owns exclusions and passes their ids); the
rows themselves stay in the database.

`prompt_labels` streams prompts in id order, in batches (keyset pagination on the prompt id);
each batch loads the annotations and responses of its prompts only, so memory holds one batch
whatever the project's size.
"""

import uuid
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Text, cast, exists, func, select
from sqlalchemy.orm import Session, aliased

from app import jsontext
from app.labeling.models import Annotation, AnnotationSource, Assignment
from app.prefetch import ahead
from app.projects.models import Prompt, Response

BATCH = 2000


@dataclass(frozen=True, slots=True)
class Label:
    """One live annotation: who wrote it (None for an import) and what."""

    annotation_id: int
    user_id: int | None
    kind: str
    payload: dict[str, Any]
    created_at: Any = None
    """When it was stored (a datetime; SQLite returns it as text)."""


@dataclass(frozen=True, slots=True)
class PromptLabels:
    """A prompt with its responses and its live annotations (in annotation id order)."""

    prompt_id: int
    external_id: str
    messages: list[dict[str, Any]]
    responses: dict[int, tuple[str, str | None]]
    """response id -> (text, model), in import order."""
    labels: list[Label]

    def of_kind(self, kind: str) -> list[Label]:
        """The labels of one annotation kind."""
        return [label for label in self.labels if label.kind == kind]


def _live(rows: list[Any], excluded: Collection[int]) -> list[Label]:
    """Drop superseded annotations, then those of excluded labelers."""
    superseded = {row.supersedes_id for row in rows if row.supersedes_id is not None}
    return [
        Label(row.id, row.user_id, row.kind, jsontext.loads(row.payload), row.created_at)
        for row in rows
        if row.id not in superseded and row.user_id not in excluded
    ]


def prompt_labels(
    session: Session,
    project_id: int,
    kinds: Collection[str],
    excluded: Collection[int] = (),
    *,
    with_responses: bool = True,
    keep_unlabeled: bool = False,
    only: int | None = None,
    after: int = 0,
    batch: int = BATCH,
    gold: bool | None = False,
    read_ahead: bool = False,
) -> Iterator[PromptLabels]:
    """Each prompt of the project (id order) with its live labels of `kinds` (or just `only`).

    Gold items (known answers, for measuring labelers) are left out unless `gold` is True
    (only them) or None (every prompt). With `read_ahead` a thread reads the next batch
    while the caller works on this one: only for a caller that leaves `session` alone until
    the iteration ends (a snapshot's reader session)."""
    batches = _prompt_batches(session, project_id, kinds, with_responses, only, after, batch, gold)
    for prompts, by_prompt, responses in ahead(batches) if read_ahead else batches:
        for prompt in prompts:
            labels = _live(by_prompt[prompt.id], excluded)
            if labels or keep_unlabeled:
                yield PromptLabels(
                    prompt.id,
                    prompt.external_id,
                    jsontext.loads(prompt.messages),
                    responses[prompt.id],
                    labels,
                )


_Batch = tuple[Sequence[Any], dict[int, list[Any]], dict[int, dict[int, tuple[str, str | None]]]]
"""(the prompts, prompt id -> its annotation rows, prompt id -> response id -> (text, model))."""


def _prompt_batches(
    session: Session,
    project_id: int,
    kinds: Collection[str],
    with_responses: bool,
    only: int | None,
    after: int,
    batch: int,
    gold: bool | None,
) -> Iterator[_Batch]:
    """`prompt_labels`' reads, a batch of prompts at a time."""
    last_id = after
    while True:
        messages = cast(Prompt.messages, Text).label("messages")  # decoded below, faster
        query = select(Prompt.id, Prompt.external_id, messages).where(
            Prompt.project_id == project_id, Prompt.id > last_id
        )
        if only is not None:
            query = query.where(Prompt.id == only)
        if gold is not None:
            query = query.where(Prompt.is_gold.is_(gold))
        prompts = session.execute(query.order_by(Prompt.id).limit(batch)).all()
        if not prompts:
            return
        last_id = prompts[-1].id
        ids = [p.id for p in prompts]
        by_prompt: dict[int, list[Any]] = {pid: [] for pid in ids}
        if kinds:
            for row in session.execute(
                select(
                    Annotation.id,
                    Annotation.prompt_id,
                    Annotation.user_id,
                    Annotation.kind,
                    cast(Annotation.payload, Text).label("payload"),  # decoded once, below
                    Annotation.supersedes_id,
                    Annotation.created_at,
                )
                .where(
                    Annotation.project_id == project_id,
                    Annotation.prompt_id.between(ids[0], ids[-1]),
                    Annotation.kind.in_(list(kinds)),
                )
                .order_by(Annotation.prompt_id, Annotation.id)
            ):
                if row.prompt_id in by_prompt:  # not a gold item between two real prompts
                    by_prompt[row.prompt_id].append(row)
        responses: dict[int, dict[int, tuple[str, str | None]]] = {pid: {} for pid in ids}
        if with_responses:
            for response in session.execute(
                select(Response.id, Response.prompt_id, Response.text, Response.model)
                .where(Response.prompt_id.in_(ids))
                .order_by(Response.prompt_id, Response.position)
            ):
                responses[response.prompt_id][response.id] = (response.text, response.model)
        yield prompts, by_prompt, responses


def _live_of(project_id: int, kind: str) -> list[ColumnElement[bool]]:
    """The project's annotations of `kind` that nothing supersedes, gold items left out."""
    newer, gold = aliased(Annotation), aliased(Prompt)
    return [
        Annotation.project_id == project_id,
        Annotation.kind == kind,
        ~exists().where(newer.supersedes_id == Annotation.id),
        ~exists().where(gold.id == Annotation.prompt_id, gold.is_gold.is_(True)),
    ]


def live_annotations(
    *, session: Session, project_id: int, kind: str, batch: int = 1000
) -> Iterator[list[Annotation]]:
    """The project's annotations of `kind` that nothing supersedes, in id order, in batches;
    gold items (known answers, for measuring labelers) are left out."""
    last_id = 0
    while True:
        rows = list(
            session.scalars(
                select(Annotation)
                .where(*_live_of(project_id, kind), Annotation.id > last_id)
                .order_by(Annotation.id)
                .limit(batch)
            )
        )
        if not rows:
            return
        yield rows
        last_id = rows[-1].id


def live_annotation_rows(
    *, session: Session, project_id: int, kind: str, batch: int = 5000, with_times: bool = False
) -> Iterator[list[tuple[Any, ...]]]:
    """The annotations `live_annotations` gives, as plain tuples streamed from one query (a
    server-side cursor on PostgreSQL), in batches: (id, prompt_id, user_id, created_at,
    payload, flags), payload and flags as JSON text for the caller to decode; created_at is a
    datetime with `with_times`, else as the driver returns it."""
    query = (
        select(
            Annotation.id,
            Annotation.prompt_id,
            Annotation.user_id,
            Annotation.created_at,
            cast(Annotation.payload, Text),
            cast(Annotation.flags, Text),
        )
        .where(*_live_of(project_id, kind))
        .order_by(Annotation.id)
    )
    connection = session.connection()
    dialect = connection.dialect
    statement = str(query.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    times = Annotation.created_at.type.dialect_impl(dialect)
    stamp = times.result_processor(dialect, None) if with_times else None
    raw: Any = connection.connection.driver_connection
    # Plain DBAPI tuples: a SQLAlchemy Row per annotation costs more than the rest of a row.
    postgres = dialect.name == "postgresql"
    cursor = raw.cursor(name=f"live_{uuid.uuid4().hex}") if postgres else raw.cursor()
    try:
        cursor.execute(statement)
        while rows := cursor.fetchmany(batch):
            if stamp is not None:
                rows = [(r[0], r[1], r[2], stamp(r[3]), r[4], r[5]) for r in rows]
            yield rows
    finally:
        cursor.close()


def live_id_range(*, session: Session, project_id: int, kind: str) -> tuple[int, int]:
    """The smallest and largest id of the project's annotations of `kind` (0, 0 if none)."""
    query = select(func.min(Annotation.id), func.max(Annotation.id)).where(
        Annotation.project_id == project_id, Annotation.kind == kind
    )
    low, high = session.execute(query).one()
    return low or 0, high or 0


def has_labeler_annotations(*, session: Session, project_id: int) -> bool:
    """Whether any labeler (not an import) has annotated in the project."""
    query = select(Annotation.id).where(
        Annotation.project_id == project_id, Annotation.source == AnnotationSource.labeler
    )
    return session.scalar(query.limit(1)) is not None


def assignment_counts(*, session: Session, project_id: int) -> dict[str, int]:
    """The project's assignments per status (leased, done, skipped), gold items left out."""
    rows = session.execute(
        select(Assignment.status, func.count())
        .join(Prompt, Prompt.id == Assignment.prompt_id)
        .where(Assignment.project_id == project_id, Prompt.is_gold.is_(False))
        .group_by(Assignment.status)
    )
    return {status: n for status, n in rows.all()}


def labeler_count(*, session: Session, project_id: int) -> int:
    """How many labelers have ever held an assignment in the project."""
    query = select(func.count(func.distinct(Assignment.user_id)))
    return session.scalar(query.where(Assignment.project_id == project_id)) or 0


def add_imported(
    *, session: Session, project_id: int, prompt_id: int, kind: str, payload: dict[str, Any]
) -> Annotation:
    """Store a label that came with an import (no labeler), e.g. HH-RLHF's preference."""
    annotation = Annotation(
        project_id=project_id,
        prompt_id=prompt_id,
        kind=kind,
        payload=payload,
        source=AnnotationSource.imported,
    )
    session.add(annotation)
    return annotation
