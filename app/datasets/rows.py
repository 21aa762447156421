"""The one row builder of each dataset kind, used by snapshots and exports alike.

A builder (`builder`) turns one prompt's live labels (`labels.PromptLabels`) into that
prompt's rows of one kind (TRL conventions, shaped by `kinds`), in annotation id order, each
with the labels it was made of and the responses it is about (`Made`). Its parameters are a
snapshot's (`SnapshotCreate.canonical`): with method "all" a row per annotation, otherwise a
consensus per prompt. An export is the rows of method "all" (`export.export_params`) of every
labeler, not frozen; a snapshot freezes the rows of its parameters, excluded labelers left out.

`made_rows` streams a project's prompts with their rows, and `snapshot_rows` is what a snapshot
writes: the same rows, except that every label's rankings of string prompts come as lines from
templates of the same builder (`templates.encoded_rankings`), held to it byte for byte. Another
file format of the same labels reads `made_rows` of a builder (`export.export_params` for one
row per annotation): each row with the annotations it came from (payload, labeler, time, flags
when asked) and its response ids.

Each rule of a row is written once: how a ranking reads as rows, and "no preference, no row"
(`kinds.preference`); a ranking's pairs (`kinds.untied_pairs`); a rating's KTO label
(`desirable`, `rating_label`); who labeled a row (`labeler_of`); where its labels came from
(every row made of labels carries `source`, human | ai | mixed, added by `Builder` from the
labels it was made of: `sources.row_source`). Which labels a builder reads is its parameters'
`sources` (human, the default of a snapshot; ai; all, an export's), kept before any consensus.
"""

from collections import Counter
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.aggregation import service as aggregation
from app.aggregation.consensus import ConsensusMethod, consensus_pairs
from app.datasets import templates
from app.datasets.kinds import (
    DatasetKind,
    Row,
    kto_row,
    pair_row,
    preference,
    prompt_row,
    ranking_row,
    rating_row,
    sft_row,
    untied_pairs,
)
from app.datasets.schemas import EVERY
from app.datasets.writer import Encoded
from app.errors import Invalid
from app.labeling import ranks
from app.labeling.labels import BATCH, Label, PromptLabels, live_payloads, prompt_labels
from app.labeling.sources import Sources, row_source, standing
from app.progress import Progress
from app.projects import strength
from app.projects.kinds import ProjectKind, RatingScale
from app.projects.models import Project, Prompt
from app.projects.questions import likert_names

PROGRESS_EVERY = 200
T = TypeVar("T")
Rows = Iterator[tuple[str, list[Row] | Encoded]]
Weights = dict[int | None, float] | None


class Made(NamedTuple):
    """One row and what it was made of."""

    row: Row
    labels: list[Label]
    """The live annotations it came from: one with method "all", the prompt's rankings or
    ratings for a consensus, none for a `prompts` row."""
    about: Sequence[int] | int | None
    """The response ids of the row, as it holds their texts: best first (rankings), chosen
    and rejected (pairs), the one response (ratings, kto); None (sft, prompts)."""


Build = Callable[[PromptLabels], list[Made]]
"""One prompt's live labels -> its rows."""


@dataclass(frozen=True, slots=True)
class Builder:
    """The row builder of one dataset kind for one project and set of parameters: called with
    one prompt's live labels, it gives that prompt's rows."""

    kind: DatasetKind
    make: Build
    reads: tuple[str, ...]
    """The annotation kinds its rows are made of."""
    every_prompt: bool = False
    """A row for every prompt that is not retired, labeled or not (`prompts`)."""
    texts: bool = True
    """Whether its rows hold the responses' texts."""
    sources: str = Sources.all
    """The labels it reads: human, ai or all (`sources.Sources`), kept before it builds."""
    consensus: bool = False
    """Whether its rows are a consensus of the prompt's labels (its method is not "all"): then
    a reader of every source counts only the `sources.standing` labels."""

    def __call__(self, labels: PromptLabels) -> list[Made]:
        """The prompt's rows, each row made of labels with its `source` (human, ai, mixed)."""
        if self.consensus and self.sources == Sources.all:
            labels = replace(labels, labels=standing(labels.labels))
        made = self.make(labels)
        for m in made:
            if m.labels:
                m.row["source"] = row_source([x.ai for x in m.labels])
        return made


