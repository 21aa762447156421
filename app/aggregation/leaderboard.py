"""Model leaderboards from pairwise outcomes: online Elo and Bradley-Terry with bootstrap CIs.

Pure functions over plain data. A comparison is (model_a, model_b, outcome) with outcome "a"
(model_a won), "b" (model_b won) or "tie"; a tie counts as half a win for each side. Model ids
are ints or strs, mutually comparable (they are listed in sorted order).

Ratings are on the Elo-like scale: ``rating = 1000 + 400 * log10(strength / reference)``, where
the reference is the geometric mean strength of all models (mean rating 1000) or, with
``anchor=model``, that model's strength (it is then exactly 1000 in every bootstrap round, so
its own interval has zero width and the others' intervals are relative to it).

The fit maximises the Bradley-Terry likelihood with a tiny Gaussian prior (``DEFAULT_L2``) so
that undefeated or winless models stay finite. If the comparison graph is disconnected, only
that prior places the components relative to each other: compare ratings within a component.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from math import log

import numpy as np

ModelId = int | str
ELO_PER_NAT = 400 / log(10)
"""Rating points per natural-log unit of strength (Bradley-Terry theta)."""
DEFAULT_L2 = 1e-3
"""Gaussian prior on natural-log strengths (variance 1/l2): keeps undefeated models finite."""
_SCORES = {"a": 1.0, "model_a": 1.0, "b": 0.0, "model_b": 0.0, "tie": 0.5, "tie (bothbad)": 0.5}
_CHUNK = 100  # bootstrap rounds fitted together: bounds memory at ~10 arrays of CHUNK*M*M

__all__ = [
    "Comparisons",
    "ModelRating",
    "bootstrap_bradley_terry",
    "bradley_terry",
    "elo_ratings",
    "leaderboard",
    "overlap_ranks",
]


@dataclass(frozen=True, slots=True, eq=False)
class Comparisons:
    """Pairwise outcomes in array form: row n is models[a[n]] vs models[b[n]], in input order."""

    models: tuple[ModelId, ...]
    a: np.ndarray
    """int64 indices into ``models`` (shape (N,)); lists are converted."""
    b: np.ndarray
    """int64 indices into ``models`` (shape (N,)), never equal to ``a``."""
    score_a: np.ndarray
    """float64, 1.0 if a won, 0.0 if b won, 0.5 for a tie (shape (N,))."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "models", tuple(self.models))
        object.__setattr__(self, "a", np.asarray(self.a, dtype=np.int64))
        object.__setattr__(self, "b", np.asarray(self.b, dtype=np.int64))
        object.__setattr__(self, "score_a", np.asarray(self.score_a, dtype=np.float64))
        n = len(self.a)
        if len(self.b) != n or len(self.score_a) != n:
            raise ValueError("a, b and score_a must have the same length")
        if n and (
            min(self.a.min(), self.b.min()) < 0
            or max(self.a.max(), self.b.max()) >= len(self.models)
        ):
            raise ValueError("model index out of range")
        if np.any(self.a == self.b):
            raise ValueError(
                f"a model is compared with itself at row {int(np.argmax(self.a == self.b))}"
            )
        if not np.all(np.isin(self.score_a, (0.0, 0.5, 1.0))):
            raise ValueError("score_a must contain only 0.0, 0.5 and 1.0")

    @classmethod
    def from_outcomes(cls, outcomes: Iterable[tuple[ModelId, ModelId, str]]) -> Comparisons:
        """Encode (model_a, model_b, outcome) rows; outcome is "a", "b" or "tie"."""
        index: dict[ModelId, int] = {}
        a: list[int] = []
        b: list[int] = []
        score: list[float] = []
        for row, (model_a, model_b, outcome) in enumerate(outcomes):
            value = _SCORES.get(outcome)
            if value is None:
                raise ValueError(f"row {row}: outcome must be 'a', 'b' or 'tie', got {outcome!r}")
            if model_a == model_b:
                raise ValueError(f"row {row}: model {model_a!r} is compared with itself")
            a.append(index.setdefault(model_a, len(index)))
            b.append(index.setdefault(model_b, len(index)))
            score.append(value)
        seen = list(index)
        order = sorted(range(len(seen)), key=seen.__getitem__)
        remap = np.empty(len(seen), dtype=np.int64)
        remap[order] = np.arange(len(seen))
        return cls(
            models=tuple(seen[i] for i in order),
            a=remap[np.asarray(a, dtype=np.int64)],
            b=remap[np.asarray(b, dtype=np.int64)],
            score_a=np.asarray(score, dtype=np.float64),
        )

    def games(self) -> np.ndarray:
        """Number of comparisons each model took part in (shape (M,))."""
        m = len(self.models)
        return np.bincount(self.a, minlength=m) + np.bincount(self.b, minlength=m)

    def win_matrix(self) -> np.ndarray:
        """``W[i, j]``: wins of model i over model j, ties counted as half (shape (M, M))."""
        m = len(self.models)
        w = np.bincount(self.a * m + self.b, weights=self.score_a, minlength=m * m)
        w += np.bincount(self.b * m + self.a, weights=1.0 - self.score_a, minlength=m * m)
        return w.reshape(m, m)


