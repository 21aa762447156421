"""Behaviour flags: each a named test with its evidence, a minimum sample and a significance
level, so that a new labeler with three labels is never flagged.

Tests are one-sided at `SIGNIFICANCE` on the labeler's own labels against what the project
(or chance) predicts; pure functions over plain numbers.
"""

from dataclasses import dataclass
from statistics import median

from app.labeling.gold import GOLD_ACCURACY_FLOOR, GOLD_SIGNIFICANCE, GoldStats, low_gold_accuracy
from app.stats import binomial_sf

MIN_LABELS = 10
"""Labels a labeler needs before any behaviour flag (gold has its own minimum)."""
SIGNIFICANCE = 0.01
FAST_QUANTILE = 0.1
"""too-fast: a label faster than this quantile of the project's times counts as rushed."""
FAST_MEDIAN_RATIO = 0.5
"""too-fast: and the labeler's median time is under this share of the project's."""
LOW_AGREEMENT_RATIO = 0.5
"""low-agreement: upper 95% bound of mean τ below this share of the project's median τ…"""
LOW_AGREEMENT_FLOOR = 0.1
"""…or below this absolute τ, whichever is higher."""

NAMES = ("too-fast", "position-bias", "straight-lining", "low-gold-accuracy", "low-agreement")


@dataclass(frozen=True, slots=True)
class Flag:
    """A named signal with the numbers that raised it."""

    name: str
    evidence: str
    p_value: float | None = None


def too_fast(mine: list[float], project: list[float]) -> Flag | None:
    """Median time far below the project's, and significantly many labels below its fast tail."""
    if len(mine) < MIN_LABELS or len(project) < 2 * MIN_LABELS:
        return None
    ordered = sorted(project)
    cut = ordered[int(FAST_QUANTILE * (len(ordered) - 1))]
    fast = sum(1 for s in mine if s <= cut)
    p = binomial_sf(fast, len(mine), FAST_QUANTILE)
    mine_median, project_median = median(mine), median(project)
    if p >= SIGNIFICANCE or mine_median >= FAST_MEDIAN_RATIO * project_median:
        return None
    return Flag(
        "too-fast",
        f"median {mine_median:.1f} s vs the project's {project_median:.1f} s; {fast} of "
        f"{len(mine)} labels at or under the project's fastest 10% ({cut:.1f} s), p={p:.2g}",
        p,
    )


def position_bias(first_shown_first: int, n: int, chance: float) -> Flag | None:
    """Puts the first shown response first far more often than chance (binomial test)."""
    if n < MIN_LABELS or chance >= 1:
        return None
    p = binomial_sf(first_shown_first, n, chance)
    rate = first_shown_first / n
    if p >= SIGNIFICANCE or rate < chance + (1 - chance) / 2:
        return None
    return Flag(
        "position-bias",
        f"ranked the first shown response first in {first_shown_first} of {n} rankings "
        f"({rate:.0%}; chance {chance:.0%}), p={p:.2g}",
        p,
    )


def straight_lining(flat: int, n: int, project_share: float) -> Flag | None:
    """Ratings without variance (every response the same score) far more often than others."""
    if n < MIN_LABELS:
        return None
    base = min(max(project_share, 0.05), 0.9)
    p = binomial_sf(flat, n, base)
    if p >= SIGNIFICANCE or flat / n < 0.8:
        return None
    return Flag(
        "straight-lining",
        f"gave every response the same score in {flat} of {n} ratings "
        f"(others: {project_share:.0%}), p={p:.2g}",
        p,
    )


def gold_flag(stats: GoldStats | None, min_seen: int) -> Flag | None:
    """Agreement with gold answers significantly below the floor, after enough gold items."""
    if stats is None or not low_gold_accuracy(stats, min_seen):
        return None
    return Flag(
        "low-gold-accuracy",
        f"agreed with the known answer on {stats.agree:g} of {stats.pairs} pairs "
        f"({stats.accuracy:.0%}) over {stats.seen} gold items; below {GOLD_ACCURACY_FLOOR:.0%} "
        f"at p<{GOLD_SIGNIFICANCE}",
    )


def low_agreement(mean: float, sd: float, n: int, project_median: float | None) -> Flag | None:
    """Mean τ against the others' consensus clearly below the project's labelers."""
    if n < MIN_LABELS:
        return None
    threshold = max(LOW_AGREEMENT_FLOOR, LOW_AGREEMENT_RATIO * (project_median or 0.0))
    upper = mean + 1.645 * sd / n**0.5  # one-sided 95% bound
    if upper >= threshold:
        return None
    return Flag(
        "low-agreement",
        f"mean τ {mean:.2f} over {n} labels (95% upper bound {upper:.2f}) against the others' "
        f"consensus; threshold {threshold:.2f} (project median {project_median or 0:.2f})",
    )