def builder(
    *, session: Session, project: Project, params: dict[str, Any], what: str = "snapshot"
) -> Builder:
    """The row builder of `params["kind"]` for the project. `params` are a snapshot's canonical
    parameters ("weights": each labeler's weight in a consensus; ratings with method "all": each
    annotation's scores as given, which only an export asks for; "sources": the labels read,
    all when not given). Invalid (naming `what`, the file asked for) for an unknown kind, or
    kto of a project that has neither rankings nor ratings."""
    sources = params.get("sources", Sources.all)
    made = _builder(session=session, project=project, params=params, what=what, sources=sources)
    consensus = params.get("method", ConsensusMethod.ranked_pairs) != EVERY
    return replace(made, sources=sources, consensus=consensus)


def _builder(
    *, session: Session, project: Project, params: dict[str, Any], what: str, sources: str
) -> Builder:
    """`builder` of every source (`sources` only for what it reads itself: the ratings
    normaliser's pass)."""
    kind, method = params["kind"], params.get("method", ConsensusMethod.ranked_pairs)
    weights: Weights = None
    if "weights" in params:
        weights = {int(user_id): w for user_id, w in params["weights"].items()}
    if kind == DatasetKind.prompts:
        return Builder(DatasetKind.prompts, _prompts, (), every_prompt=True, texts=False)
    if kind == DatasetKind.sft:
        if not params.get("include_top_ranked"):
            return Builder(DatasetKind.sft, _demonstrations, ("demonstration",), texts=False)
        reads: tuple[str, ...] = ("demonstration", "ranking")
        return Builder(DatasetKind.sft, lambda labels: _sft(labels, method, weights), reads)
    if kind == DatasetKind.rankings:
        return Builder(
            DatasetKind.rankings, lambda labels: _rankings(labels, method, weights), ("ranking",)
        )
    if kind == DatasetKind.pairs:
        levels = project.strength_scale or []
        return Builder(
            DatasetKind.pairs, lambda labels: _pairs(labels, method, weights, levels), ("ranking",)
        )
    if kind == DatasetKind.kto:
        if project.kind not in (ProjectKind.ranking, ProjectKind.rating):
            raise Invalid(
                f"kind: a kto {what} needs a ranking or rating project; {project.name!r} is a "
                f"{project.kind} project",
                field="kind",
            )
        build = lambda labels: _kto(labels, project, params, weights)  # noqa: E731
        return Builder(DatasetKind.kto, build, (project.kind,))
    if kind == DatasetKind.ratings:
        scale = project.rating_scale
        if method == EVERY:
            return Builder(DatasetKind.ratings, _each_rating, ("rating",))
        aspects = likert_names(project.questions or [])
        normalizer = None
        if params.get("normalize"):
            normalizer = aggregation.rating_normalizer(
                session=session, project=project, sources=sources
            )
        build = lambda labels: _ratings(labels, scale, normalizer, aspects, weights)  # noqa: E731
        return Builder(
            DatasetKind.ratings, build, ("rating", "ranking") if aspects else ("rating",)
        )
    names = ", ".join(DatasetKind)
    raise Invalid(f"kind must be one of {names}; not {kind!r}", field="kind")


# --- the builders ---------------------------------------------------------------------------


def _prompts(labels: PromptLabels) -> list[Made]:
    return [Made(prompt_row(labels.messages), [], None)]


def _demonstrations(labels: PromptLabels) -> list[Made]:
    """Each written answer (or demonstrated conversation)."""
    return [
        Made(sft_row(labels.messages, x.payload["demonstration"]), [x], None)
        for x in labels.of_kind("demonstration")
    ]


def _sft(labels: PromptLabels, method: str, weights: Weights) -> list[Made]:
    """Each written answer, and the top consensus response of the prompt's rankings."""
    made = _demonstrations(labels)
    ranked = labels.of_kind("ranking")
    if ranked:
        ranking = aggregation.consensus_of(labels, method=method, weights=weights).ranking
        if ranking:
            top = int(ranking[0])
            made.append(Made(sft_row(labels.messages, labels.responses[top][0]), ranked, None))
    return made


def _texts(labels: PromptLabels, ids: Sequence[int]) -> list[str]:
    responses = labels.responses
    return [responses[rid][0] for rid in ids]