@dataclass(frozen=True, slots=True)
class ModelRating:
    """One leaderboard row."""

    model: ModelId
    rating: float
    """Bradley-Terry maximum-likelihood rating on the Elo-like scale."""
    lower: float
    upper: float
    """Bootstrap percentile interval (95% by default)."""
    rank: int
    """1 + number of models whose lower bound is above this model's upper bound."""
    comparisons: int


def elo_ratings(
    comparisons: Comparisons,
    *,
    k: float = 4.0,
    base: float = 10.0,
    scale: float = 400.0,
    initial: float = 1000.0,
) -> dict[ModelId, float]:
    """Online Elo over the comparisons in their order (Chatbot Arena's K=4, base 10, scale 400)."""
    ratings = [initial] * len(comparisons.models)
    for i, j, s in zip(
        comparisons.a.tolist(), comparisons.b.tolist(), comparisons.score_a.tolist(), strict=True
    ):
        ri, rj = ratings[i], ratings[j]
        expected = 1.0 / (1.0 + base ** ((rj - ri) / scale))
        delta = k * (s - expected)
        ratings[i] = ri + delta
        ratings[j] = rj - delta
    return dict(zip(comparisons.models, ratings, strict=True))


def _gradient(
    row_wins: np.ndarray, games: np.ndarray, theta: np.ndarray, l2: float
) -> tuple[np.ndarray, np.ndarray]:
    """Gradient of the penalised log-likelihood (R, M) and win probabilities p (R, M, M).

    Log-likelihood: sum_ij W_ij log sigmoid(theta_i - theta_j) - l2/2 |theta|^2, so the
    gradient is sum_j W_ij - sum_j N_ij p_ij - l2 theta_i with N = W + W^T.
    """
    p = 1.0 / (1.0 + np.exp(theta[:, None, :] - theta[:, :, None]))  # P(i beats j)
    return row_wins - (games * p).sum(axis=2) - l2 * theta, p


def _neg_hessian(games: np.ndarray, p: np.ndarray, l2: float) -> np.ndarray:
    """Negative Hessian: Laplacian of the weights N_ij p_ij (1 - p_ij), plus l2 * I."""
    weight = games * p * (1.0 - p)
    hess = -weight
    diag = np.arange(games.shape[1])
    hess[:, diag, diag] = weight.sum(axis=2) + l2
    return hess


def _newton(
    wins: np.ndarray, theta: np.ndarray, l2: float, tol: float = 1e-7, max_iter: int = 100
) -> np.ndarray:
    """Damped Newton for the penalised Bradley-Terry MLE of each stacked win matrix.

    ``wins``: (R, M, M) win counts (ties as halves); ``theta``: (R, M) start, natural log units.
    The l2 penalty makes the objective strictly concave and forces sum(theta) = 0.
    """
    games = wins + wins.transpose(0, 2, 1)
    row_wins = wins.sum(axis=2)
    theta = theta.copy()
    for _ in range(max_iter):
        grad, p = _gradient(row_wins, games, theta, l2)
        step = np.linalg.solve(_neg_hessian(games, p, l2), grad[..., None])[..., 0]
        biggest = np.abs(step).max(axis=1, keepdims=True)
        step *= np.minimum(1.0, 2.0 / np.maximum(biggest, 1e-300))  # at most 2 nats per step
        theta += step
        if biggest.max() < tol:
            break
    return theta


