"""A judge's rules: the pairwise question, and how scores or answers become a verdict row.

Reward model (scores): ranking best first by score (equal scores keep the file's order),
margin = best − second score; rating: each score mapped onto the project's scale by
`rating_map` (see `rate`).

Pairwise judges (an LM or an endpoint) answer "A" or "B" for each pair of responses, asked in
both orders (each response once as A). A pair is decided when both orders prefer the same
response; when they disagree (the judge followed the position, not the content), or an answer
was unusable, the pair is a tie: half a win to each. Responses are ranked by wins (ties broken by
the mean preference probability, then the file's order); an item whose pairs are all ties is an
abstention: no ranking, `reason` says why. With K responses there are K(K−1)/2 pairs and
K(K−1) questions.

Imports neither torch nor the web app.
"""

from __future__ import annotations

import bisect
import itertools
import math
import re
from dataclasses import dataclass, field
from typing import Any

from trainer.configs import JudgeConfig, scale_levels
from trainer.data import Message, _plain

PLACEHOLDER = re.compile(r"\{(prompt|a|b)\}")


@dataclass
class Item:
    """One line of the items file: a prompt and the responses to judge."""

    id: Any
    """As given (a string or an integer); written back as given."""
    prompt: str | list[Message]
    responses: list[tuple[Any, str]]
    """(response id as given, text), in the file's order."""

    @property
    def key(self) -> str:
        """The id as resumption compares it."""
        return str(self.id)


def prompt_text(prompt: str | list[Message]) -> str:
    """The conversation as the question shows it: a string as it is, messages as
    "User: …\\n\\nAssistant: …" (the trainer's plain format)."""
    return prompt if isinstance(prompt, str) else _plain(prompt, False).rstrip()


def question(template: str, prompt: str | list[Message], a: str, b: str) -> str:
    """The template with {prompt}, {a} and {b} filled in, in one pass (a response that contains
    "{b}" is not filled again; other braces are left alone)."""
    filled = {"prompt": prompt_text(prompt), "a": a, "b": b}
    return PLACEHOLDER.sub(lambda m: filled[m.group(1)], template)


def pairs_of(k: int) -> list[tuple[int, int]]:
    """The (i, j), i < j, pairs of k responses."""
    return list(itertools.combinations(range(k), 2))


def orders_of(k: int) -> list[tuple[int, int, int, int]]:
    """Every question of an item: (pair index, i, j, which) for each pair asked with response i
    as A (which = 0) and with response j as A (which = 1)."""
    return [(n, i, j, which) for n, (i, j) in enumerate(pairs_of(k)) for which in (0, 1)]


# ---------------------------------------------------------------------- pairwise


@dataclass
class PairVote:
    """A pair (i, j) asked in both orders: P(response i is better) from each order."""

    i: int
    j: int
    first: float | None = None
    """P(i better) when i was shown as A; None: no usable answer."""
    second: float | None = None
    """P(i better) when i was shown as B."""
    unusable: list[str] = field(default_factory=list)
    """Why an order's answer could not be read (malformed, refused), one entry per order."""

    @staticmethod
    def _side(p: float | None) -> int | None:
        if p is None or math.isnan(p) or p == 0.5:
            return None
        return 0 if p > 0.5 else 1

    @property
    def winner(self) -> int | None:
        """i or j when both orders prefer it, else None (a tie)."""
        a, b = self._side(self.first), self._side(self.second)
        if a is None or a != b:
            return None
        return self.i if a == 0 else self.j

    @property
    def disagree(self) -> bool:
        """Both orders answered and each preferred a different response (position bias)."""
        a, b = self._side(self.first), self._side(self.second)
        return a is not None and b is not None and a != b

    @property
    def p_i(self) -> float | None:
        """P(i better) averaged over the orders that answered (position bias cancels)."""
        ps = [p for p in (self.first, self.second) if p is not None and not math.isnan(p)]
        return sum(ps) / len(ps) if ps else None