def _rankings(labels: PromptLabels, method: str, weights: Weights) -> list[Made]:
    """Each ranking (method "all") or the prompt's consensus, best response first."""
    messages = labels.messages
    if method == EVERY:
        made = []
        for x in labels.of_kind("ranking"):
            p = preference(x.payload["ranking"])
            if p is not None:
                row = ranking_row(messages, _texts(labels, p.best_first), p.places)
                made.append(Made(row, [x], p.best_first))
        return made
    p = preference(aggregation.consensus_of(labels, method=method, weights=weights).groups)
    if p is None:
        return []
    row = ranking_row(messages, _texts(labels, p.best_first), p.places)
    return [Made(row, labels.of_kind("ranking"), p.best_first)]


def _pairs(labels: PromptLabels, method: str, weights: Weights, levels: list[Any]) -> list[Made]:
    """The untied pairs of each ranking (method "all": the margin of its strength, if any) or
    of the prompt's consensus (the margin of its votes, or of the labelers' strengths)."""
    messages = labels.messages
    made = []
    if method == EVERY:
        for x in labels.of_kind("ranking"):
            p = preference(x.payload["ranking"])
            if p is None:
                continue
            margin = strength.margin(levels, x.payload.get("strength"))
            ids, texts = p.best_first, _texts(labels, p.best_first)
            for i, j in untied_pairs(p.places):
                row = pair_row(messages, texts[i], texts[j], margin)
                made.append(Made(row, [x], [ids[i], ids[j]]))
        return made
    consensus = aggregation.consensus_of(labels, method=method, weights=weights)
    if preference(consensus.groups) is None:
        return []
    every = labels.of_kind("ranking")
    for pair in consensus_pairs(consensus):
        if pair.tied:
            continue
        chosen, rejected = int(pair.chosen), int(pair.rejected)
        margin = (
            _strength_margin(chosen, rejected, every, levels, weights) if levels else pair.margin
        )
        chosen_text, rejected_text = _texts(labels, [chosen, rejected])
        row = pair_row(messages, chosen_text, rejected_text, margin)
        made.append(Made(row, every, [chosen, rejected]))
    return made


def _strength_margin(
    chosen: int, rejected: int, ranked: list[Label], scale: list[Any], weights: Weights
) -> float | None:
    """A consensus pair's margin on a strength scale: the (weighted) mean over the labels that
    judged the pair of +margin when they chose the same response, −margin when they chose the
    other, 0 for a tie; labels without a strength (imports) do not count. None when none did."""
    total = weight = 0.0
    for x in ranked:
        place = {
            rid: g for g, group in enumerate(ranks.groups(x.payload["ranking"])) for rid in group
        }
        if chosen not in place or rejected not in place:
            continue
        a, b = place[chosen], place[rejected]
        value = x.payload.get("strength")
        if a != b and value is None:
            continue
        w = 1.0 if weights is None else weights.get(x.user_id, 1.0)
        m = 0.0 if a == b else (strength.margin(scale, value) or 0.0)
        total += w * (m if a < b else -m)
        weight += w
    return round(total / weight, 6) if weight else None


def desirable(value: float, scale: str, params: dict[str, Any]) -> bool | None:
    """A rating's number (a mean, or one rating through `rating_label`) as a KTO label:
    👍 (above 0) True, 👎 False; on 0–5, ≥ desirable_at True, ≤ undesirable_at False; in
    between (or exactly 0 on thumbs) None, left out."""
    if scale == RatingScale.thumbs:
        return True if value > 0 else False if value < 0 else None
    if value >= params["desirable_at"]:
        return True
    if value <= params["undesirable_at"]:
        return False
    return None


def rating_label(value: Any, scale: str, params: dict[str, Any]) -> bool | None:
    """One stored rating as a KTO label: its number on the scale (`rating_value`: 👍/👎 as
    +1/−1 however stored, 0–5 as is), then `desirable`."""
    return desirable(aggregation.rating_value(value, scale), scale, params)


def _top_bottom(labels: PromptLabels, ranking: Any, made_from: list[Label]) -> list[Made]:
    """KTO rows of a ranking (a payload's, or a consensus's groups): its top group desirable,
    its bottom group not."""
    p = preference(ranking)
    if p is None:
        return []
    messages, places, last = labels.messages, p.places, p.places[-1]
    judged = [(rid, True) for rid, g in zip(p.best_first, places, strict=True) if g == 0]
    judged += [(rid, False) for rid, g in zip(p.best_first, places, strict=True) if g == last]
    return [
        Made(kto_row(messages, labels.responses[rid][0], label), made_from, rid)
        for rid, label in judged
    ]


