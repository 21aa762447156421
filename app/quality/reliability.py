"""Per-labeler reliability fitted jointly with the items: a Plackett–Luce mixture (numpy).

Each prompt i has a utility θ_ik per response k. A labeler j, on each ranking, either ranks
*informed* (with probability r_j) by Plackett–Luce on θ_i, or *at random* (1 − r_j; every order
of the m shown responses equally likely, 1/m!). r_j is the labeler's reliability: the share of
their rankings that look informed. EM alternates

1. E-step: responsibility of "informed" for each ranking,
   ρ = r·PL(π | θ) / (r·PL(π | θ) + (1 − r)/m!);
2. M-step: r_j = (1 + Σ ρ) / (2 + n_j) (a uniform Beta prior), and a few Newton steps on θ for
   the ρ-weighted Plackett–Luce log-likelihood with a N(0, σ²) prior per utility (which also
   pins each prompt's free shift and keeps θ finite when three labelers agree).

Nothing needs every labeler to see every prompt: prompts tie labelers together through the
utilities they share, so 3-way overlap is enough. The interval of r_j is a bootstrap over the
labeler's own rankings with the utilities held at their fit.
"""

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from math import lgamma

import numpy as np

Key = Hashable


@dataclass
class Reliability:
    """A labeler's fitted reliability (0…1) with its 95% bootstrap interval."""

    value: float
    lower: float
    upper: float
    rankings: int
    shared: int = 0
    """Rankings of prompts another labeler also ranked: only these tell the fit anything about
    the labeler (alone on a prompt, a ranking agrees with itself)."""


@dataclass
class ReliabilityFit:
    """The fitted model: reliability per labeler and utilities per prompt and response."""

    labelers: dict[Key, Reliability]
    utilities: dict[Key, dict[Key, float]] = field(default_factory=dict)
    iterations: int = 0

    def consensus(self, item: Key) -> list[Key]:
        """The prompt's responses ordered by fitted utility, best first."""
        theta = self.utilities.get(item, {})
        return sorted(theta, key=lambda k: -theta[k])


def _suffix_lse(values: np.ndarray) -> np.ndarray:
    """logsumexp over each suffix of the rows: out[n, t] = log Σ_{u ≥ t} exp(values[n, u])."""
    return np.logaddexp.accumulate(values[:, ::-1], axis=1)[:, ::-1]


class _Data:
    """Rankings as padded index arrays into one flat utility vector."""

    def __init__(self, rankings: Sequence[tuple[Key, Key, Sequence[Key]]]) -> None:
        self.item_keys: list[Key] = []
        self.labeler_keys: list[Key] = []
        item_index: dict[Key, int] = {}
        labeler_index: dict[Key, int] = {}
        slot: dict[tuple[int, Key], int] = {}
        self.slot_keys: list[tuple[Key, Key]] = []
        rows: list[list[int]] = []
        who: list[int] = []
        for item, labeler, ranking in rankings:
            if len(ranking) < 2:
                continue
            i = item_index.setdefault(item, len(item_index))
            if i == len(self.item_keys):
                self.item_keys.append(item)
            j = labeler_index.setdefault(labeler, len(labeler_index))
            if j == len(self.labeler_keys):
                self.labeler_keys.append(labeler)
            row = []
            for response in ranking:
                s = slot.setdefault((i, response), len(slot))
                if s == len(self.slot_keys):
                    self.slot_keys.append((item, response))
                row.append(s)
            rows.append(row)
            who.append(j)
        width = max((len(r) for r in rows), default=0)
        self.index = np.zeros((len(rows), width), dtype=np.int64)  # (N, M) slot per position
        self.mask = np.zeros((len(rows), width), dtype=bool)  # (N, M) position is used
        for n, row in enumerate(rows):
            self.index[n, : len(row)] = row
            self.mask[n, : len(row)] = True
        self.labeler = np.asarray(who, dtype=np.int64)  # (N,)
        self.length = self.mask.sum(axis=1)  # (N,) responses in each ranking
        self.log_uniform = -np.array([lgamma(m + 1) for m in self.length])  # log 1/m!
        self.slots = len(self.slot_keys)


