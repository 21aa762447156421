"""A ranking payload with ties, read one way everywhere.

`{"ranking": [a, [b, c], d]}`: best first; an inner list is a group of tied responses (here
b and c share second place); a flat list has no ties. Every reader (consensus, leaderboard,
quality, snapshots, exports) goes through these functions instead of indexing the list.
"""

from collections.abc import Iterator, Sequence
from itertools import combinations
from typing import Any

Ranking = Sequence[Any]
"""Response ids best first; an element may be a list of tied ids."""


def groups(ranking: Ranking) -> list[list[int]]:
    """The ranking as groups of tied response ids, best group first (singletons for no tie)."""
    return [
        [int(r) for r in entry] if isinstance(entry, list | tuple) else [int(entry)]
        for entry in ranking
    ]


def order(ranking: Ranking) -> list[int]:
    """Every response id once, best first (tied ones in the order the labeler gave them)."""
    return [rid for group in groups(ranking) for rid in group]


def order_and_ranks(ranking: Ranking) -> tuple[list[int], list[int]]:
    """(order(ranking), ranks(ranking)) in one pass; a flat ranking of ints (no ties, the
    common case) without building its groups."""
    if all(type(entry) is int for entry in ranking):
        return list(ranking), list(range(len(ranking)))
    flat: list[int] = []
    places: list[int] = []
    for g, group in enumerate(groups(ranking)):
        flat += group
        places += [g] * len(group)
    return flat, places


def has_ties(ranking: Ranking) -> bool:
    """Whether any group holds two or more responses."""
    return any(isinstance(entry, list | tuple) and len(entry) > 1 for entry in ranking)


def ranks(ranking: Ranking) -> list[int]:
    """The group index (0 = best) of each response of `order(ranking)`: equal ranks are ties."""
    return [g for g, group in enumerate(groups(ranking)) for _ in group]


def pairs(ranking: Ranking) -> Iterator[tuple[int, int, bool]]:
    """Every pair (first, second, tied) of the ranking: `first` above `second` unless tied."""
    flat, rank = order(ranking), ranks(ranking)
    for i, j in combinations(range(len(flat)), 2):
        yield flat[i], flat[j], rank[i] == rank[j]


def values(ranking: Ranking) -> dict[int, float]:
    """A value per response, higher is better: n − mid-rank (tied responses share the mean of
    the places they cover, so a flat ranking of n gives n, n−1, …, 1)."""
    out: dict[int, float] = {}
    n = len(order(ranking))
    place = 0
    for group in groups(ranking):
        mid = place + (len(group) - 1) / 2
        for rid in group:
            out[rid] = float(n - mid)
        place += len(group)
    return out
