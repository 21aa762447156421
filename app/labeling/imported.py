"""Labels that come with an import, stored as labeling stores labels: a source annotator's
assignment (done, or skipped when every label is a skip) and an annotation per label, marked
imported. The importer (`projects.importer`) checks them first, as a submit is checked."""

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from app import jsontext
from app.base import utcnow
from app.labeling.models import Annotation, AnnotationSource, Assignment, AssignmentStatus

if TYPE_CHECKING:
    from app.projects.bulk import BulkWriter
    from app.projects.formats import SourceLabel


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


def with_response_ids(payload: dict[str, Any], ids: Sequence[int]) -> dict[str, Any]:
    """An imported label's payload with response positions (0, 1, …) replaced by the ids of
    the responses at those positions (`ids`, in import order)."""

    def by_id(values: dict[str, Any]) -> dict[str, Any]:
        return {str(ids[int(position)]): value for position, value in values.items()}

    out = dict(payload)
    if "ranking" in out:
        out["ranking"] = [
            [ids[p] for p in entry] if isinstance(entry, list) else ids[entry]
            for entry in out["ranking"]
        ]
    if "scores" in out:
        out["scores"] = by_id(out["scores"])
    if "answers" in out:
        out["answers"] = {
            name: by_id(answer) if isinstance(answer, dict) else answer
            for name, answer in out["answers"].items()
        }
    return out


ASSIGNMENT_COLUMNS = (
    "id",
    "project_id",
    "prompt_id",
    "user_id",
    "status",
    "response_ids",
    "expires_at",
    "created_at",
    "completed_at",
    "skip_reason",
)
ANNOTATION_COLUMNS = (
    "id",
    "project_id",
    "prompt_id",
    "assignment_id",
    "user_id",
    "kind",
    "payload",
    "source",
    "idempotency_key",
    "duration_ms",
    "supersedes_id",
    "created_at",
)


def store_imported(
    *,
    writer: "BulkWriter",
    kind: str,
    labeled: list[tuple[int, list[int], int, list["SourceLabel"]]],
) -> tuple[int, int]:
    """Store the labels that came with an import, in bulk (the writer's transaction): for each
    (prompt id, its response ids, a source annotator's user id, that annotator's labels of the
    prompt in order) one assignment, done (or skipped when every label is a skip), showing the
    responses in import order, and an annotation per label, each later one superseding the one
    before. Returns (annotations, skipped assignments)."""
    project_id = writer.project_id
    assignment_ids = writer.ids("assignments", len(labeled))
    annotation_ids = iter(
        writer.ids("annotations", sum(1 for *_, ls in labeled for x in ls if x.payload is not None))
    )
    assignments: list[tuple[Any, ...]] = []
    annotations: list[tuple[Any, ...]] = []
    skipped = 0
    now = utcnow()
    for assignment_id, (prompt_id, ids, user_id, labels) in zip(
        assignment_ids, labeled, strict=True
    ):
        first = next((x.created_at for x in labels if x.created_at is not None), None) or now
        last = max((x.created_at for x in labels if x.created_at is not None), default=now)
        given = [x for x in labels if x.payload is not None]
        status = AssignmentStatus.done if given else AssignmentStatus.skipped
        reason = None if given else labels[-1].skip_reason or "skipped"
        skipped += not given
        assignments.append(
            (
                assignment_id,
                project_id,
                prompt_id,
                user_id,
                status,
                jsontext.dumps(ids),
                last,
                first,
                last,
                reason,
            )
        )
        previous: int | None = None
        for label in given:
            annotation_id = next(annotation_ids)
            assert label.payload is not None
            annotations.append(
                (
                    annotation_id,
                    project_id,
                    prompt_id,
                    assignment_id,
                    user_id,
                    kind,
                    jsontext.dumps(with_response_ids(label.payload, ids)),
                    AnnotationSource.imported,
                    f"{project_id}:{label.key}"[:200],
                    label.duration_ms,
                    previous,
                    label.created_at or now,
                )
            )
            previous = annotation_id
    writer.insert(Assignment.__table__, ASSIGNMENT_COLUMNS, assignments)  # type: ignore[arg-type]
    writer.insert(Annotation.__table__, ANNOTATION_COLUMNS, annotations)  # type: ignore[arg-type]
    return len(annotations), skipped