def pairwise_row(item: Item, votes: list[PairVote]) -> dict[str, Any]:
    """The verdict of a pairwise judge for a ranking item."""
    k = len(item.responses)
    wins = [0.0] * k
    prob = [[] for _ in range(k)]  # type: list[list[float]]
    for v in votes:
        if v.winner is None:
            wins[v.i] += 0.5
            wins[v.j] += 0.5
        else:
            wins[v.winner] += 1.0
        if v.p_i is not None:
            prob[v.i].append(v.p_i)
            prob[v.j].append(1.0 - v.p_i)
    mean_p = [round(sum(ps) / len(ps), 9) if ps else 0.5 for ps in prob]  # equal is equal
    order = sorted(range(k), key=lambda r: (-wins[r], -mean_p[r], r))
    tied = [v for v in votes if v.winner is None]
    disagree = sum(v.disagree for v in votes)
    unusable = [why for v in votes for why in v.unusable]
    answered_both = [v for v in votes if not v.unusable]
    ids = [rid for rid, _ in item.responses]
    abstained = len(tied) == len(votes)
    reason = None
    if tied:
        causes = []
        if disagree:
            causes.append(f"the two orders disagree on {disagree}")
        if unusable:
            causes.append(f"{len(unusable)} answers unusable ({'; '.join(sorted(set(unusable)))})")
        undecided = len(tied) - disagree - sum(1 for v in tied if v.unusable)
        if undecided > 0:
            causes.append(f"the judge was undecided on {undecided}")
        reason = f"{len(tied)} of {len(votes)} pairs tied: " + ", ".join(causes)
    best, second = order[0], order[1]
    top = next((v for v in votes if {v.i, v.j} == {best, second}), None)
    preference = None
    if top is not None and top.p_i is not None:
        preference = round(top.p_i if top.i == best else 1.0 - top.p_i, 6)
    return {
        "id": item.id,
        "ranking": None if abstained else [ids[r] for r in order],
        "scores": {str(ids[r]): wins[r] for r in range(k)},
        "margin": None if abstained else wins[best] - wins[second],
        "preference": None if abstained else preference,
        "abstained": abstained,
        "reason": reason,
        "orders_agree": None if not answered_both else not any(v.disagree for v in votes),
        "pairs": len(votes),
        "tied_pairs": len(tied),
    }


# ---------------------------------------------------------------------- reward model


def rate(score: float, cfg: JudgeConfig, levels: list[float]) -> float:
    """A reward on the project's scale.

    linear: rating_score_low maps to scale_low and rating_score_high to scale_high; a score in
    between takes the nearest level (halves round up), one outside takes the end it is beyond.
    thresholds: the level is scale_low plus one step per threshold the score reaches (≥).
    """
    n = len(levels) - 1
    if cfg.rating_map == "thresholds":
        index = bisect.bisect_right(cfg.rating_thresholds, score)
    else:
        t = (score - cfg.rating_score_low) / (cfg.rating_score_high - cfg.rating_score_low)
        index = min(n, max(0, math.floor(t * n + 0.5)))
    return levels[index]


def _level(value: float) -> float | int:
    return int(value) if float(value).is_integer() else round(value, 6)


def scored_row(item: Item, scores: list[float], cfg: JudgeConfig) -> dict[str, Any]:
    """The verdict of a reward model: scores (one per response, file order) → ranking or
    ratings, margin = best − second score."""
    ids = [rid for rid, _ in item.responses]
    finite = all(math.isfinite(s) for s in scores)
    order = sorted(range(len(ids)), key=lambda r: (-scores[r], r))
    margin = scores[order[0]] - scores[order[1]] if finite and len(ids) > 1 else None
    row: dict[str, Any] = {"id": item.id}
    if cfg.project_kind == "rating":
        levels = scale_levels(cfg)
        row["ratings"] = (
            {str(rid): _level(rate(s, cfg, levels)) for rid, s in zip(ids, scores, strict=True)}
            if finite
            else None
        )
    else:
        row["ranking"] = [ids[r] for r in order] if finite else None
    return row | {
        "scores": {
            str(rid): round(s, 6) if finite else None for rid, s in zip(ids, scores, strict=True)
        },
        "margin": None if margin is None else round(margin, 6),
        "abstained": not finite,
        "reason": None if finite else "the reward model gave a non-finite score",
        "orders_agree": None,
    }


# ---------------------------------------------------------------------- tallies


@dataclass
class Tally:
    """What a judge run counted (this run's items only)."""

    items: int = 0
    abstained: int = 0
    pairs: int = 0
    tied_pairs: int = 0
    disagreeing_pairs: int = 0
    unusable_answers: int = 0

    def add(self, row: dict[str, Any], votes: list[PairVote] | None = None) -> None:
        self.items += 1
        self.abstained += bool(row["abstained"])
        if votes is not None:
            self.pairs += len(votes)
            self.tied_pairs += sum(v.winner is None for v in votes)
            self.disagreeing_pairs += sum(v.disagree for v in votes)
            self.unusable_answers += sum(len(v.unusable) for v in votes)
