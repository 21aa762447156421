"""Streaming read of a project's labels, grouped per prompt, for every aggregate.

Prompts come in id order, in batches (keyset pagination on the prompt id); each batch loads the
annotations and responses of its prompts only, so memory holds one batch whatever the project's
size. Superseded annotations and those of excluded labelers are dropped here, once, for all
aggregates; the rows themselves stay in the database.
"""

import json
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Text, cast, select
from sqlalchemy.orm import Session

from app.labeling.models import Annotation
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
        Label(row.id, row.user_id, row.kind, json.loads(row.payload), row.created_at)
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
) -> Iterator[PromptLabels]:
    """Each prompt of the project (id order) with its live labels of `kinds` (or just `only`).

    Gold items (known answers, for measuring labelers) are left out unless `gold` is True
    (only them) or None (every prompt)."""
    last_id = after
    while True:
        query = select(Prompt.id, Prompt.external_id, Prompt.messages).where(
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
            for row in session.execute(
                select(Response.id, Response.prompt_id, Response.text, Response.model)
                .where(Response.prompt_id.in_(ids))
                .order_by(Response.prompt_id, Response.position)
            ):
                responses[row.prompt_id][row.id] = (row.text, row.model)
        for prompt in prompts:
            labels = _live(by_prompt[prompt.id], excluded)
            if labels or keep_unlabeled:
                yield PromptLabels(
                    prompt.id, prompt.external_id, prompt.messages, responses[prompt.id], labels
                )
