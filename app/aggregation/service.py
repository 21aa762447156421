"""Aggregates read from the database: consensus per prompt, ratings, leaderboard, exclusions.

The algorithms live in `consensus.py` and `leaderboard.py` (pure); this module feeds them the
live labels (`app.labeling.labels.prompt_labels`): no superseded annotation, no excluded
labeler. An imported ranking (source=import, no user) counts as one voter. Exclusions are
labeling's (`app.labeling.exclusions`: no tasks, no counted labels), named here for callers.
"""

from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from itertools import combinations
from math import sqrt

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.aggregation.consensus import (
    Consensus,
    ConsensusMethod,
    RatingSummary,
    aggregate_ratings,
    consensus_ranking,
    rating_value,
)
from app.aggregation.leaderboard import Comparisons, elo_ratings, leaderboard
from app.aggregation.schemas import Leaderboard, LeaderboardRow
from app.errors import Invalid
from app.labeling import ranks
from app.labeling.exclusions import (
    exclude_labeler,
    excluded_user_ids,
    include_labeler,
    list_exclusions,
    remove_exclusion,
)
from app.labeling.labels import Label, PromptLabels, prompt_labels
from app.labeling.sources import Sources
from app.projects.kinds import ProjectKind
from app.projects.models import Project, Prompt, Response

Normalizer = Callable[[int | None, float], float]

__all__ = [
    "Label",
    "PromptLabels",
    "aspect_means",
    "consensus_by_prompt",
    "consensus_of",
    "exclude_labeler",
    "include_labeler",
    "excluded_user_ids",
    "list_exclusions",
    "generated_model_comparisons",
    "generated_model_ratings",
    "model_comparisons",
    "model_leaderboard",
    "prompt_consensus",
    "prompt_labels",
    "rating_normalizer",
    "rating_value",
    "ratings_of",
    "remove_exclusion",
]


# --- consensus ------------------------------------------------------------------------------


def _method(method: str) -> ConsensusMethod:
    if method not in ConsensusMethod.__members__.values():
        names = ", ".join(ConsensusMethod)
        raise Invalid(f"method must be one of {names}; not {method!r}", field="method")
    return ConsensusMethod(method)


def consensus_of(
    labels: PromptLabels,
    *,
    method: ConsensusMethod | str = ConsensusMethod.ranked_pairs,
    weights: Mapping[int | None, float] | None = None,
) -> Consensus:
    """The consensus of one prompt's live rankings (all of its responses passed through);
    with `weights`, each labeler's ranking counts by their weight (unlisted: 1)."""
    ranked = labels.of_kind("ranking")
    rankings = [ranks.groups(label.payload["ranking"]) for label in ranked]
    return consensus_ranking(
        rankings,
        responses=list(labels.responses),
        method=_method(method),
        weights=None if weights is None else [weights.get(x.user_id, 1.0) for x in ranked],
    )


def consensus_by_prompt(
    *,
    session: Session,
    project: Project,
    method: ConsensusMethod | str = ConsensusMethod.ranked_pairs,
    include_excluded: bool = False,
    after: int = 0,
) -> Iterator[tuple[PromptLabels, Consensus]]:
    """Consensus of every ranked prompt (id > `after`), in prompt id order (streamed)."""
    _method(method)
    excluded = (
        set() if include_excluded else excluded_user_ids(session=session, project_id=project.id)
    )
    for labels in prompt_labels(session, project.id, ("ranking",), excluded, after=after):
        yield labels, consensus_of(labels, method=method)


def prompt_consensus(
    *,
    session: Session,
    project: Project,
    prompt_id: int,
    method: ConsensusMethod | str = ConsensusMethod.ranked_pairs,
    include_excluded: bool = False,
) -> Consensus | None:
    """The consensus of one prompt, or None when it has no live ranking."""
    _method(method)
    excluded = (
        set() if include_excluded else excluded_user_ids(session=session, project_id=project.id)
    )
    for labels in prompt_labels(session, project.id, ("ranking",), excluded, only=prompt_id):
        return consensus_of(labels, method=method)
    return None


# --- ratings --------------------------------------------------------------------------------


