"""Labeling's service to the other domains: the live labels of a project, its skips, counts.

Labeling owns the annotation and assignment tables; projects, aggregation, quality and datasets
read and write them only through these functions (the labeler's own path — next task, submit,
skip — is `service.py`). This module imports no other domain's service, so the projects domain
can use it without an import cycle.

"Live" is decided here, once: an annotation that a newer one supersedes is dropped, and so are
those of labelers the caller excludes (aggregation owns exclusions and passes their ids); the
rows themselves stay in the database.

`prompt_labels` streams prompts in id order, in batches (keyset pagination on the prompt id);
each batch loads the annotations and responses of its prompts only, so memory holds one batch
whatever the project's size. `live_rows` is the same stream undecoded (named tuples of the
driver's values), and `live_payloads` only the payloads, for callers that read a million.
"""

from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import (
    ColumnElement,
    Text,
    case,
    cast,
    exists,
    func,
    literal,
    null,
    or_,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.orm import Session, aliased

from app import jsontext
from app.auth.models import User
from app.labeling.models import Annotation, AnnotationSource, Assignment, AssignmentStatus
from app.labeling.sources import Sources, ai_annotation, is_ai, keeps, kept
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
    """When it was stored (a datetime; None unless the reader asked for times)."""
    flags: dict[str, Any] | None = None
    """The criteria it flagged per response (response id -> names; None unless the reader
    asked for flags)."""
    ai: bool = False
    """Whether it is an AI judge's (`sources.is_ai`)."""
    accepted: bool = True
    """An AI judge's label: whether the project accepts it (`Assignment.counted`, decided by
    `lease_rules.judge_accepted` from `judge_accepts`); read only by a reader of every source
    (`sources.standing`), True otherwise."""


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


class PromptRow(NamedTuple):
    """A prompt as `live_rows` and `live_payloads` read it, undecoded."""

    id: int
    external_id: str
    messages: str
    """The conversation as JSON text."""


class AnnotationRow(NamedTuple):
    """An annotation as `live_rows` reads it, undecoded."""

    id: int
    user_id: int | None
    kind: str
    payload: str
    """JSON text."""
    created_at: Any
    """None unless the reader asked for times."""
    supersedes_id: int | None
    prompt_id: int
    flags: str | None
    """JSON text; None unless the reader asked for flags."""
    source: str
    """`Annotation.source` (`sources.is_ai` tells an AI judge's)."""
    accepted: bool | int
    """`Label.accepted` (a driver's 1/0 on SQLite)."""


Responses = dict[int, tuple[str, str | None]]
"""response id -> (text, model), in import order."""


def _live(
    rows: list[AnnotationRow], excluded: Collection[int], sources: str = Sources.all
) -> list[AnnotationRow]:
    """Drop superseded annotations, then those of excluded labelers and those of sources the
    reader does not keep (`sources.keeps`) (`AnnotationRow`s)."""
    superseded = {row.supersedes_id for row in rows if row.supersedes_id is not None}
    if not superseded and not excluded and sources == Sources.all:
        return rows
    return [
        row
        for row in rows
        if row.id not in superseded and row.user_id not in excluded and keeps(sources, row.source)
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
    retired: bool = True,
    times: bool = True,
    flags: bool = False,
    sources: str = Sources.all,
) -> Iterator[PromptLabels]:
    """Each prompt of the project (id order) with its live labels of `kinds` (or just `only`).

    Gold items (known answers, for measuring labelers) are left out unless `gold` is True
    (only them) or None (every prompt); retired prompts too when `retired` is False (the
    `prompts` rows leave them out; labels of retired prompts stay in every other row). With
    `read_ahead` a thread reads the next batch while the caller works on this one: only for a
    caller that leaves `session` alone until the iteration ends (a snapshot's reader session).
    Without `times` the labels' `created_at` is None; with `flags` they carry their flags.
    `sources` keeps human labels, AI ones, or all (`sources.Sources`), superseded ones
    dropped first."""
    loads = jsontext.loads
    for prompt, rows, responses in live_rows(
        session,
        project_id,
        kinds,
        excluded,
        with_responses=with_responses,
        only=only,
        after=after,
        batch=batch,
        gold=gold,
        read_ahead=read_ahead,
        retired=retired,
        times=times,
        flags=flags,
        sources=sources,
    ):
        if rows or keep_unlabeled:
            labels = [
                Label(
                    r.id,
                    r.user_id,
                    r.kind,
                    loads(r.payload),
                    r.created_at,
                    (loads(r.flags) if r.flags else {}) if flags else None,
                    is_ai(r.source),
                    bool(r.accepted),
                )
                for r in rows
            ]
            yield PromptLabels(
                prompt.id, prompt.external_id, loads(prompt.messages), responses, labels
            )


def live_rows(
    session: Session,
    project_id: int,
    kinds: Collection[str],
    excluded: Collection[int] = (),
    *,
    with_responses: bool = True,
    only: int | None = None,
    after: int = 0,
    batch: int = BATCH,
    gold: bool | None = False,
    read_ahead: bool = False,
    times: bool = True,
    flags: bool = False,
    retired: bool = True,
    sources: str = Sources.all,
) -> Iterator[tuple[PromptRow, list[AnnotationRow], Responses]]:
    """`prompt_labels` undecoded, for a caller that decodes only what it uses: each prompt
    (id order) as plain tuples, with the rows of its live annotations of `kinds` (id order)
    and its responses; every prompt, labeled or not. Without `times` the rows' created at is
    None (a million timestamps cost a snapshot a second); with `flags` they hold the flags;
    without `retired` retired prompts are left out; `sources` as `prompt_labels`'."""
    batches = _prompt_batches(
        session,
        project_id,
        kinds,
        with_responses,
        only,
        after,
        batch,
        gold,
        times,
        flags,
        retired,
        accepted=sources == Sources.all,
    )
    for prompts, by_prompt, responses in ahead(batches) if read_ahead else batches:
        for prompt in prompts:
            yield prompt, _live(by_prompt[prompt.id], excluded, sources), responses[prompt.id]


_Batch = tuple[list[PromptRow], dict[int, list[AnnotationRow]], dict[int, Responses]]
"""(the prompts, prompt id -> its annotation rows, prompt id -> its responses)."""


def _plain(session: Session, query: Any) -> list[tuple[Any, ...]]:
    """The query's rows as the driver's tuples (a SQLAlchemy Row costs ~1 µs; a snapshot reads
    a million). The query's parameters are numbers and names of our own, bound as literals."""
    if session.autoflush:
        session.flush()  # what `session.execute` would do first
    connection = session.connection()
    literal = {"literal_binds": True}
    statement = str(query.compile(dialect=connection.dialect, compile_kwargs=literal))
    raw: Any = connection.connection.driver_connection
    cursor = raw.cursor()
    try:
        cursor.execute(statement)
        return cursor.fetchall()
    finally:
        cursor.close()


def _prompt_batches(
    session: Session,
    project_id: int,
    kinds: Collection[str],
    with_responses: bool,
    only: int | None,
    after: int,
    batch: int,
    gold: bool | None,
    times: bool,
    flags: bool = False,
    retired: bool = True,
    *,
    accepted: bool = False,
) -> Iterator[_Batch]:
    """`live_rows`' reads, a batch of prompts at a time; with `accepted` each AI label's
    `Label.accepted` (its assignment's `counted`), otherwise every row reads True."""
    dialect = session.get_bind().dialect
    stamp = Annotation.created_at.type.dialect_impl(dialect).result_processor(dialect, None)
    created = Annotation.created_at if times else null()
    flagged = cast(Annotation.flags, Text) if flags else null()
    counted: Any = true()
    if accepted:  # only an AI label's assignment is read: people's are True by the CASE
        of_assignment = select(Assignment.counted).where(Assignment.id == Annotation.assignment_id)
        counted = case((ai_annotation(), of_assignment.scalar_subquery()), else_=true())
    last_id = after
    while True:
        messages = cast(Prompt.messages, Text).label("messages")  # decoded by the caller
        query = select(Prompt.id, Prompt.external_id, messages).where(
            Prompt.project_id == project_id, Prompt.id > last_id
        )
        if only is not None:
            query = query.where(Prompt.id == only)
        if gold is not None:
            query = query.where(Prompt.is_gold.is_(gold))
        if not retired:
            query = query.where(Prompt.retired_at.is_(None))
        found_prompts = _plain(session, query.order_by(Prompt.id).limit(batch))
        if not found_prompts:
            return
        prompts = list(map(PromptRow._make, found_prompts))
        last_id = prompts[-1].id
        ids = [p.id for p in prompts]
        by_prompt: dict[int, list[AnnotationRow]] = {pid: [] for pid in ids}
        if kinds:
            found = _plain(
                session,
                select(
                    Annotation.id,
                    Annotation.user_id,
                    Annotation.kind,
                    cast(Annotation.payload, Text),  # decoded by the caller
                    created,
                    Annotation.supersedes_id,
                    Annotation.prompt_id,
                    flagged,
                    Annotation.source,
                    counted,
                )
                .where(
                    # No project condition: the prompt ids are the project's (an other
                    # project's prompt in the range is dropped below), and with one SQLite
                    # (no statistics) read all the project's annotations for every batch
                    # through the (project_id, id) index: 0.13 s a batch at 1M annotations.
                    Annotation.prompt_id.between(ids[0], ids[-1]),
                    Annotation.kind.in_(list(kinds)),
                )
                .order_by(Annotation.prompt_id, Annotation.id),
            )
            if times and stamp is not None:
                rows = [AnnotationRow._make((*r[:4], stamp(r[4]), *r[5:])) for r in found]
            else:
                rows = list(map(AnnotationRow._make, found))
            for row in rows:
                of_prompt = by_prompt.get(row.prompt_id)
                if of_prompt is not None:  # not a gold item, nor another project's prompt
                    of_prompt.append(row)
        responses: dict[int, Responses] = {pid: {} for pid in ids}
        if with_responses:
            for rid, pid, text, model in _plain(
                session,
                select(Response.id, Response.prompt_id, Response.text, Response.model)
                .where(Response.prompt_id.between(ids[0], ids[-1]))
                .order_by(Response.prompt_id, Response.position),
            ):
                texts = responses.get(pid)
                if texts is not None:
                    texts[rid] = (text, model)
        yield prompts, by_prompt, responses


def live_payloads(
    session: Session,
    project_id: int,
    kind: str,
    excluded: Collection[int] = (),
    *,
    batch: int = BATCH,
    read_ahead: bool = False,
    sources: str = Sources.all,
) -> Iterator[tuple[PromptRow, list[Any], list[bool], Responses]]:
    """The payloads (decoded, annotation id order) of each prompt's live annotations of
    `kind` of the kept `sources` (as `prompt_labels`), for a caller that needs nothing else
    of them but whether each is an AI judge's, with the prompt and its responses: prompts
    without any left out. On PostgreSQL a prompt's payloads come as one JSON array (one row
    and one decoding per prompt, not per annotation: a snapshot reads a million), the live
    rule in the query (`_live_of`); elsewhere from `live_rows`."""
    if session.get_bind().dialect.name != "postgresql":
        loads = jsontext.loads
        for prompt, rows, responses in live_rows(
            session,
            project_id,
            (kind,),
            excluded,
            batch=batch,
            read_ahead=read_ahead,
            times=False,
            sources=sources,
        ):
            if rows:
                decoded = [loads(row.payload) for row in rows]
                yield prompt, decoded, [is_ai(row.source) for row in rows], responses
        return
    batches = _payload_batches(session, project_id, kind, excluded, batch, sources)
    for prompts, payloads, texts in ahead(batches) if read_ahead else batches:
        for prompt in prompts:
            found = payloads.get(prompt.id)
            if found is not None:
                text, of = found
                yield (
                    prompt,
                    jsontext.loads(text),
                    list(map(is_ai, of.split(","))),
                    texts[prompt.id],
                )


def _payload_batches(
    session: Session,
    project_id: int,
    kind: str,
    excluded: Collection[int],
    batch: int,
    sources: str = Sources.all,
) -> Iterator[tuple[list[PromptRow], dict[int, tuple[str, str]], dict[int, Responses]]]:
    """`live_payloads`' reads on PostgreSQL: (prompts, prompt id -> (its payloads as a JSON
    array, their sources joined by commas), prompt id -> its responses), a batch of prompts
    at a time."""
    payload = cast(Annotation.payload, Text)
    joined = func.string_agg(payload, aggregate_order_by(literal(","), Annotation.id))
    of = func.string_agg(Annotation.source, aggregate_order_by(literal(","), Annotation.id))
    live = _live_of(project_id, kind, gold_out=False)  # gold prompts are not in the batches
    if excluded:
        live.append(or_(Annotation.user_id.is_(None), Annotation.user_id.not_in(list(excluded))))
    if (keep := kept(sources)) is not None:
        live.append(keep)
    for prompts, _, responses in _prompt_batches(
        session,
        project_id,
        kinds=(),
        with_responses=True,
        only=None,
        after=0,
        batch=batch,
        gold=False,
        times=False,
    ):
        ids = [p.id for p in prompts]
        query = (
            select(Annotation.prompt_id, literal("[") + joined + literal("]"), of)
            .where(*live, Annotation.prompt_id.between(ids[0], ids[-1]))
            .group_by(Annotation.prompt_id)
        )
        found = _plain(session, query)
        yield prompts, {pid: (text, of_) for pid, text, of_ in found}, responses


def _live_of(project_id: int, kind: str, *, gold_out: bool = True) -> list[ColumnElement[bool]]:
    """The project's annotations of `kind` that nothing supersedes, gold items left out
    (unless `gold_out` is False: a caller that reads only real prompts' annotations)."""
    newer = aliased(Annotation)
    live = [
        Annotation.project_id == project_id,
        Annotation.kind == kind,
        ~exists().where(newer.supersedes_id == Annotation.id),
    ]
    if gold_out:
        gold = aliased(Prompt)
        live.append(~exists().where(gold.id == Annotation.prompt_id, gold.is_gold.is_(True)))
    return live


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


@dataclass(frozen=True, slots=True)
class Skip:
    """A labeler's skip of a prompt: an assignment given back without a label."""

    user_id: int
    at: Any
    """When it was skipped (a datetime)."""
    reason: str


def skips(
    session: Session, project_id: int, prompt_ids: Sequence[int], excluded: Collection[int] = ()
) -> dict[int, list[Skip]]:
    """The skips of these prompts of the project (prompt id -> skips, oldest first), those of
    the labelers the caller excludes left out."""
    if not prompt_ids:
        return {}
    wanted = set(prompt_ids)
    found: dict[int, list[Skip]] = {}
    rows = session.execute(
        select(
            Assignment.prompt_id,
            Assignment.user_id,
            Assignment.completed_at,
            Assignment.skip_reason,
        )
        .where(
            Assignment.project_id == project_id,
            Assignment.prompt_id.between(min(wanted), max(wanted)),
            Assignment.status == AssignmentStatus.skipped,
        )
        .order_by(Assignment.prompt_id, Assignment.id)
    )
    for prompt_id, user_id, at, reason in rows:
        if prompt_id in wanted and user_id not in excluded:
            found.setdefault(prompt_id, []).append(Skip(user_id, at, reason or ""))
    return found


@dataclass(frozen=True, slots=True)
class SourceTally:
    """A source annotator of a project (a labeler imported with another tool's labels, who
    cannot sign in) and what they did in it."""

    user: User
    labels: int
    skips: int


def source_annotators(*, session: Session, project_id: int) -> list[SourceTally]:
    """The project's source annotators, most labels first, each with their labels and skips
    (done and skipped assignments) in it."""
    labels = func.count().filter(Assignment.status == AssignmentStatus.done)
    skips = func.count().filter(Assignment.status == AssignmentStatus.skipped)
    rows = session.execute(
        select(User, labels, skips)
        .join(Assignment, Assignment.user_id == User.id)
        .where(Assignment.project_id == project_id, User.source.is_not(None))
        .group_by(User.id)
        .order_by(labels.desc(), User.email)
    )
    return [SourceTally(user, n, skipped) for user, n, skipped in rows]
