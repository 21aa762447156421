"""Consensus of several labelers' rankings of one prompt, and aggregation of ratings.

Pure functions over plain data: a *ranking* is a sequence of response ids, best first, written
by one labeler for one prompt. Response ids are ints or strs; within one prompt they must be
mutually comparable (all ints or all strs), because "smallest id" is the last tie-break.

A ranking may hold ties: an inner list (or tuple) is a group of responses at the same place,
e.g. ``[a, [b, c], d]``. A tie is half a vote each way: it adds nothing to either side's margin,
and it dilutes the consensus margin of a pair that others ordered. Two responses are tied in the
consensus when some ranking tied them and no majority orders them (see ``Consensus.groups``).

Rankings may cover different subsets of a prompt's responses. A ranking implies pairwise
preferences only among the responses it contains; responses that no ranking contains are not
placed in the consensus but listed in ``Consensus.unranked``.

Deterministic tie-break order (used by both methods, and by ranked pairs wherever two locked
pairs are equally strong or two responses are not ordered by any locked pair):

1. higher net pairwise score, i.e. the sum over all other responses of
   (labelers preferring this response) - (labelers preferring the other);
2. smaller response id.

Nothing depends on the order in which rankings are given.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import combinations
from math import sqrt
from typing import TypeVar, cast

from app.projects.kinds import RatingScale

ResponseId = int | str
LabelerId = Hashable
Entry = ResponseId | Sequence[ResponseId]
"""One place of a ranking: a response id, or a list/tuple of tied ones."""


class ConsensusMethod(StrEnum):
    """How many labelers' rankings of one prompt become one."""

    ranked_pairs = "ranked-pairs"
    """Tideman's ranked pairs: Condorcet-consistent, locks the strongest majorities first."""
    borda = "borda"
    """Net pairwise score (classic Borda points on complete rankings)."""


__all__ = [
    "Consensus",
    "RankedPair",
    "RatingSummary",
    "aggregate_ratings",
    "consensus_pairs",
    "consensus_ranking",
    "consensus_rankings",
    "kendall_tau",
    "mean_kendall_tau",
]


@dataclass(frozen=True, slots=True)
class Consensus:
    """One prompt's consensus ranking and the pairwise votes behind it."""

    ranking: tuple[ResponseId, ...]
    """Covered responses (those in at least one ranking), best first."""
    unranked: tuple[ResponseId, ...]
    """Responses of the prompt that no ranking contains (sorted by id); not in ``ranking``."""
    votes: tuple[tuple[float, ...], ...]
    """``votes[i][j]``: how many rankings put ``ranking[i]`` above ``ranking[j]`` (their total
    weight when the rankings are weighted); a ranking that ties the two adds half to each."""
    n_rankings: int
    """Number of rankings used (empty rankings are not counted)."""
    method: ConsensusMethod
    groups: tuple[tuple[ResponseId, ...], ...] = ()
    """``ranking`` cut into groups of tied responses (consecutive in ``ranking``): a response
    joins the group before it when some ranking tied it with every member and no majority
    orders it against any of them. Without ties every group is one response."""
    rows: Sequence[Sequence[Sequence[int]]] = field(default=(), repr=False, compare=False)
    """The rankings used, as groups of item indexes (what ``agreement`` is computed from)."""

    @property
    def agreement(self) -> float | None:
        """Mean pairwise Kendall tau between labelers (see ``mean_kendall_tau``), computed
        when asked: it is quadratic in the rankings, and a snapshot needs only the order."""
        return _mean_tau(self.rows)


@dataclass(frozen=True, slots=True)
class RankedPair:
    """One (chosen, rejected) pair implied by a consensus ranking."""

    chosen: ResponseId
    rejected: ResponseId
    margin: float
    """(chosen_votes - rejected_votes) / (chosen_votes + rejected_votes), in [-1, 1]; 0.0 when
    no labeler compared the two (the order then follows from other pairs or the tie-break)."""
    chosen_votes: float
    rejected_votes: float
    tied: bool = False
    """The two are in one group of the consensus (``Consensus.groups``): neither is better."""


@dataclass(frozen=True, slots=True)
class RatingSummary:
    """Aggregated rating of one response."""

    mean: float
    count: int


def _groups_of(ranking: Sequence[Entry]) -> list[list[ResponseId]]:
    """A ranking as groups of tied ids (a lone id is a group of one)."""
    return [list(e) if isinstance(e, list | tuple) else [cast(ResponseId, e)] for e in ranking]


