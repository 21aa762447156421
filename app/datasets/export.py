"""Streaming export of a project's labels in the dataset formats (one row per annotation).

An export is a snapshot of method "all" that is not frozen: the rows of `rows.builder` for
`export_params(kind)`, every labeler's (excluded ones too), superseded annotations and gold
items (known answers used to measure labelers) left out. Prompts stream in id order, a batch
at a time with their live annotations (id order) and texts (`rows.made_rows`, the next batch
read by a thread while this one is built), so memory stays bounded whatever the project's
size and each prompt's texts are read once, however the labels were stored. Lines are the
standard encoder's bytes: `app.jsontext.row_line` of each row, or for rankings without
labelers or answers the lines of the builder's templates (`templates.encoded_rankings`), as a
snapshot of every ranking writes them. Every row made of labels carries its `source` (human
or ai: one label each). In a project with questions or criteria every row
carries its annotation's `answers` (its flags under "flags"), shaped by `kinds.row_answers`;
with labelers, its `labeler` and `annotated_at`.
"""

from collections.abc import Iterator
from typing import Any

from sqlalchemy.orm import Session

from app import jsontext
from app.datasets import rows as rows_of
from app.datasets import templates
from app.datasets.kinds import DatasetKind, Row, row_answers
from app.datasets.schemas import EVERY, SnapshotCreate
from app.datasets.writer import lines_of
from app.errors import Invalid
from app.labeling import labels
from app.labeling.sources import Sources
from app.progress import Progress
from app.projects.models import Project

BATCH = 1000
"""Prompts read at a time."""
BLOCK = 5000
"""Rows (at least) per block of the export."""


def export_params(kind: str) -> dict[str, Any]:
    """The snapshot parameters of an export of `kind`: method "all" (a row per annotation;
    for ratings each score as given), every label's source (human and AI, each row saying
    which), kto's default thresholds. Invalid for an unknown kind."""
    if kind not in DatasetKind.__members__.values():
        names = ", ".join(DatasetKind)
        raise Invalid(f"kind must be one of {names}; not {kind!r}", field="kind")
    made = SnapshotCreate(kind=DatasetKind(kind), method=EVERY, sources=Sources.all)
    return made.canonical() | {"method": EVERY}


def _exported(made: rows_of.Made, answers: bool, flags: bool, emails: dict[int, str] | None) -> Row:
    """The row with its annotation's answers (its flags under "flags") and its labeler."""
    row = made.row
    if not made.labels:  # a prompts row: no annotation
        return row
    (label,) = made.labels
    if answers:
        asked = label.payload.get("answers") or {}
        if flags:
            asked = asked | {"flags": label.flags or {}}
        row = row | {"answers": row_answers(asked, made.about)}
    if emails is not None:
        row = row | {
            "labeler": rows_of.labeler_of(label, emails),
            "annotated_at": rows_of.stamp(label),
        }
    return row


def row_batches(
    *,
    session: Session,
    project: Project,
    kind: str,
    with_labelers: bool = False,
    progress: Progress | None = None,
) -> Iterator[list[Row]]:
    """The export rows of `kind` (rankings | pairs | sft | ratings | prompts | kto) in batches;
    with_labelers adds each row's `labeler` (email) and `annotated_at` (prompts rows have no
    labeler)."""
    build = rows_of.builder(
        session=session, project=project, params=export_params(kind), what="export"
    )
    emails = rows_of.labeler_emails(session=session) if with_labelers else None
    return _row_batches(session, project, build, emails, progress)


def _row_batches(
    session: Session,
    project: Project,
    build: rows_of.Builder,
    emails: dict[int, str] | None,
    progress: Progress | None,
) -> Iterator[list[Row]]:
    """`row_batches`' rows, a list of at least BLOCK rows at a time."""
    answers, flags = bool(project.questions or project.criteria), bool(project.criteria)
    plain = not answers and emails is None
    out: list[Row] = []
    for _, made in rows_of.made_rows(
        session=session,
        project=project,
        build=build,
        batch=BATCH,
        times=emails is not None,
        flags=flags,
        progress=progress,
        made=[0],
    ):
        if plain:
            out.extend(m.row for m in made)
        else:
            out.extend(_exported(m, answers, flags, emails) for m in made)
        if len(out) >= BLOCK:
            yield out
            out = []
    if out:
        yield out


def _ranking_lines(
    session: Session, project: Project, progress: Progress | None
) -> Iterator[tuple[bytes, int]]:
    """The rankings export's lines (no labelers, no answers) by the builder's templates.
    Yields (a block of at least BLOCK lines, how many)."""
    build = rows_of.builder(
        session=session, project=project, params=export_params(DatasetKind.rankings)
    )
    made = [0]
    found = labels.live_payloads(
        session, project.id, "ranking", batch=BATCH, read_ahead=True, sources=build.sources
    )
    if progress is not None:
        found = rows_of.reporting(found, lambda item: item[0].id, session, project, progress, made)
    block: list[bytes] = []
    count = 0
    for _, prompt_rows in templates.encoded_rankings(found, build, columns=False):
        data, n = lines_of(prompt_rows)
        block.append(data)
        count += n
        made[0] += n
        if count >= BLOCK:
            yield b"".join(block), count
            block, count = [], 0
    if block:
        yield b"".join(block), count


def counted_jsonl(
    *,
    session: Session,
    project: Project,
    kind: str,
    with_labelers: bool = False,
    progress: Progress | None = None,
) -> Iterator[tuple[bytes, int]]:
    """The export as JSON lines (UTF-8): (a block of whole lines, how many) per batch."""
    asks = bool(project.questions or project.criteria)
    if kind == DatasetKind.rankings and not with_labelers and not asks:
        yield from _ranking_lines(session, project, progress)
        return
    for batch in row_batches(
        session=session, project=project, kind=kind, with_labelers=with_labelers, progress=progress
    ):
        if batch:
            yield b"".join(map(jsontext.row_line, batch)), len(batch)


def jsonl(
    *,
    session: Session,
    project: Project,
    kind: str,
    with_labelers: bool = False,
    progress: Progress | None = None,
) -> Iterator[bytes]:
    """The export as JSON lines (UTF-8), a block of whole lines per batch of rows."""
    for block, _ in counted_jsonl(
        session=session, project=project, kind=kind, with_labelers=with_labelers, progress=progress
    ):
        yield block
