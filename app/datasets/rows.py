"""The rows of each snapshot kind, built per prompt from its live labels (TRL conventions).

Every generator yields (external id, rows of that prompt) in prompt id order, rows in
annotation id order, so that the same data always gives the same file.
"""

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app import jsontext
from app.aggregation import service as aggregation
from app.aggregation.consensus import ConsensusMethod, consensus_pairs
from app.datasets.kinds import (
    DatasetKind,
    kto_row,
    pair_row,
    pair_rows,
    prompt_of,
    prompt_row,
    ranking_row,
    rating_row,
    sft_row,
)
from app.datasets.templates import RankingLines
from app.datasets.writer import Encoded
from app.errors import Invalid
from app.labeling import ranks
from app.labeling.labels import (
    Label,
    PromptLabels,
    PromptRow,
    Responses,
    live_payloads,
    prompt_labels,
)
from app.progress import Progress
from app.projects import strength
from app.projects.kinds import ProjectKind, RatingScale
from app.projects.models import Project, Prompt
from app.projects.questions import likert_names

PROGRESS_EVERY = 200
T = TypeVar("T")
Rows = Iterator[tuple[str, list[dict[str, Any]] | Encoded]]
Made = list[tuple[dict[str, Any], list[Label]]]
"""Rows of one prompt, each with the labels it came from."""


Weights = dict[int | None, float] | None


def _sft(labels: PromptLabels, method: str, top_ranked: bool, weights: Weights = None) -> Made:
    rows = [
        (sft_row(labels.messages, d.payload["demonstration"]), [d])
        for d in labels.of_kind("demonstration")
    ]
    if top_ranked and labels.of_kind("ranking"):
        ranking = aggregation.consensus_of(labels, method=method, weights=weights).ranking
        if ranking:
            top = sft_row(labels.messages, labels.responses[int(ranking[0])][0])
            rows.append((top, labels.of_kind("ranking")))
    return rows


def _rankings(
    labels: PromptLabels, method: str, pairs: bool, weights: Weights, scale: list[Any]
) -> Made:
    messages = labels.messages
    text = {rid: t for rid, (t, _) in labels.responses.items()}
    if method == "all":
        made: Made = []
        for x in labels.of_kind("ranking"):
            best_first, places = ranks.order_and_ranks(x.payload["ranking"])
            ranked = [text[rid] for rid in best_first]
            if not pairs:
                if len(set(places)) >= 2:
                    made.append((ranking_row(messages, ranked, places), [x]))
                continue
            margin = strength.margin(scale, x.payload.get("strength"))
            made += [(row, [x]) for row in pair_rows(messages, ranked, places, margin)]
        return made
    consensus = aggregation.consensus_of(labels, method=method, weights=weights)
    if len(consensus.groups) < 2:
        return []  # one response, or all of them tied: no preference
    every = labels.of_kind("ranking")
    if not pairs:
        places = [g for g, group in enumerate(consensus.groups) for _ in group]
        ranked = [text[int(r)] for r in consensus.ranking]
        return [(ranking_row(messages, ranked, places), every)]
    return [
        (
            pair_row(
                messages,
                text[int(p.chosen)],
                text[int(p.rejected)],
                _strength_margin(p.chosen, p.rejected, every, scale, weights)
                if scale
                else p.margin,
            ),
            every,
        )
        for p in consensus_pairs(consensus)
        if not p.tied
    ]


def _strength_margin(
    chosen: Any, rejected: Any, ranked: list[Label], scale: list[Any], weights: Weights
) -> float | None:
    """A consensus pair's margin on a strength scale: the (weighted) mean over the labels that
    judged the pair of +margin when they chose the same response, −margin when they chose the
    other, 0 for a tie; labels without a strength (imports) do not count. None when none did."""
    total = weight = 0.0
    for x in ranked:
        place = {
            rid: g for g, group in enumerate(ranks.groups(x.payload["ranking"])) for rid in group
        }
        if int(chosen) not in place or int(rejected) not in place:
            continue
        a, b = place[int(chosen)], place[int(rejected)]
        value = x.payload.get("strength")
        if a != b and value is None:
            continue
        w = 1.0 if weights is None else weights.get(x.user_id, 1.0)
        m = 0.0 if a == b else (strength.margin(scale, value) or 0.0)
        total += w * (m if a < b else -m)
        weight += w
    return round(total / weight, 6) if weight else None