def rating_normalizer(
    *, session: Session, project: Project, sources: str = Sources.all
) -> Normalizer:
    """Per-labeler z-scores over the whole project (its labels of `sources`: a snapshot's
    normalises only what it keeps), by the rules of `aggregate_ratings`.

    One streamed pass collects each labeler's count, sum and sum of squares: a labeler with a
    single rating is scored against the pooled mean and std, a labeler without variance gets
    0.0, as does everything when the pooled std is 0.
    """
    excluded = excluded_user_ids(session=session, project_id=project.id)
    sums: dict[int | None, list[float]] = {}
    for labels in prompt_labels(
        session, project.id, ("rating",), excluded, with_responses=False, sources=sources
    ):
        for label in labels.labels:
            acc = sums.setdefault(label.user_id, [0, 0.0, 0.0])
            for value in label.payload["scores"].values():
                v = rating_value(value, project.rating_scale)
                acc[0] += 1
                acc[1] += v
                acc[2] += v * v

    def mean_std(n: float, s: float, s2: float) -> tuple[float, float]:
        mean = s / n
        return mean, sqrt(max(s2 / n - mean * mean, 0.0))

    total = [sum(acc[i] for acc in sums.values()) for i in range(3)]
    pooled = mean_std(*total) if total[0] else (0.0, 0.0)
    stats = {u: pooled if acc[0] == 1 else mean_std(*acc) for u, acc in sums.items()}

    def normalize(user_id: int | None, value: float) -> float:
        mean, std = stats.get(user_id, pooled)
        return (value - mean) / std if std > 1e-12 else 0.0

    return normalize


def ratings_of(
    labels: PromptLabels,
    *,
    scale: str,
    normalizer: Normalizer | None = None,
    weights: Mapping[int | None, float] | None = None,
) -> dict[int, RatingSummary]:
    """Mean rating and count per response of one prompt (z-scores with a normalizer; a
    weighted mean with per-labeler `weights`, unlisted labelers weighing 1)."""
    triples = [
        (label.user_id, int(rid), value)
        for label in labels.of_kind("rating")
        for rid, value in label.payload["scores"].items()
    ]
    if normalizer is None and weights is None:
        return {int(rid): s for rid, s in aggregate_ratings(triples, scale=scale).items()}
    sums: dict[int, list[float]] = {}
    for user_id, rid, value in triples:
        v = rating_value(value, scale)
        w = 1.0 if weights is None else weights.get(user_id, 1.0)
        acc = sums.setdefault(rid, [0.0, 0.0, 0])
        acc[0] += w * (normalizer(user_id, v) if normalizer else v)
        acc[1] += w
        acc[2] += 1
    return {
        rid: RatingSummary(total / weight if weight > 0 else 0.0, int(n))
        for rid, (total, weight, n) in sums.items()
    }


def aspect_means(
    labels: PromptLabels, names: list[str], weights: Mapping[int | None, float] | None = None
) -> dict[int, dict[str, float]]:
    """Per response of one prompt, the mean answer to each named per-response Likert question
    (over the labels that answered it; weighted with per-labeler `weights`, unlisted ones 1)."""
    sums: dict[tuple[int, str], list[float]] = {}
    for label in labels.labels:
        answers = label.payload.get("answers") or {}
        w = 1.0 if weights is None else weights.get(label.user_id, 1.0)
        for name in names:
            for rid, value in (answers.get(name) or {}).items():
                acc = sums.setdefault((int(rid), name), [0.0, 0.0])
                acc[0] += w * value
                acc[1] += w
    out: dict[int, dict[str, float]] = {}
    for (rid, name), (total, weight) in sorted(sums.items()):
        out.setdefault(rid, {})[name] = total / weight if weight > 0 else 0.0
    return out


# --- leaderboard ----------------------------------------------------------------------------