def _kto(
    labels: PromptLabels, project: Project, params: dict[str, Any], weights: Weights
) -> list[Made]:
    """KTO rows: a ranking's top and bottom groups, or each rating by the thresholds; of each
    annotation (method "all") or of the prompt's consensus (rankings) or mean (ratings)."""
    method, scale = params["method"], project.rating_scale
    if project.kind == ProjectKind.ranking:
        if method == EVERY:
            return [
                made
                for x in labels.of_kind("ranking")
                for made in _top_bottom(labels, x.payload["ranking"], [x])
            ]
        consensus = aggregation.consensus_of(labels, method=method, weights=weights)
        return _top_bottom(labels, consensus.groups, labels.of_kind("ranking"))
    messages = labels.messages
    made: list[Made] = []
    if method == EVERY:
        for x in labels.of_kind("rating"):
            for rid, value in x.payload["scores"].items():
                label = rating_label(value, scale, params)
                if label is not None:
                    text = labels.responses[int(rid)][0]
                    made.append(Made(kto_row(messages, text, label), [x], int(rid)))
        return made
    summary = aggregation.ratings_of(labels, scale=scale, weights=weights)
    every = labels.of_kind("rating")
    for rid, (text, _) in labels.responses.items():
        if rid in summary and (label := desirable(summary[rid].mean, scale, params)) is not None:
            made.append(Made(kto_row(messages, text, label), every, rid))
    return made


def _each_rating(labels: PromptLabels) -> list[Made]:
    """Each annotation's score of each response, as given."""
    return [
        Made(rating_row(labels.messages, labels.responses[int(rid)][0], score), [x], int(rid))
        for x in labels.of_kind("rating")
        for rid, score in x.payload["scores"].items()
    ]


def _ratings(
    labels: PromptLabels,
    scale: str,
    normalizer: aggregation.Normalizer | None,
    aspects: list[str],
    weights: Weights = None,
) -> list[Made]:
    """One row per response with a main rating or an answer to a Likert question (`aspects`):
    the main score (normalised when asked) and each aspect's mean under `scores`."""
    summary = aggregation.ratings_of(labels, scale=scale, normalizer=normalizer, weights=weights)
    means = aggregation.aspect_means(labels, aspects, weights) if aspects else {}
    every = labels.labels
    made = []
    for rid, (text, _) in labels.responses.items():
        if rid not in summary and rid not in means:
            continue
        score = summary[rid].mean if rid in summary else None
        scores = ({} if score is None else {"score": score}) | means.get(rid, {})
        made.append(Made(rating_row(labels.messages, text, score, scores), every, rid))
    return made


# --- where a snapshot's labels came from ----------------------------------------------------


@dataclass(slots=True)
class Tally:
    """A snapshot's shares by source: its rows (human, ai, mixed) and the labels behind them
    (human, ai), each label counted once however many rows it made."""

    rows: Counter[str] = field(default_factory=Counter)
    labels: Counter[str] = field(default_factory=Counter)

    def made(self, made: list[Made]) -> None:
        """Count one prompt's rows and their labels."""
        behind: dict[int, bool] = {}
        for m in made:
            if m.labels:
                self.rows[m.row["source"]] += 1
                behind.update((x.annotation_id, x.ai) for x in m.labels)
        for ai in behind.values():
            self.labels[row_source([ai])] += 1

    def one_label_each(self, made: list[Row] | Encoded) -> None:
        """Count one prompt's rows, each made of one label of its own (method "all")."""
        if isinstance(made, Encoded):
            found = made.columns["source"]
        else:
            found = [row["source"] for row in made]
        self.rows.update(found)
        self.labels.update(found)


# --- who labeled a row ----------------------------------------------------------------------


def labeler_emails(*, session: Session) -> dict[int, str]:
    """user id -> email, for rows that name their labelers."""
    from app.auth import service as auth_service

    return {u.id: u.email for u in auth_service.list_users(session=session)}


def labeler_of(label: Label, emails: dict[int, str]) -> str:
    """Who wrote a label: the labeler's email, or "import" for an imported one."""
    return emails.get(label.user_id, "import") if label.user_id else "import"