def _index_rankings(
    rankings: Iterable[Sequence[Entry]],
    responses: Sequence[ResponseId] | None,
    weights: Sequence[float] | None = None,
) -> tuple[list[ResponseId], list[list[list[int]]], list[ResponseId], list[float] | None]:
    """Validate rankings; map ids to indices in id order. Returns items, rows (each a list of
    groups of indices), unranked and the weights of the non-empty rankings."""
    rows: list[list[list[ResponseId]]] = []
    kept: list[float] = []
    seen: set[ResponseId] = set()
    for number, ranking in enumerate(rankings):
        groups = [g for g in _groups_of(ranking) if g]
        flat = [x for g in groups for x in g]
        if len(set(flat)) != len(flat):
            raise ValueError(f"ranking #{number} lists a response twice: {list(ranking)!r}")
        if flat:
            rows.append(groups)
            seen.update(flat)
            if weights is not None:
                kept.append(float(weights[number]))
    unranked: list[ResponseId] = []
    if responses is not None:
        known = set(responses)
        unknown = seen - known
        if unknown:
            raise ValueError(f"rankings contain unknown response ids: {sorted(unknown)!r}")
        unranked = sorted(known - seen)
    items = sorted(seen)
    position = {item: i for i, item in enumerate(items)}
    rows_out = [[[position[x] for x in group] for group in row] for row in rows]
    return items, rows_out, unranked, kept if weights is not None else None


def _vote_matrix(
    n: int, rows: list[list[list[int]]], weights: list[float] | None = None
) -> tuple[list[list], list[list]]:
    """Pairwise votes ``m[i][j]`` (rows, or their weight, with i above j; a tie is half each
    way) and tie weights ``t[i][j]`` (rows that tie i and j)."""
    m: list[list] = [[0] * n for _ in range(n)]
    t: list[list] = [[0] * n for _ in range(n)]
    for number, row in enumerate(rows):
        w = 1 if weights is None else weights[number]
        below: list[int] = [x for group in row for x in group]
        for group in row:
            below = below[len(group) :]
            for a, i in enumerate(group):
                mi = m[i]
                for j in below:
                    mi[j] += w
                for j in group[a + 1 :]:
                    mi[j] += w / 2
                    m[j][i] += w / 2
                    t[i][j] += w
                    t[j][i] += w
    return m, t


def _tied_groups(order: list[int], m: list[list], t: list[list]) -> list[list[int]]:
    """Cut a consensus order into groups of tied responses (see ``Consensus.groups``)."""
    groups: list[list[int]] = []
    for x in order:
        last = groups[-1] if groups else None
        if last and all(m[g][x] == m[x][g] and t[g][x] > 0 for g in last):
            last.append(x)
        else:
            groups.append([x])
    return groups


def _ranked_pairs(n: int, m: list[list[int]], tiebreak: list[int]) -> list[int]:
    """Tideman's ranked pairs on vote matrix ``m``; ``tiebreak[i]`` is i's tie-break rank."""
    majorities = []
    for i in range(n):
        mi = m[i]
        for j in range(i + 1, n):
            margin = mi[j] - m[j][i]
            if margin > 0:
                majorities.append((-margin, -mi[j], tiebreak[i], tiebreak[j], i, j))
            elif margin < 0:
                majorities.append((margin, -m[j][i], tiebreak[j], tiebreak[i], j, i))
    majorities.sort()
    # reach[k]: bitmask of nodes reachable from k through locked pairs (transitive closure).
    reach = [0] * n
    for *_, winner, loser in majorities:
        if (reach[loser] >> winner) & 1:
            continue  # locking winner > loser would close a cycle: drop this pair
        gained = reach[loser] | (1 << loser)
        bit = 1 << winner
        for k in range(n):
            if k == winner or reach[k] & bit:
                reach[k] |= gained
    # Topological order of the locked graph; among free nodes, the best tie-break rank first.
    order: list[int] = []
    remaining = sorted(range(n), key=tiebreak.__getitem__)
    while remaining:
        for node in remaining:
            bit = 1 << node
            if not any(reach[other] & bit for other in remaining):
                break
        order.append(node)
        remaining.remove(node)
    return order