def _log_likelihood(data: _Data, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Plackett–Luce log-likelihood of each ranking, and the suffix logsumexps (N, M)."""
    values = np.where(data.mask, theta[data.index], -np.inf)  # (N, M)
    lse = _suffix_lse(values)
    last = data.length - 1
    picks = np.where(data.mask, values - lse, 0.0)
    picks[np.arange(len(last)), last] = 0.0  # the last pick is certain
    return picks.sum(axis=1), lse


def _derivatives(
    data: _Data, theta: np.ndarray, weight: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per position of each ranking: weighted ∂ll/∂θ and −∂²ll/∂θ² (diagonal), (N, M) each."""
    values = np.where(data.mask, theta[data.index], -np.inf)
    lse = _suffix_lse(values)
    positions = np.arange(data.index.shape[1])
    # Stage u (choosing position u among positions u…m−1) exists for u ≤ m−2.
    stage = data.mask & (positions[None, :] < (data.length - 1)[:, None])
    inv = np.where(stage, np.exp(-lse), 0.0)  # (N, M) 1/Z_u
    cum_inv = np.cumsum(inv, axis=1)  # Σ_{u ≤ t} 1/Z_u
    cum_inv2 = np.cumsum(inv * inv, axis=1)
    e = np.where(data.mask, np.exp(values), 0.0)  # (N, M) exp θ at each position
    w = weight[:, None]
    grad = w * (stage - e * cum_inv)
    hess = w * (e * cum_inv - e * e * cum_inv2)
    return grad, hess


def _newton_step(data: _Data, theta: np.ndarray, weight: np.ndarray, prior_var: float) -> None:
    """One diagonal Newton step on θ for the weighted PL log-likelihood plus the prior."""
    grad_pos, hess_pos = _derivatives(data, theta, weight)
    grad = np.bincount(data.index.ravel(), grad_pos.ravel(), data.slots) - theta / prior_var
    hess = np.bincount(data.index.ravel(), hess_pos.ravel(), data.slots) + 1 / prior_var
    theta += np.clip(grad / hess, -2.0, 2.0)


def _held_out_log_likelihood(
    data: _Data, theta: np.ndarray, weight: np.ndarray, prior_var: float
) -> np.ndarray:
    """Each ranking's log-likelihood under the utilities the *other* rankings imply.

    One diagonal Newton step from the fit removes the ranking's own pull on θ, so that with
    three labelers per prompt a random ranking is judged by the other two, not by itself.
    """
    grad_pos, hess_pos = _derivatives(data, theta, weight)
    hess = np.bincount(data.index.ravel(), hess_pos.ravel(), data.slots) + 1 / prior_var
    own = np.where(data.mask, theta[data.index], 0.0)
    shifted = own - grad_pos / np.maximum(hess[data.index] - hess_pos, 1 / prior_var)
    values = np.where(data.mask, shifted, -np.inf)
    lse = _suffix_lse(values)
    last = data.length - 1
    picks = np.where(data.mask, values - lse, 0.0)
    picks[np.arange(len(last)), last] = 0.0
    return picks.sum(axis=1)


def _responsibility(log_lik: np.ndarray, log_uniform: np.ndarray, r: np.ndarray) -> np.ndarray:
    """P(informed | ranking) for each ranking, given each one's labeler reliability r."""
    a = np.log(np.clip(r, 1e-9, 1.0)) + log_lik
    b = np.log(np.clip(1.0 - r, 1e-9, 1.0)) + log_uniform
    return 1.0 / (1.0 + np.exp(np.clip(b - a, -50, 50)))


def _bootstrap(
    data: _Data, log_lik: np.ndarray, r: np.ndarray, rounds: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """2.5% and 97.5% quantiles of r_j over resamples of each labeler's own rankings."""
    rng = np.random.default_rng(seed)
    lower, upper = r.copy(), r.copy()
    for j in range(len(r)):
        mine = np.flatnonzero(data.labeler == j)
        if rounds <= 0 or len(mine) == 0:
            continue
        pick = mine[rng.integers(0, len(mine), size=(rounds, len(mine)))]  # (B, n_j)
        ll, lu = log_lik[pick], data.log_uniform[pick]
        rb = np.full(rounds, r[j])
        for _ in range(15):
            rb = (1.0 + _responsibility(ll, lu, rb[:, None]).sum(axis=1)) / (2.0 + len(mine))
        lower[j], upper[j] = np.quantile(rb, [0.025, 0.975])
    return lower, upper


def _shared_counts(data: _Data, n_labelers: int) -> np.ndarray:
    """Per labeler, their rankings of prompts that at least one other labeler ranked too."""
    prompt = np.array([data.slot_keys[row[0]][0] for row in data.index], dtype=object)
    labelers_of: dict[Key, set[int]] = {}
    for item, j in zip(prompt, data.labeler.tolist(), strict=True):
        labelers_of.setdefault(item, set()).add(j)
    shared = np.array([len(labelers_of[item]) > 1 for item in prompt], dtype=bool)
    return np.bincount(data.labeler[shared], minlength=n_labelers)


def fit_reliability(
    rankings: Sequence[tuple[Key, Key, Sequence[Key]]],
    *,
    iterations: int = 40,
    prior_sd: float = 2.0,
    bootstrap: int = 100,
    seed: int = 0,
    tol: float = 1e-4,
) -> ReliabilityFit:
    """Fit reliabilities and utilities from (prompt, labeler, ranking best→worst) triples."""
    data = _Data(rankings)
    n_labelers = len(data.labeler_keys)
    if not n_labelers:
        return ReliabilityFit(labelers={})
    theta = np.zeros(data.slots)
    r = np.full(n_labelers, 0.8)
    prior_var = prior_sd**2
    counts = np.bincount(data.labeler, minlength=n_labelers)
    done = 0
    rho = np.ones(len(data.labeler))
    for done in range(1, iterations + 1):  # noqa: B007
        log_lik = _held_out_log_likelihood(data, theta, rho, prior_var)
        rho = _responsibility(log_lik, data.log_uniform, r[data.labeler])
        new_r = (1.0 + np.bincount(data.labeler, rho, n_labelers)) / (2.0 + counts)
        for _ in range(2):
            _newton_step(data, theta, rho, prior_var)
        converged = np.max(np.abs(new_r - r)) < tol
        r = new_r
        if converged:
            break
    log_lik = _held_out_log_likelihood(data, theta, rho, prior_var)
    lower, upper = _bootstrap(data, log_lik, r, bootstrap, seed)
    utilities: dict[Key, dict[Key, float]] = {}
    for (item, response), value in zip(data.slot_keys, theta.tolist(), strict=True):
        utilities.setdefault(item, {})[response] = value
    shared = _shared_counts(data, n_labelers)
    labelers = {
        key: Reliability(
            float(r[j]), float(lower[j]), float(upper[j]), int(counts[j]), int(shared[j])
        )
        for j, key in enumerate(data.labeler_keys)
    }
    return ReliabilityFit(labelers=labelers, utilities=utilities, iterations=done)