def _chord_newton(
    wins: np.ndarray,
    theta: np.ndarray,
    l2: float,
    inv_hessian: np.ndarray,
    tol: float = 1e-7,
    max_iter: int = 30,
) -> tuple[np.ndarray, np.ndarray]:
    """Newton steps with one fixed inverse Hessian (M, M) shared by all rounds.

    Bootstrap resamples are close to the full data, so the full-data Hessian at its optimum is
    an excellent preconditioner: convergence is linear with a tiny rate and each step is one
    matrix product instead of R linear solves. Returns theta and a per-round converged flag.
    """
    games = wins + wins.transpose(0, 2, 1)
    row_wins = wins.sum(axis=2)
    theta = theta.copy()
    converged = np.zeros(len(theta), dtype=bool)
    for _ in range(max_iter):
        grad, _p = _gradient(row_wins, games, theta, l2)
        step = grad @ inv_hessian
        converged = np.abs(step).max(axis=1) < tol
        theta += step
        if converged.all():
            break
    return theta, converged


def _to_ratings(theta: np.ndarray, anchor_index: int | None) -> np.ndarray:
    """Natural-log strengths (..., M) -> Elo-like ratings anchored at 1000."""
    ref = theta.mean(axis=-1) if anchor_index is None else theta[..., anchor_index]
    return 1000.0 + ELO_PER_NAT * (theta - np.asarray(ref)[..., None])


def _anchor_index(comparisons: Comparisons, anchor: ModelId | None) -> int | None:
    """Index of the anchor model, checking that it is known."""
    if anchor is None:
        return None
    if anchor not in comparisons.models:
        raise ValueError(f"anchor model {anchor!r} has no comparisons")
    return comparisons.models.index(anchor)


def bradley_terry(
    comparisons: Comparisons, *, anchor: ModelId | None = None, l2: float = DEFAULT_L2
) -> dict[ModelId, float]:
    """Bradley-Terry maximum-likelihood ratings (Elo-like scale, mean or ``anchor`` = 1000)."""
    m = len(comparisons.models)
    if m == 0:
        return {}
    theta = _newton(comparisons.win_matrix()[None], np.zeros((1, m)), l2)[0]
    ratings = _to_ratings(theta, _anchor_index(comparisons, anchor))
    return dict(zip(comparisons.models, ratings.tolist(), strict=True))


def _resample_counts(rng: np.random.Generator, counts: np.ndarray, rounds: int) -> np.ndarray:
    """Exact multinomial(N, counts / N) draws, shape (rounds, cells), N = counts.sum().

    Equivalent to resampling the N rows with replacement, and ~2x faster than
    ``rng.multinomial`` here: draw Poisson(counts) per cell (= a Poisson(N) number of iid rows),
    then per round add the few missing iid rows, or drop a uniformly random subset of the
    surplus rows; either way exactly N iid rows remain.
    """
    n = int(counts.sum())
    cum_counts = np.cumsum(counts)
    draws = rng.poisson(counts, size=(rounds, len(counts)))
    for row, total in zip(draws, draws.sum(axis=1).tolist(), strict=True):
        if total < n:
            extra = np.searchsorted(cum_counts, rng.integers(0, n, n - total), side="right")
            row += np.bincount(extra, minlength=len(counts))
        elif total > n:
            dropped = rng.choice(total, size=total - n, replace=False)
            cells = np.searchsorted(np.cumsum(row), dropped, side="right")
            row -= np.bincount(cells, minlength=len(counts))
    return draws


def bootstrap_bradley_terry(
    comparisons: Comparisons,
    *,
    rounds: int = 1000,
    seed: int = 0,
    anchor: ModelId | None = None,
    l2: float = DEFAULT_L2,
) -> np.ndarray:
    """Bradley-Terry ratings refitted on ``rounds`` seeded bootstrap resamples, shape (R, M).

    Resampling N comparisons with replacement is drawn exactly as a multinomial over the
    aggregated cells (pair, outcome), which needs no pass over the N rows per round. The
    refit starts at the full-data optimum and uses its Hessian (see ``_chord_newton``).
    """
    anchor_index = _anchor_index(comparisons, anchor)
    return _to_ratings(_bootstrap(comparisons, rounds, seed, l2)[1], anchor_index)