def consensus_ranking(
    rankings: Iterable[Sequence[Entry]],
    *,
    responses: Sequence[ResponseId] | None = None,
    method: ConsensusMethod | str = ConsensusMethod.ranked_pairs,
    weights: Sequence[float] | None = None,
) -> Consensus:
    """Combine labelers' rankings (best first, ties as inner lists) of one prompt into one.

    ``method="ranked-pairs"`` (Tideman): majorities are locked strongest first, strength being
    the margin, then the winning votes, then the tie-break order of winner and loser; a pair
    that would close a cycle is dropped. ``method="borda"``: order by net pairwise score, which
    on complete rankings orders exactly as classic Borda points (K-1 for first ... 0 for last)
    and on partial rankings counts only the preferences a ranking implies. ``responses``
    (optional) is the prompt's full set of response ids: ids outside it are an error, ids
    never ranked are returned in ``unranked``. ``weights`` (optional, one per ranking, ≥ 0)
    makes each ranking count that much in every pairwise vote (e.g. labeler reliability).
    """
    rankings = list(rankings)
    if weights is not None and len(weights) != len(rankings):
        raise ValueError(f"{len(weights)} weights for {len(rankings)} rankings")
    items, rows, unranked, kept = _index_rankings(rankings, responses, weights)
    n = len(items)
    m, t = _vote_matrix(n, rows, kept)
    net = [sum(m[i]) - sum(row[i] for row in m) for i in range(n)]
    by_tiebreak = sorted(range(n), key=lambda i: -net[i])  # stable: ties keep smaller id first
    if method == ConsensusMethod.borda:
        order = by_tiebreak
    elif method == ConsensusMethod.ranked_pairs:
        tiebreak = [0] * n
        for rank, i in enumerate(by_tiebreak):
            tiebreak[i] = rank
        order = _ranked_pairs(n, m, tiebreak)
    else:
        raise ValueError(f"unknown consensus method {method!r}")
    return Consensus(
        ranking=tuple(items[i] for i in order),
        unranked=tuple(unranked),
        votes=tuple(tuple(m[i][j] for j in order) for i in order),
        n_rankings=len(rows),
        method=ConsensusMethod(method),
        groups=tuple(tuple(items[i] for i in g) for g in _tied_groups(order, m, t)),
        rows=rows,
    )


def consensus_rankings(
    rankings_by_prompt: Mapping[Hashable, Iterable[Sequence[Entry]]],
    *,
    method: ConsensusMethod | str = ConsensusMethod.ranked_pairs,
) -> dict[Hashable, Consensus]:
    """Run ``consensus_ranking`` for every prompt of a mapping prompt id -> rankings."""
    return {
        prompt: consensus_ranking(rankings, method=method)
        for prompt, rankings in rankings_by_prompt.items()
    }


def consensus_pairs(consensus: Consensus) -> list[RankedPair]:
    """All C(K,2) (chosen, rejected) pairs of a consensus ranking, best pairs first; a pair
    inside one tied group is marked ``tied`` (its order says nothing)."""
    ranking, votes = consensus.ranking, consensus.votes
    group_of = {rid: g for g, group in enumerate(consensus.groups) for rid in group}
    pairs = []
    for i, j in combinations(range(len(ranking)), 2):
        won, lost = votes[i][j], votes[j][i]
        margin = (won - lost) / (won + lost) if won + lost else 0.0
        tied = ranking[i] in group_of and group_of[ranking[i]] == group_of.get(ranking[j])
        pairs.append(RankedPair(ranking[i], ranking[j], margin, won, lost, tied))
    return pairs


Item = TypeVar("Item", bound=Hashable)


def tau_b(x: Mapping[Item, float], y: Mapping[Item, float]) -> float | None:
    """Kendall τ-b between two labels (item -> value, equal values tied) over their common
    items (None when fewer than 2, or when either ties them all)."""
    common = [item for item in x if item in y]
    concordant = discordant = ties_x = ties_y = 0
    for a, b in combinations(common, 2):
        dx, dy = x[a] - x[b], y[a] - y[b]
        if dx == 0 and dy == 0:
            continue
        if dx == 0:
            ties_x += 1
        elif dy == 0:
            ties_y += 1
        elif (dx > 0) == (dy > 0):
            concordant += 1
        else:
            discordant += 1
    denominator = ((concordant + discordant + ties_x) * (concordant + discordant + ties_y)) ** 0.5
    return (concordant - discordant) / denominator if denominator else None