def _top_bottom(labels: PromptLabels, groups: Any, made_from: list[Label]) -> Made:
    """KTO rows of a ranking: its top group desirable, its bottom group not."""
    if len(groups) < 2:
        return []
    text = {rid: t for rid, (t, _) in labels.responses.items()}
    top = [(kto_row(labels.messages, text[int(r)], True), made_from) for r in groups[0]]
    bottom = [(kto_row(labels.messages, text[int(r)], False), made_from) for r in groups[-1]]
    return top + bottom


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


def _kto(labels: PromptLabels, project: Project, params: dict[str, Any], weights: Weights) -> Made:
    method, scale = params["method"], project.rating_scale
    if project.kind == ProjectKind.ranking:
        if method == "all":
            return [
                row
                for x in labels.of_kind("ranking")
                for row in _top_bottom(labels, ranks.groups(x.payload["ranking"]), [x])
            ]
        consensus = aggregation.consensus_of(labels, method=method, weights=weights)
        return _top_bottom(labels, consensus.groups, labels.of_kind("ranking"))
    made: Made = []
    if method == "all":
        for x in labels.of_kind("rating"):
            for rid, value in x.payload["scores"].items():
                label = rating_label(value, scale, params)
                if label is not None:
                    text = labels.responses[int(rid)][0]
                    made.append((kto_row(labels.messages, text, label), [x]))
        return made
    summary = aggregation.ratings_of(labels, scale=scale, weights=weights)
    every = labels.of_kind("rating")
    for rid, (text, _) in labels.responses.items():
        if rid in summary and (label := desirable(summary[rid].mean, scale, params)) is not None:
            made.append((kto_row(labels.messages, text, label), every))
    return made


def _ratings(
    labels: PromptLabels,
    scale: str,
    normalizer: aggregation.Normalizer | None,
    aspects: list[str],
    weights: Weights = None,
) -> Made:
    """One row per response with a main rating or an answer to a Likert question (`aspects`):
    the main score (normalised when asked) and each aspect's mean under `scores`."""
    summary = aggregation.ratings_of(labels, scale=scale, normalizer=normalizer, weights=weights)
    means = aggregation.aspect_means(labels, aspects, weights) if aspects else {}
    every = labels.labels
    rows = []
    for rid, (text, _) in labels.responses.items():
        if rid not in summary and rid not in means:
            continue
        score = summary[rid].mean if rid in summary else None
        scores = ({} if score is None else {"score": score}) | means.get(rid, {})
        rows.append((rating_row(labels.messages, text, score, scores), every))
    return rows


