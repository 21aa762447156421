"""Behaviour flags: each a named test with its evidence, a minimum sample and a significance
level, so that a new labeler with three labels is never flagged.

Tests are one-sided at `SIGNIFICANCE` on the labeler's own labels against what the project
(or chance) predicts; pure functions over plain numbers.
"""

from dataclasses import dataclass
from statistics import median

from app.labeling.gold import GOLD_ACCURACY_FLOOR, GOLD_SIGNIFICANCE, GoldStats, low_gold_accuracy
from app.stats import binomial_sf, wilson_interval

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

FOLLOWS_MARGIN = 0.1
"""follows-suggestions: the agreement's lower bound must pass the prediction by this much…"""
FOLLOWS_Z = 2.326
"""…at one-sided 99% (a normal bound over prompts, their pairs resampled together)…"""
FOLLOWS_MIN_GOLD = 3
"""…and the labeler must have answered this many gold items (their accuracy is the baseline)."""
FOLLOWS_MIN_JUDGE_PAIRS = 20
"""A judge's accuracy (gold pairs, else pairs against the people's consensus) is known from this
many compared pairs; a suggestion of a judge of unknown accuracy counts toward no flag."""

NAMES = (
    "too-fast",
    "position-bias",
    "straight-lining",
    "low-gold-accuracy",
    "low-agreement",
    "follows-suggestions",
)


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


def independent_agreement(labeler: float, judge: float) -> float:
    """Pairwise agreement of a labeler and a judge whose errors are independent: both right
    or both wrong on a pair (accuracies 0…1)."""
    return labeler * judge + (1 - labeler) * (1 - judge)


def follows_suggestions(
    shares: list[float], judge_pairs: list[tuple[float, int]], gold: GoldStats | None
) -> Flag | None:
    """Agrees with the judges' suggestions far more often than their own accuracy predicts.

    `shares`: per prompt the labeler labeled after a judge's suggestion on it, the share of the
    suggestion's ordered pairs the labeler ordered alike (a tie half); `judge_pairs`: that
    judge's (right pairs, pairs) behind its accuracy, per prompt. A labeler of gold accuracy
    a_l and a judge of accuracy a_j that err independently agree on a_l·a_j + (1−a_l)·(1−a_j)
    of pairs. The prediction gives the labeler the benefit of the doubt: the most agreement
    any a_l and a_j in their 95% Wilson intervals predict. The flag needs the observed mean's
    one-sided 99% lower bound (prompts as units) above the prediction by `FOLLOWS_MARGIN`,
    with at least `MIN_LABELS` such prompts and `FOLLOWS_MIN_GOLD` gold items answered."""
    n = len(shares)
    if n < MIN_LABELS or gold is None or gold.seen < FOLLOWS_MIN_GOLD or not gold.pairs:
        return None
    labeler = wilson_interval(gold.agree, gold.pairs)
    most: dict[tuple[float, int], float] = {}
    for agree, pairs in set(judge_pairs):
        judge = wilson_interval(agree, pairs)
        most[(agree, pairs)] = max(independent_agreement(a, b) for a in labeler for b in judge)
    predicted = sum(most[j] for j in judge_pairs) / len(judge_pairs)
    observed = sum(shares) / n
    spread = (sum((s - observed) ** 2 for s in shares) / (n - 1)) ** 0.5
    lower = observed - FOLLOWS_Z * spread / n**0.5
    if lower <= predicted + FOLLOWS_MARGIN:
        return None
    return Flag(
        "follows-suggestions",
        f"agreed with the suggestions on {observed:.0%} of ordered pairs over {n} prompts "
        f"(99% lower bound {lower:.0%}); independent errors at their gold accuracy "
        f"{gold.accuracy:.0%} predict at most {predicted:.0%}",
    )