def _outcomes(labels: PromptLabels, scale: str) -> Iterator[tuple[int, str, str, str]]:
    """(annotation id, model a, model b, outcome) for each pair of different, known models."""
    model = {rid: m for rid, (_, m) in labels.responses.items()}
    for label in labels.labels:
        if label.kind == "ranking":
            for better, worse, tied in ranks.pairs(label.payload["ranking"]):
                a, b = model.get(better), model.get(worse)
                if a and b and a != b:
                    yield label.annotation_id, a, b, "tie" if tied else "a"  # a tie is half
        elif label.kind == "rating":
            scores = [
                (model.get(int(rid)), rating_value(v, scale))
                for rid, v in sorted(label.payload["scores"].items(), key=lambda x: int(x[0]))
            ]
            for (a, sa), (b, sb) in combinations(scores, 2):
                if a and b and a != b:
                    yield label.annotation_id, a, b, "a" if sa > sb else "b" if sb > sa else "tie"


def model_comparisons(*, session: Session, project: Project) -> Comparisons:
    """Pairwise outcomes between models from the live rankings and ratings, in label order."""
    excluded = excluded_user_ids(session=session, project_id=project.id)
    rows = [
        row
        for labels in prompt_labels(session, project.id, ("ranking", "rating"), excluded)
        for row in _outcomes(labels, project.rating_scale)
    ]
    rows.sort(key=lambda row: row[0])  # stable: the order inside one annotation is kept
    return Comparisons.from_outcomes((a, b, outcome) for _, a, b, outcome in rows)


def model_leaderboard(
    *, session: Session, project: Project, rounds: int = 1000, seed: int = 0
) -> Leaderboard:
    """Bradley-Terry with bootstrap intervals, overlap-aware ranks and Elo, per model."""
    if not 1 <= rounds <= 100_000:
        raise Invalid("rounds must be from 1 to 100000", field="rounds")
    comparisons = model_comparisons(session=session, project=project)
    rows = _leaderboard_rows(comparisons, rounds=rounds, seed=seed)
    return Leaderboard(
        project_id=project.id, comparisons=len(comparisons.a), rounds=rounds, seed=seed, rows=rows
    )


def _leaderboard_rows(comparisons: Comparisons, *, rounds: int, seed: int) -> list[LeaderboardRow]:
    """Bradley-Terry rows with bootstrap intervals and ranks, and each model's Elo."""
    elo = elo_ratings(comparisons)
    return [
        LeaderboardRow(
            model=str(r.model),
            rating=r.rating,
            lower=r.lower,
            upper=r.upper,
            rank=r.rank,
            comparisons=r.comparisons,
            elo=elo[r.model],
        )
        for r in leaderboard(comparisons, rounds=rounds, seed=seed)
    ]


def generated_model_comparisons(*, session: Session) -> Comparisons:
    """Outcomes between registered models (keyed by model id) from the live rankings, in every
    project, of responses those models generated; imported responses do not count."""
    project_ids = session.scalars(
        select(Prompt.project_id)
        .join(Response, Response.prompt_id == Prompt.id)
        .where(Response.model_id.is_not(None))
        .distinct()
    ).all()
    rows: list[tuple[int, int, str, str]] = []
    for project in session.scalars(select(Project).where(Project.id.in_(project_ids))):
        if project.kind != ProjectKind.ranking:
            continue
        model_of = dict(
            session.execute(
                select(Response.id, Response.model_id)
                .join(Prompt, Prompt.id == Response.prompt_id)
                .where(Prompt.project_id == project.id, Response.model_id.is_not(None))
            ).all()
        )
        excluded = excluded_user_ids(session=session, project_id=project.id)
        for labels in prompt_labels(session, project.id, ("ranking",), excluded):
            by_id = {rid: (text, model_of.get(rid)) for rid, (text, _) in labels.responses.items()}
            rows.extend(_outcomes(replace(labels, responses=by_id), project.rating_scale))  # type: ignore[arg-type]
    rows.sort(key=lambda row: row[0])
    return Comparisons.from_outcomes((a, b, outcome) for _, a, b, outcome in rows)


def generated_model_ratings(
    *, session: Session, rounds: int = 1000, seed: int = 0
) -> tuple[list[LeaderboardRow], Comparisons]:
    """Bradley-Terry rows (model = registered model id) over every project, and the outcomes."""
    if not 1 <= rounds <= 100_000:
        raise Invalid("rounds must be from 1 to 100000", field="rounds")
    comparisons = generated_model_comparisons(session=session)
    rows = _leaderboard_rows(comparisons, rounds=rounds, seed=seed)
    return rows, comparisons