def stamp(label: Label) -> str:
    """When a label was stored, as ISO text."""
    value = label.created_at
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def with_labelers(row: Row, made_from: list[Label], emails: dict[int, str]) -> Row:
    """The row plus who labeled it and when: `labelers` (emails; "import" for an imported
    label) and `annotated_at` (ISO times), one entry per annotation the row came from."""
    return row | {
        "labelers": [labeler_of(x, emails) for x in made_from],
        "annotated_at": [stamp(x) for x in made_from],
    }


# --- reading a project ----------------------------------------------------------------------


def _prompt_id_range(session: Session, project: Project) -> tuple[int, int]:
    query = select(func.min(Prompt.id), func.max(Prompt.id)).where(Prompt.project_id == project.id)
    low, high = session.execute(query).one()
    return low or 0, high or 0


def reporting(
    found: Iterator[T],
    prompt_id: Callable[[T], int],
    session: Session,
    project: Project,
    progress: Progress,
    made: list[int] | None = None,
) -> Iterator[T]:
    """The prompts of `found`, telling `progress` every PROGRESS_EVERY prompts how many there
    were so far (or `made[0]`, the rows made of them) and how far through the project's
    prompt ids they are."""
    low, high = _prompt_id_range(session, project)
    n = 0
    for n, item in enumerate(found, 1):
        if n % PROGRESS_EVERY == 0:
            progress(n if made is None else made[0], prompt_id(item) - low, high - low)
        yield item
    progress(n if made is None else made[0], high - low, high - low)


def made_rows(
    *,
    session: Session,
    project: Project,
    build: Builder,
    excluded: Collection[int] = (),
    batch: int = BATCH,
    times: bool = True,
    flags: bool = False,
    progress: Progress | None = None,
    made: list[int] | None = None,
    tally: Tally | None = None,
) -> Iterator[tuple[PromptLabels, list[Made]]]:
    """Each prompt of the project that has rows (id order, gold items left out) with the rows
    `build` makes of its live labels of its sources (`Builder.sources`), the labels of
    `excluded` labelers left out (`tally` counts the rows and labels by source). The next
    batch of prompts is read ahead on `session` (it must be this iteration's alone). Without
    `times` the labels carry no time; with `flags` their flags. `progress` hears of the
    prompts read (or of the rows made, counted in `made[0]`)."""
    found = prompt_labels(
        session,
        project.id,
        build.reads,
        excluded,
        with_responses=build.texts,
        keep_unlabeled=build.every_prompt,
        retired=not build.every_prompt,
        batch=batch,
        read_ahead=True,
        times=times,
        flags=flags,
        sources=build.sources,
    )
    if progress is not None:
        found = reporting(found, lambda labels: labels.prompt_id, session, project, progress, made)
    for labels in found:
        rows = build(labels)
        if rows:
            if made is not None:
                made[0] += len(rows)
            if tally is not None:
                tally.made(rows)
            yield labels, rows


def snapshot_rows(
    *,
    session: Session,
    project: Project,
    params: dict[str, Any],
    progress: Progress | None = None,
    tally: Tally | None = None,
) -> Rows:
    """Stream (external id, rows) of every prompt for the canonical `params`; `progress`
    hears of the prompts read so far (rows, done, total: by prompt id); `tally` counts the
    rows and their labels by source."""
    emails = labeler_emails(session=session) if params.get("with_labelers") else None
    excluded = aggregation.excluded_user_ids(session=session, project_id=project.id)
    build = builder(session=session, project=project, params=params)
    if build.kind == DatasetKind.rankings and params["method"] == EVERY and emails is None:
        found = live_payloads(
            session, project.id, "ranking", excluded, read_ahead=True, sources=build.sources
        )
        if progress is not None:
            found = reporting(found, lambda item: item[0].id, session, project, progress)
        for external_id, made_of in templates.encoded_rankings(found, build):
            if tally is not None:
                tally.one_label_each(made_of)
            yield external_id, made_of
        return
    for labels, made in made_rows(
        session=session,
        project=project,
        build=build,
        excluded=excluded,
        times=emails is not None,
        progress=progress,
        tally=tally,
    ):
        if emails is None:
            yield labels.external_id, [m.row for m in made]
        else:
            yield labels.external_id, [with_labelers(m.row, m.labels, emails) for m in made]
