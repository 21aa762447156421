"""Streaming export of a project's labels in the dataset formats (one row per annotation).

Prompts stream in id order, a batch at a time with their live annotations (id order) and
texts (`labels.live_rows`, the next batch read by a thread while this one is built), so memory
stays bounded whatever the project's size and each prompt's texts are read once, however the
labels were stored. Lines are the standard encoder's bytes: `app.jsontext.row_line` of each
row, or for rankings without labelers or answers the snapshot's lines
(`rows.encoded_rankings`: templates of the row with its strings filled in). Superseded
annotations and gold items (known answers used to measure labelers) are left out. In a
project with questions or criteria every row carries the annotation's `answers` (its flags
under "flags"), shaped by `kinds.row_answers`.
"""

from collections.abc import Callable, Iterator, Sequence
from itertools import combinations
from typing import Any

from sqlalchemy import Text, cast, select
from sqlalchemy.orm import Session

from app import jsontext
from app.auth.models import User
from app.datasets import rows as rows_of
from app.datasets.kinds import (
    DatasetKind,
    kto_row,
    pair_rows,
    prompt_row,
    ranking_row,
    rating_row,
    row_answers,
    sft_row,
)
from app.datasets.schemas import SnapshotCreate
from app.datasets.writer import lines_of
from app.errors import Invalid
from app.labeling import labels, ranks
from app.labeling.labels import AnnotationRow
from app.progress import Progress
from app.projects import strength
from app.projects.kinds import ProjectKind
from app.projects.models import Project, Prompt

BATCH = 1000
"""Prompts read at a time."""
BLOCK = 5000
"""Rows (at least) per block of the export."""

Emails = dict[int, str] | None
Build = Callable[[list[Any], Any, dict[int, str]], list[dict[str, Any]]]
"""(the prompt's messages, the payload, response id -> text) -> the rows of one annotation.
The payload holds "answers" only when the rows are to carry them."""


def _labeled(row: dict[str, Any], annotation: AnnotationRow, emails: dict[int, str]) -> dict:
    """The row, plus its labeler's email ("import" for an imported label) and the time."""
    user_id = annotation.user_id
    labeler = emails.get(user_id, "import") if user_id else "import"
    return row | {"labeler": labeler, "annotated_at": annotation.created_at.isoformat()}


def _annotation_rows(
    session: Session,
    project: Project,
    kind: str,
    build: Build,
    emails: Emails,
    progress: Progress | None,
    texts: bool = True,
) -> Iterator[list[dict[str, Any]]]:
    """The rows `build` makes of each live annotation of `kind`, prompt by prompt (id order),
    a prompt's annotations in id order; a list of at least BLOCK rows at a time."""
    asks = bool(project.questions or project.criteria)
    loads = jsontext.loads
    made = [0]
    found = labels.live_rows(
        session,
        project.id,
        (kind,),
        with_responses=texts,
        batch=BATCH,
        read_ahead=True,
        times=emails is not None,
        flags=bool(project.criteria),
    )
    if progress is not None:
        found = rows_of.reporting(found, lambda item: item[0].id, session, project, progress, made)
    out: list[dict[str, Any]] = []
    for prompt, annotations, responses in found:
        if not annotations:
            continue
        messages = loads(prompt.messages)
        text = {rid: t for rid, (t, _) in responses.items()}
        for a in annotations:
            payload = loads(a.payload)
            if asks:
                answers = payload.get("answers") or {}
                if project.criteria:
                    answers = answers | {"flags": loads(a.flags) if a.flags else {}}
                payload["answers"] = answers
            else:
                payload.pop("answers", None)
            rows = build(messages, payload, text)
            out.extend(rows if emails is None else [_labeled(row, a, emails) for row in rows])
        if len(out) >= BLOCK:
            made[0] += len(out)
            yield out
            out = []
    if out:
        made[0] += len(out)
        yield out


def _answered(row: dict[str, Any], payload: Any, ids: list[str] | str | None) -> dict[str, Any]:
    """The row with its `answers` for the responses `ids` (if the rows carry answers)."""
    if "answers" not in payload:
        return row
    return row | {"answers": row_answers(payload["answers"], ids)}


def _ranked(payload: Any) -> tuple[list[int], list[int]] | None:
    """(response ids best first, their places) of a ranking; None when everything is tied
    (no preference, so no row)."""
    best_first, places = ranks.order_and_ranks(payload["ranking"])
    return None if len(set(places)) < 2 else (best_first, places)


def _rankings(messages: list[Any], payload: Any, text: dict[int, str]) -> list[dict[str, Any]]:
    ranked_ids = _ranked(payload)
    if ranked_ids is None:
        return []
    best_first, places = ranked_ids
    ranked = ranking_row(messages, [text[rid] for rid in best_first], places)
    if "answers" not in payload:
        return [ranked]
    return [_answered(ranked, payload, [str(rid) for rid in best_first])]


