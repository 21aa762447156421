"""What the quality domain reads about each annotation besides its payload: the order the
responses were shown in, the time it took, when it was stored."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.labeling import sources
from app.labeling.models import Annotation, Assignment


@dataclass(frozen=True, slots=True)
class AnnotationFacts:
    """One labeler annotation's context (a person's, a source annotator's or a judge's)."""

    user_id: int
    shown: list[int]
    """Response ids in the order this labeler's assignment showed them."""
    duration_ms: int | None
    created_at: datetime
    ai: bool = False
    """A judge's label (`Annotation.source` is ai), not a person's."""


def annotation_facts(*, session: Session, project_id: int) -> dict[int, AnnotationFacts]:
    """Context of every labeler annotation of the project, by annotation id: a labeler's own,
    or a source annotator's that came with an import (imports without a labeler have none)."""
    rows: Any = session.execute(
        select(
            Annotation.id,
            Annotation.user_id,
            Assignment.response_ids,
            Annotation.duration_ms,
            Annotation.created_at,
            Annotation.source,
        )
        .outerjoin(Assignment, Assignment.id == Annotation.assignment_id)
        .where(
            Annotation.project_id == project_id,
            Annotation.user_id.is_not(None),
        )
    )
    return {
        row.id: AnnotationFacts(
            row.user_id,
            [int(r) for r in row.response_ids or []],
            row.duration_ms,
            row.created_at,
            sources.is_ai(row.source),
        )
        for row in rows
    }