def _bootstrap(
    comparisons: Comparisons, rounds: int, seed: int, l2: float
) -> tuple[np.ndarray, np.ndarray]:
    """Full-data theta (M,) and bootstrap thetas (R, M), natural-log units."""
    m, n = len(comparisons.models), len(comparisons.a)
    rng = np.random.default_rng(seed)
    if m == 0:
        return np.zeros(0), np.zeros((max(rounds, 0), 0))
    wins = comparisons.win_matrix()[None]
    start = _newton(wins, np.zeros((1, m)), l2)  # (1, M)
    if n == 0 or rounds <= 0:  # no data: every model sits at the anchor value
        return start[0], np.zeros((max(rounds, 0), m))
    # Cells: (unordered pair lo < hi, outcome for lo: 0 lost, 1 tie, 2 won) with their counts.
    lo = np.minimum(comparisons.a, comparisons.b)
    hi = np.maximum(comparisons.a, comparisons.b)
    lo_score = np.where(comparisons.a == lo, comparisons.score_a, 1.0 - comparisons.score_a)
    keys, counts = np.unique(
        (lo * m + hi) * 3 + (lo_score * 2).astype(np.int64), return_counts=True
    )
    outcome, lo, hi = keys % 3, keys // 3 // m, keys // 3 % m
    # A cell adds its count to W[winner, loser]; a tie cell adds half to each direction.
    first_target = np.where(outcome == 0, hi * m + lo, lo * m + hi)
    first_weight = np.where(outcome == 1, 0.5, 1.0)
    second_target = hi * m + lo
    second_weight = np.where(outcome == 1, 0.5, 0.0)
    _grad, p = _gradient(wins.sum(axis=2), wins + wins.transpose(0, 2, 1), start, l2)
    inv_hessian = np.linalg.inv(_neg_hessian(wins + wins.transpose(0, 2, 1), p, l2)[0])
    out = np.empty((rounds, m))
    for first in range(0, rounds, _CHUNK):
        r = min(_CHUNK, rounds - first)
        draws = _resample_counts(rng, counts, r).astype(np.float64)  # (r, cells)
        offset = (np.arange(r) * m * m)[:, None]
        flat = np.bincount(
            np.concatenate([(offset + first_target).ravel(), (offset + second_target).ravel()]),
            weights=np.concatenate(
                [(draws * first_weight).ravel(), (draws * second_weight).ravel()]
            ),
            minlength=r * m * m,
        )
        boot_wins = flat.reshape(r, m, m)
        theta, converged = _chord_newton(boot_wins, np.repeat(start, r, axis=0), l2, inv_hessian)
        if not converged.all():  # e.g. a resample where a model lost all its games: exact Newton
            theta[~converged] = _newton(boot_wins[~converged], theta[~converged], l2)
        out[first : first + r] = theta
    return start[0], out


def overlap_ranks(lower: Sequence[float], upper: Sequence[float]) -> list[int]:
    """Rank i = 1 + number of models whose lower bound is above model i's upper bound."""
    lo = np.asarray(lower, dtype=np.float64)
    up = np.asarray(upper, dtype=np.float64)
    return (1 + (lo[None, :] > up[:, None]).sum(axis=1)).tolist()


def leaderboard(
    comparisons: Comparisons,
    *,
    rounds: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    anchor: ModelId | None = None,
    l2: float = DEFAULT_L2,
) -> list[ModelRating]:
    """Bradley-Terry leaderboard with seeded bootstrap intervals and overlap-aware ranks."""
    if not comparisons.models:
        return []
    anchor_index = _anchor_index(comparisons, anchor)
    theta, boot_theta = _bootstrap(comparisons, rounds, seed, l2)
    point = _to_ratings(theta, anchor_index).tolist()
    boot = _to_ratings(boot_theta, anchor_index)
    tail = 100 * (1 - confidence) / 2
    lower, upper = np.percentile(boot, [tail, 100 - tail], axis=0)
    ranks = overlap_ranks(lower, upper)
    games = comparisons.games().tolist()
    rows = [
        ModelRating(model, rating, float(lo), float(up), rank, int(g))
        for model, rating, lo, up, rank, g in zip(
            comparisons.models, point, lower, upper, ranks, games, strict=True
        )
    ]
    return sorted(rows, key=lambda row: (row.rank, -row.rating))