def _pairs_of(project: Project) -> Build:
    """Pairs of each ranking (tied pairs left out), with the margin of its strength if any."""

    def build(messages: list[Any], payload: Any, text: dict[int, str]) -> list[dict[str, Any]]:
        ids = [str(rid) for rid in ranks.order(payload["ranking"])]
        places = ranks.ranks(payload["ranking"])
        margin = strength.margin(project.strength_scale, payload.get("strength"))
        made = pair_rows(messages, [text[int(rid)] for rid in ids], places, margin)
        if "answers" not in payload:
            return made
        # pair_rows yields the untied pairs of the ranking in combinations() order.
        pairs = [
            [ids[i], ids[j]] for i, j in combinations(range(len(ids)), 2) if places[i] != places[j]
        ]
        return [_answered(row, payload, pair) for row, pair in zip(made, pairs, strict=True)]

    return build


def _kto_of(project: Project) -> Build:
    """KTO rows of each annotation: a ranking's top and bottom groups, or each rating by the
    kto snapshot's default thresholds (👍 true, 👎 false; 0–5: ≥ 4 true, ≤ 2 false)."""
    thresholds = SnapshotCreate(kind=DatasetKind.kto).canonical()

    def build(messages: list[Any], payload: Any, text: dict[int, str]) -> list[dict[str, Any]]:
        judged: Sequence[tuple[int, bool | None]]
        if "ranking" in payload:
            groups = ranks.groups(payload["ranking"])
            if len(groups) < 2:
                return []
            judged = [(rid, True) for rid in groups[0]] + [(rid, False) for rid in groups[-1]]
        else:
            judged = [
                (int(rid), rows_of.rating_label(v, project.rating_scale, thresholds))
                for rid, v in payload["scores"].items()
            ]
        return [
            _answered(kto_row(messages, text[rid], label), payload, str(rid))
            for rid, label in judged
            if label is not None
        ]

    return build


def _sft(messages: list[Any], payload: Any, text: dict[int, str]) -> list[dict[str, Any]]:
    return [_answered(sft_row(messages, payload["demonstration"]), payload, None)]


def _ratings(messages: list[Any], payload: Any, text: dict[int, str]) -> list[dict[str, Any]]:
    return [
        _answered(rating_row(messages, text[int(rid)], score), payload, rid)
        for rid, score in payload["scores"].items()
    ]


def _prompt_rows(session: Session, project: Project) -> Iterator[list[dict[str, Any]]]:
    last_id = 0
    while True:
        rows = (
            session.connection()
            .execute(
                select(Prompt.id, cast(Prompt.messages, Text).label("messages"))
                .where(
                    Prompt.project_id == project.id,
                    Prompt.id > last_id,
                    Prompt.is_gold.is_(False),
                    Prompt.retired_at.is_(None),
                )
                .order_by(Prompt.id)
                .limit(BATCH)
            )
            .all()
        )
        if not rows:
            return
        yield [prompt_row(jsontext.loads(row.messages)) for row in rows]
        last_id = rows[-1].id


def row_batches(
    *,
    session: Session,
    project: Project,
    kind: str,
    with_labelers: bool = False,
    progress: Progress | None = None,
) -> Iterator[list[dict[str, Any]]]:
    """The export rows of `kind` (rankings | pairs | sft | ratings | prompts | kto) in batches;
    with_labelers adds each row's `labeler` (email) and `annotated_at` (prompts rows have no
    labeler)."""
    emails = dict(session.execute(select(User.id, User.email)).all()) if with_labelers else None
    if kind == DatasetKind.rankings:
        return _annotation_rows(session, project, "ranking", _rankings, emails, progress)
    if kind == DatasetKind.pairs:
        return _annotation_rows(session, project, "ranking", _pairs_of(project), emails, progress)
    if kind == DatasetKind.sft:
        return _annotation_rows(session, project, "demonstration", _sft, emails, progress, False)
    if kind == DatasetKind.ratings:
        return _annotation_rows(session, project, "rating", _ratings, emails, progress)
    if kind == DatasetKind.prompts:
        return _prompt_rows(session, project)
    if kind == DatasetKind.kto:
        if project.kind == ProjectKind.demonstration:
            raise Invalid("kind: a kto export needs a ranking or rating project", field="kind")
        kto = _kto_of(project)
        return _annotation_rows(session, project, project.kind, kto, emails, progress)
    names = ", ".join(DatasetKind)
    raise Invalid(f"kind must be one of {names}; not {kind!r}", field="kind")


def _ranking_lines(
    session: Session, project: Project, progress: Progress | None
) -> Iterator[tuple[bytes, int]]:
    """The rankings export's lines (no labelers, no answers), as `jsonl` of `_rankings`' rows
    gives them: the snapshot of every ranking's lines (`rows.encoded_rankings`), the excluded
    labelers' included. Yields (a block of at least BLOCK lines, how many)."""
    made = [0]
    found = labels.live_payloads(session, project.id, "ranking", batch=BATCH, read_ahead=True)
    if progress is not None:
        found = rows_of.reporting(found, lambda item: item[0].id, session, project, progress, made)
    block: list[bytes] = []
    count = 0
    for _, prompt_rows in rows_of.encoded_rankings(found):
        data, n = lines_of(prompt_rows)
        block.append(data)
        count += n
        if count >= BLOCK:
            made[0] += count
            yield b"".join(block), count
            block, count = [], 0
    if block:
        made[0] += count
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