def _tau_rows(x: Sequence[Sequence[Hashable]], y: Sequence[Sequence[Hashable]]) -> float | None:
    """Kendall τ-b between two rankings given as groups of tied items (see `tau_b`)."""
    xrank = {item: g for g, group in enumerate(x) for item in group}
    yrank = {item: g for g, group in enumerate(y) for item in group}
    return tau_b(xrank, yrank)


def _mean_tau(rows: Sequence[Sequence[Sequence[Hashable]]]) -> float | None:
    """Mean of Kendall tau-b over all pairs of rows where it is defined."""
    places = [{item: g for g, group in enumerate(row) for item in group} for row in rows]
    taus = [t for x, y in combinations(places, 2) if (t := tau_b(x, y)) is not None]
    return sum(taus) / len(taus) if taus else None


def kendall_tau(x: Sequence[Entry], y: Sequence[Entry]) -> float | None:
    """Kendall tau-b between two rankings over the items both contain; None if undefined.

    On strict rankings (no ties) this is (concordant - discordant) / C(n, 2) over the n common
    items; with ties, tau-b: pairs tied in both count nowhere, pairs tied in one only shrink
    the denominator.
    """
    return _tau_rows(_groups_of(x), _groups_of(y))


def mean_kendall_tau(rankings: Iterable[Sequence[Entry]]) -> float | None:
    """Agreement: mean Kendall tau-b over labeler pairs where it is defined, else None."""
    return _mean_tau([_groups_of(r) for r in rankings if r])


def rating_value(value: float | bool | str, scale: RatingScale | str) -> float:
    """One stored rating as a number: thumbs -> +1/-1 (stored as 1/-1, True/False or
    "up"/"down"), 0-5 as is; ValueError for a value off its scale."""
    if scale == RatingScale.thumbs:
        if isinstance(value, bool):
            return 1.0 if value else -1.0
        if value in ("up", "down"):
            return 1.0 if value == "up" else -1.0
        if isinstance(value, int) and value in (1, -1):
            return float(value)
        raise ValueError(f"thumbs rating must be True/False, 1/-1 or 'up'/'down', got {value!r}")
    if scale == RatingScale.zero_to_five:
        if isinstance(value, bool | str) or not 0 <= value <= 5:
            raise ValueError(f"0-5 rating must be a number from 0 to 5, got {value!r}")
        return float(value)
    raise ValueError(f"unknown rating scale {scale!r}")


def _mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and population standard deviation (ddof=0)."""
    mean = sum(values) / len(values)
    return mean, sqrt(sum((v - mean) ** 2 for v in values) / len(values))


def aggregate_ratings(
    ratings: Iterable[tuple[LabelerId, ResponseId, float | bool | str]],
    *,
    scale: RatingScale | str,
    normalize: bool = False,
) -> dict[ResponseId, RatingSummary]:
    """Mean rating and count per response from (labeler, response, value) triples.

    Values: ``scale="thumbs"`` takes True/False, 1/-1 or "up"/"down" (-> +1/-1);
    ``scale="0-5"`` takes numbers from 0 to 5. With ``normalize=True`` each value becomes a
    z-score over all of that labeler's ratings in this call (population std). Rules for
    labelers whose own z-score is undefined: a labeler with a single rating is scored against
    the pooled mean and std of all ratings in the call; a labeler with several ratings but no
    variance (always the same value) told us nothing about relative quality, so all their
    ratings become 0.0. Anything with a zero pooled std also becomes 0.0.
    """
    triples = [(labeler, response, rating_value(v, scale)) for labeler, response, v in ratings]
    if normalize and triples:
        by_labeler: dict[LabelerId, list[float]] = {}
        for labeler, _, value in triples:
            by_labeler.setdefault(labeler, []).append(value)
        pooled = _mean_std([value for _, _, value in triples])
        stats = {}
        for labeler, values in by_labeler.items():
            mean, std = _mean_std(values)
            stats[labeler] = pooled if len(values) == 1 else (mean, std)
        triples = [
            (labeler, response, (value - stats[labeler][0]) / stats[labeler][1])
            if stats[labeler][1] > 0
            else (labeler, response, 0.0)
            for labeler, response, value in triples
        ]
    sums: dict[ResponseId, list[float]] = {}
    for _, response, value in triples:
        acc = sums.setdefault(response, [0.0, 0])
        acc[0] += value
        acc[1] += 1
    return {
        response: RatingSummary(total / count, int(count))
        for response, (total, count) in sums.items()
    }
