"""Streaming export of a project's labels in the dataset formats (one row per annotation).

Annotations stream from one query in id order (a server-side cursor on PostgreSQL) as plain
rows, in batches that each fetch their prompts' messages and texts once (the next batch read
by a thread while this one is built), so memory stays bounded whatever the project's size.
Lines are the standard encoder's bytes: `app.jsontext.row_line` of each row, or for rankings
a template of the row with its strings filled in (`templates.RankingLines`). Superseded annotations
and gold items (known answers used to measure labelers) are left out. In a project with
questions or criteria every row carries the annotation's `answers` (its flags under "flags"),
shaped by `kinds.row_answers`.
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
    prompt_of,
    prompt_row,
    ranking_row,
    rating_row,
    row_answers,
    sft_row,
)
from app.datasets.schemas import SnapshotCreate
from app.datasets.templates import RankingLines
from app.errors import Invalid
from app.labeling import labels, ranks
from app.prefetch import ahead
from app.progress import Progress
from app.projects import strength
from app.projects.kinds import ProjectKind
from app.projects.models import Project, Prompt, Response

PROMPTS_SQL = (
    "SELECT p.id, p.messages::text FROM unnest(%s::int[]) AS u(id) "
    "CROSS JOIN LATERAL (SELECT id, messages FROM prompts WHERE id = u.id) AS p"
)
TEXTS_SQL = (
    "SELECT r.id, r.text FROM unnest(%s::int[]) AS u(id) "
    "CROSS JOIN LATERAL (SELECT id, text FROM responses WHERE prompt_id = u.id) AS r"
)
"""A batch's prompts and texts on PostgreSQL: one index lookup per prompt (the planner
scans the whole table for an `= ANY(…)` of a few thousand ids), the ids passed as one array
literal (psycopg adapts a list of ints element by element)."""
BATCH = 5000
PROGRESS_EVERY = 2000

Emails = dict[int, str] | None
Build = Callable[[list[Any], Any, dict[int, str]], list[dict[str, Any]]]
"""(the prompt's messages, the payload, response id -> text) -> the rows of one annotation.
The payload holds "answers" only when the rows are to carry them."""
Batch = tuple[list[tuple[Any, ...]], dict[int, str], dict[int, str]]
"""(annotation rows, prompt id -> its messages as JSON text, response id -> text)."""


def _of_prompts(session: Session, prompt_ids: list[int], texts: bool) -> tuple[dict, dict]:
    """(prompt id -> messages as JSON text, response id -> text) of the prompts."""
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        # The driver's tuples straight into the dicts: SQLAlchemy's rows cost ~1 µs each.
        driver: Any = connection.connection.driver_connection
        ids = "{" + ",".join(map(str, prompt_ids)) + "}"
        with driver.cursor() as cursor:
            cursor.execute(PROMPTS_SQL, (ids,))
            messages = dict(cursor.fetchall())
            if not texts:
                return messages, {}
            cursor.execute(TEXTS_SQL, (ids,))
            return messages, dict(cursor.fetchall())
    query = select(Prompt.id, cast(Prompt.messages, Text)).where(Prompt.id.in_(prompt_ids))
    messages = dict(connection.execute(query).all())
    if not texts:
        return messages, {}
    query = select(Response.id, Response.text).where(Response.prompt_id.in_(prompt_ids))
    return messages, dict(connection.execute(query).all())


def _labeled(row: dict[str, Any], annotation: tuple[Any, ...], emails: dict[int, str]) -> dict:
    """The row, plus its labeler's email ("import" for an imported label) and the time."""
    _, _, user_id, created_at, _, _ = annotation
    labeler = emails.get(user_id, "import") if user_id else "import"
    return row | {"labeler": labeler, "annotated_at": created_at.isoformat()}


def _batches(
    session: Session,
    project: Project,
    kind: str,
    progress: Progress | None,
    made: list[int],
    *,
    texts: bool = True,
    with_times: bool = False,
) -> Iterator[Batch]:
    """The live annotations of `kind` in id order, a batch at a time with its prompts'
    messages and texts; before the next batch, `progress` hears `made[0]`, the rows the
    consumer has made so far."""
    low, high = labels.live_id_range(session=session, project_id=project.id, kind=kind)

    def fetched() -> Iterator[Batch]:
        for batch in labels.live_annotation_rows(
            session=session, project_id=project.id, kind=kind, batch=BATCH, with_times=with_times
        ):
            yield batch, *_of_prompts(session, list({row[1] for row in batch}), texts)

    for batch, messages, text in ahead(fetched()):
        yield batch, messages, text
        if progress is not None:
            progress(made[0], batch[-1][0] - low, high - low)


def _annotation_rows(
    session: Session,
    project: Project,
    kind: str,
    build: Build,
    emails: Emails,
    progress: Progress | None,
    texts: bool = True,
) -> Iterator[list[dict[str, Any]]]:
    """The rows `build` makes of each live annotation of `kind`, in annotation id order, one
    list per batch of annotations."""
    asks = bool(project.questions or project.criteria)
    loads = jsontext.loads
    made = [0]
    with_times = emails is not None
    for batch, messages_of, text in _batches(
        session, project, kind, progress, made, texts=texts, with_times=with_times
    ):
        messages: dict[int, Any] = {}
        out: list[dict[str, Any]] = []
        for a in batch:
            prompt = messages.get(a[1])
            if prompt is None:
                prompt = messages[a[1]] = loads(messages_of[a[1]])
            payload = loads(a[4])
            if asks:
                answers = payload.get("answers") or {}
                if project.criteria:
                    answers = answers | {"flags": loads(a[5]) or {}}
                payload["answers"] = answers
            else:
                payload.pop("answers", None)
            rows = build(prompt, payload, text)
            out.extend(rows if emails is None else [_labeled(row, a, emails) for row in rows])
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
                (int(rid), rows_of.desirable(v, project.rating_scale, thresholds))
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
                    Prompt.project_id == project.id, Prompt.id > last_id, Prompt.is_gold.is_(False)
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
    gives them, a block per batch: a string prompt's lines by template (`RankingLines`, each
    string encoded once per batch), other prompts' by `_rankings`. Yields (the block, its
    lines)."""
    lines = RankingLines()
    made = [0]
    loads, encoded, row_line = jsontext.loads, jsontext.encoded, jsontext.row_line
    for batch, messages_of, text in _batches(session, project, "ranking", progress, made):
        # prompt id -> (the string prompt encoded, or None for a conversation; its messages)
        prompts: dict[int, tuple[bytes | None, list[Any]]] = {}
        enc = {rid: encoded(t) for rid, t in text.items()}
        out: list[bytes] = []
        for a in batch:
            ranked_ids = _ranked(loads(a[4]))
            if ranked_ids is None:
                continue
            best_first, places = ranked_ids
            if a[1] in prompts:
                prompt, messages = prompts[a[1]]
            else:
                messages = loads(messages_of[a[1]])
                shown = prompt_of(messages)
                prompt = encoded(shown) if type(shown) is str else None
                prompts[a[1]] = prompt, messages
            line = None
            if prompt is not None:
                tied = None if places[-1] == len(places) - 1 else places
                line = lines.line(prompt, list(map(enc.__getitem__, best_first)), tied)
            if line is None:
                line = row_line(ranking_row(messages, [text[rid] for rid in best_first], places))
            out.append(line)
        made[0] += len(out)
        if out:
            yield b"".join(out), len(out)


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
