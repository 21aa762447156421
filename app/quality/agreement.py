"""Agreement between labelers: Krippendorff's α (ordinal) with a bootstrap interval, and each
labeler's Kendall τ against the consensus of the *other* labelers of the same prompt.

Labels are compared as values per response (higher is better): a ranking gives K−rank (tied
responses share their mid-rank), a rating its score, so rankings and ratings share one code path
and ties are ties for τ-b and for the ordinal α alike.
"""

from collections.abc import Collection, Hashable, Mapping, Sequence
from dataclasses import dataclass
from statistics import fmean, pstdev

import krippendorff
import numpy as np

from app.aggregation.consensus import consensus_ranking, tau_b
from app.labeling import ranks

Values = Mapping[int, float]
"""A label as a value per response id (higher is better)."""


@dataclass(frozen=True, slots=True)
class Alpha:
    """Krippendorff's α with its 95% bootstrap interval (None when undefined)."""

    value: float | None
    lower: float | None
    upper: float | None
    units: int


def _counts(prompts: Sequence[Sequence[Values]], domain: list[float]) -> tuple[np.ndarray, list]:
    """Value counts (units × values) with one unit per (prompt, response), and the unit rows of
    each prompt (for resampling prompts as clusters)."""
    where = {v: i for i, v in enumerate(domain)}
    rows: list[np.ndarray] = []
    groups: list[list[int]] = []
    for labels in prompts:
        responses = sorted({rid for label in labels for rid in label})
        mine = []
        for rid in responses:
            row = np.zeros(len(domain))
            for label in labels:
                if rid in label:
                    row[where[label[rid]]] += 1
            if row.sum() >= 2:  # a unit needs two values to be pairable
                mine.append(len(rows))
                rows.append(row)
        if mine:
            groups.append(mine)
    return (np.array(rows) if rows else np.zeros((0, len(domain)))), groups


def _alpha(counts: np.ndarray, domain: list[float]) -> float | None:
    if len(counts) == 0 or len(domain) < 2 or np.count_nonzero(counts.sum(axis=0)) < 2:
        return None
    value = krippendorff.alpha(
        value_counts=counts, value_domain=domain, level_of_measurement="ordinal"
    )
    return None if np.isnan(value) else float(value)


def krippendorff_alpha(
    prompts: Sequence[Sequence[Values]], *, rounds: int = 200, seed: int = 0
) -> Alpha:
    """Ordinal α over all labels, one unit per (prompt, response); the interval resamples
    prompts with replacement (`rounds` times)."""
    domain = sorted({v for labels in prompts for label in labels for v in label.values()})
    counts, groups = _counts(prompts, domain)
    value = _alpha(counts, domain)
    if value is None or rounds <= 0:
        return Alpha(value, None, None, len(counts))
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(rounds):
        picked = rng.integers(0, len(groups), len(groups))
        rows = [r for g in picked for r in groups[g]]
        sample = _alpha(counts[rows], domain)
        if sample is not None:
            samples.append(sample)
    if not samples:
        return Alpha(value, None, None, len(counts))
    lower, upper = np.quantile(samples, [0.025, 0.975])
    return Alpha(value, float(lower), float(upper), len(counts))


def _tiers(label: Values) -> list[list[int]]:
    """A label as groups of responses of equal value, best first (a ranking with its ties)."""
    levels = sorted(set(label.values()), reverse=True)
    return [sorted(rid for rid in label if label[rid] == v) for v in levels]


def consensus_values(labels: Sequence[Values], rankings: bool) -> Values:
    """The consensus of labels as values: ranked pairs for rankings, mean score for ratings."""
    if rankings:
        consensus = consensus_ranking([_tiers(label) for label in labels])
        return ranks.values(consensus.groups)  # tied responses share a value
    sums: dict[int, list[float]] = {}
    for label in labels:
        for rid, v in label.items():
            sums.setdefault(rid, []).append(v)
    return {rid: fmean(vs) for rid, vs in sums.items()}


@dataclass(frozen=True, slots=True)
class Agreement:
    """A labeler's mean τ against the others' consensus, over `n` labels, and its spread."""

    mean: float
    sd: float
    n: int


def leave_one_out(
    prompts: Sequence[Sequence[tuple[Hashable, Values]]],
    *,
    rankings: bool,
    ignore: Collection[Hashable] = (),
) -> dict[Hashable, Agreement]:
    """Per labeler: mean Kendall τ of their labels with the consensus of the other labelers of
    the same prompt (labelers in `ignore` are judged but never part of a consensus; a prompt
    without other labelers does not count)."""
    taus: dict[Hashable, list[float]] = {}
    for labels in prompts:
        for i, (who, label) in enumerate(labels):
            others = [v for j, (w, v) in enumerate(labels) if j != i and w not in ignore]
            if not others:
                continue
            tau = tau_b(label, consensus_values(others, rankings))
            if tau is not None:
                taus.setdefault(who, []).append(tau)
    return {who: Agreement(fmean(ts), pstdev(ts), len(ts)) for who, ts in taus.items()}