def _stamp(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def with_labelers(row: dict[str, Any], made_from: list[Label], emails: dict[int, str]) -> dict:
    """The row plus who labeled it and when: `labelers` (emails; "import" for an imported
    label) and `annotated_at` (ISO times), one entry per annotation the row came from."""
    return row | {
        "labelers": [emails.get(x.user_id, "import") if x.user_id else "import" for x in made_from],
        "annotated_at": [_stamp(x.created_at) for x in made_from],
    }


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


def encoded_rankings(found: Iterator[tuple[PromptRow, list[Any], Responses]]) -> Rows:
    """The rankings snapshot of every label (method "all", no labelers), from `live_payloads`,
    and the rankings export's lines: a string prompt's rows as `writer.Encoded` (lines by
    template, columns for Parquet), with no dict per row; a conversation's rows built by
    `_rankings`. Same rows, same bytes."""
    lines = RankingLines()
    loads, encoded = jsontext.loads, jsontext.encoded
    for prompt, payloads, responses in found:
        shown = prompt_of(messages := loads(prompt.messages))
        made = None
        if type(shown) is str:
            made = _encoded_ranked(lines, encoded(shown), payloads, responses)
        if made is None:
            labels = [Label(0, None, "ranking", payload) for payload in payloads]
            found_labels = PromptLabels(prompt.id, prompt.external_id, messages, responses, labels)
            built = _rankings(found_labels, "all", False, None, [])
            if built:
                yield prompt.external_id, [row for row, _ in built]
        elif made.count:
            made.columns["prompt"] = [shown] * made.count
            yield prompt.external_id, made


def _encoded_ranked(
    lines: RankingLines, prompt: bytes, payloads: list[Any], responses: Responses
) -> Encoded | None:
    """One string prompt's ranking rows (all but "prompt" in the columns); None when a shape
    has no template."""
    text = {rid: t for rid, (t, _) in responses.items()}
    enc = {rid: jsontext.encoded(t) for rid, t in text.items()}
    out: list[bytes] = []
    ranked: list[list[str]] = []
    places_of: list[list[int] | None] = []
    tied = False
    order_and_ranks, line_of, get_enc, get_text = (
        ranks.order_and_ranks,
        lines.line,
        enc.__getitem__,
        text.__getitem__,
    )
    is_group = list.__instancecheck__
    for payload in payloads:
        best_first = payload["ranking"]
        if not any(map(is_group, best_first)):  # no ties (the common case)
            if len(best_first) < 2:
                continue  # one response: no preference, no row
            places_of.append(None)
            line = line_of(prompt, list(map(get_enc, best_first)), None)
        else:
            best_first, places = order_and_ranks(best_first)
            if len(set(places)) < 2:
                continue  # everything tied: no preference, no row
            has_ties = places[-1] < len(places) - 1  # else singleton groups: no ties
            places_of.append(places if has_ties else None)
            tied = tied or has_ties
            line = line_of(prompt, list(map(get_enc, best_first)), places_of[-1])
        if line is None:
            return None
        out.append(line)
        ranked.append(list(map(get_text, best_first)))
    columns: dict[str, list[Any]] = {"prompt": [], "responses": ranked}
    tags = {"prompt": "str", "responses": "strlist"}
    if tied:
        columns["ranks"], tags["ranks"] = places_of, "intlist"
    return Encoded(b"".join(out), len(out), columns, tags)


def snapshot_rows(
    *,
    session: Session,
    project: Project,
    params: dict[str, Any],
    progress: Progress | None = None,
) -> Rows:
    """Stream (external id, rows) of every prompt for the canonical `params`; `progress`
    hears of the prompts read so far (rows, done, total: by prompt id)."""
    kind = params["kind"]
    emails = labeler_emails(session=session) if params.get("with_labelers") else None
    excluded = aggregation.excluded_user_ids(session=session, project_id=project.id)
    weights: Weights = None
    if "weights" in params:
        weights = {int(user_id): w for user_id, w in params["weights"].items()}
    build: Callable[[PromptLabels], Made]

    def read(kinds: tuple[str, ...], **options: Any) -> Iterator[PromptLabels]:
        # The reader session is this iteration's alone: the next batch is read ahead.
        found = prompt_labels(session, project.id, kinds, excluded, read_ahead=True, **options)
        if progress is None:
            return found
        return reporting(found, lambda labels: labels.prompt_id, session, project, progress)

    if kind == DatasetKind.rankings and params["method"] == "all" and emails is None:
        plain = live_payloads(session, project.id, "ranking", excluded, read_ahead=True)
        if progress is not None:
            plain = reporting(plain, lambda item: item[0].id, session, project, progress)
        yield from encoded_rankings(plain)
        return

    if kind == DatasetKind.prompts:
        for labels in read((), with_responses=False, keep_unlabeled=True, retired=False):
            yield labels.external_id, [prompt_row(labels.messages)]
        return
    if kind == DatasetKind.sft:
        top = params["include_top_ranked"]
        kinds: tuple[str, ...] = ("demonstration", "ranking") if top else ("demonstration",)
        method = params.get("method", ConsensusMethod.ranked_pairs)
        build = lambda labels: _sft(labels, method, top, weights)  # noqa: E731
    elif kind in (DatasetKind.rankings, DatasetKind.pairs):
        kinds = ("ranking",)
        pairs = kind == DatasetKind.pairs
        levels = project.strength_scale or []
        build = lambda labels: _rankings(labels, params["method"], pairs, weights, levels)  # noqa: E731
    elif kind == DatasetKind.kto:
        if project.kind not in (ProjectKind.ranking, ProjectKind.rating):
            raise Invalid(
                f"kind: a kto snapshot needs a ranking or rating project; {project.name!r} is a "
                f"{project.kind} project",
                field="kind",
            )
        kinds = (project.kind,)
        build = lambda labels: _kto(labels, project, params, weights)  # noqa: E731
    elif kind == DatasetKind.ratings:
        aspects = likert_names(project.questions or [])
        kinds = ("rating", "ranking") if aspects else ("rating",)
        normalizer = (
            aggregation.rating_normalizer(session=session, project=project)
            if params["normalize"]
            else None
        )
        scale = project.rating_scale
        build = lambda labels: _ratings(labels, scale, normalizer, aspects, weights)  # noqa: E731
    else:
        raise ValueError(f"unknown snapshot kind {kind!r}")
    for labels in read(kinds):
        made = build(labels)
        if made:
            rows = [row if emails is None else with_labelers(row, x, emails) for row, x in made]
            yield labels.external_id, rows


def labeler_emails(*, session: Session) -> dict[int, str]:
    """user id -> email, for rows that name their labelers."""
    from app.auth import service as auth_service

    return {u.id: u.email for u in auth_service.list_users(session=session)}
