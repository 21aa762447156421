"""The dataset kinds (snapshot and export files), the shape of each kind's row, and how a
ranking reads as rows (`preference`).

Rows follow TRL's conventions. A prompt of one user turn is a string and every answer in its
row is a string ("standard"); any other prompt is its message list and every answer in its
row is a list of assistant messages ("conversational"), so a row is never half of each.
Which labels make which rows is `app.datasets.rows`' (one builder per kind).
"""

from collections.abc import Sequence
from enum import StrEnum
from itertools import combinations
from typing import Any, NamedTuple

from app.labeling import ranks
from app.projects.kinds import ProjectKind

Message = dict[str, Any]
Text = str | list[Message]
Row = dict[str, Any]


class DatasetKind(StrEnum):
    """What a snapshot or export file holds, one row shape each."""

    rankings = "rankings"
    """{"prompt", "responses": [best, …, worst]} (+ "ranks" when some are tied)"""
    pairs = "pairs"
    """{"prompt", "chosen", "rejected"} (+ "margin": a consensus's, or a preference strength's)"""
    sft = "sft"
    """{"prompt", "completion"}, or {"messages"} for a demonstrated conversation"""
    ratings = "ratings"
    """{"prompt", "response", "score", "scores": {aspect: value}}: `score` is the main rating
    (absent in a ranking project), `scores` holds it as "score" beside each per-response Likert
    question of the project (its mean over the labelers who answered)."""
    prompts = "prompts"
    """{"prompt"}"""
    kto = "kto"
    """{"prompt", "completion", "label"}: one unpaired answer, desirable (true) or not (TRL's
    KTO format), from 👍/👎, a 0–5 score's thresholds, or a ranking's top and bottom
    (`rows.rating_label`, `rows.desirable`)"""


FROM_PROJECT: dict[str, tuple[DatasetKind, ...]] = {
    ProjectKind.demonstration: (DatasetKind.sft, DatasetKind.prompts),
    ProjectKind.ranking: (
        DatasetKind.rankings,
        DatasetKind.pairs,
        DatasetKind.sft,
        DatasetKind.prompts,
        DatasetKind.kto,
    ),
    ProjectKind.rating: (DatasetKind.ratings, DatasetKind.prompts, DatasetKind.kto),
}
"""The snapshot kinds that can have rows for each project kind: a demonstration project's
written answers make `sft`; a ranking project's rankings make rankings, pairs, kto and `sft`
(the top consensus response of each prompt); a rating project's ratings make ratings and kto;
every project's prompts make `prompts`."""

NEEDS = {
    DatasetKind.rankings: "rankings",
    DatasetKind.pairs: "rankings",
    DatasetKind.sft: "written answers or rankings",
    DatasetKind.ratings: "ratings or per-response Likert questions",
    DatasetKind.kto: "rankings or ratings",
    DatasetKind.prompts: "prompts",
}
"""What the labels of a project must hold for a snapshot kind to have rows."""


def kinds_for(project_kind: str, aspects: bool = False) -> tuple[DatasetKind, ...]:
    """The snapshot kinds that can have rows for a project of this kind, in DatasetKind order;
    `aspects`: the project asks per-response Likert questions, whose means a `ratings`
    snapshot holds (so a ranking project with them makes ratings too)."""
    kinds = set(FROM_PROJECT.get(project_kind, ()))
    if aspects:
        kinds.add(DatasetKind.ratings)
    return tuple(kind for kind in DatasetKind if kind in kinds)


def prompt_of(messages: list[Message]) -> Text:
    """A prompt as the files carry it: a string for one user turn, else the messages."""
    if len(messages) == 1 and messages[0].get("role") == "user":
        return messages[0]["content"]
    return messages


def answer_of(prompt: Text, text: str) -> Text:
    """An answer in its prompt's shape: the text, or one assistant message after a conversation."""
    return text if isinstance(prompt, str) else [{"role": "assistant", "content": text}]


def answers_of(prompt: Text, texts: list[str]) -> list[Text]:
    """Answers in their prompt's shape (`answer_of` of each text)."""
    if isinstance(prompt, str):
        return list(texts)
    return [[{"role": "assistant", "content": text}] for text in texts]


def sft_row(messages: list[Message], completion: str | list[Message]) -> Row:
    """{prompt, completion} for a written answer, {messages} for a demonstrated conversation."""
    if not isinstance(completion, str):
        return {"messages": messages + completion}
    prompt = prompt_of(messages)
    return {"prompt": prompt, "completion": answer_of(prompt, completion)}


class Preference(NamedTuple):
    """A ranking (a labeler's, or a consensus) as rows hold it."""

    best_first: Sequence[int]
    """Every response id once, best first (tied ones in the order given)."""
    places: tuple[int, ...]
    """The place of each (0 = best, dense): equal places are tied, e.g. (0, 1, 1, 2)."""


_is_id = int.__instancecheck__
_new = tuple.__new__
_FLAT = {n: tuple(range(n)) for n in range(16)}
"""The places of a ranking of n responses without ties."""


def preference(ranking: ranks.Ranking) -> Preference | None:
    """A ranking payload (`[a, [b, c], d]`) or a consensus's groups as rows hold it; None
    when it states no preference: one response, or all of them tied. Such a ranking makes
    no row of any kind (no rankings row, no pair, no KTO row)."""
    if all(map(_is_id, ranking)):  # flat: no ties (the common case), read without copies
        best_first, places = ranking, _FLAT.get(len(ranking)) or tuple(range(len(ranking)))
    else:
        best_first, ordered = ranks.order_and_ranks(ranking)
        places = tuple(ordered)
    # tuple.__new__: half the cost of Preference(…), paid once per exported ranking
    return _new(Preference, (best_first, places)) if places and places[-1] > 0 else None


def ranking_row(
    messages: list[Message], ranked: list[str], ranks: Sequence[int] | None = None
) -> Row:
    """One ranking, best response first. With ties, "ranks" gives each response's place
    (0 = best; equal ranks are tied, e.g. [0, 1, 1, 2]); a ranking without ties has none."""
    prompt = prompt_of(messages)
    row: Row = {"prompt": prompt, "responses": answers_of(prompt, ranked)}
    if ranks is not None and len(set(ranks)) < len(ranks):
        row["ranks"] = list(ranks)
    return row


def pair_row(
    messages: list[Message], chosen: str, rejected: str, margin: float | None = None
) -> Row:
    """One preference pair (with its margin when there is one)."""
    prompt = prompt_of(messages)
    row = {
        "prompt": prompt,
        "chosen": answer_of(prompt, chosen),
        "rejected": answer_of(prompt, rejected),
    }
    return row if margin is None else row | {"margin": margin}


def untied_pairs(places: Sequence[int]) -> list[tuple[int, int]]:
    """The pairs (i, j), i before j, of a ranking's responses at `places` (best first) that
    make pair rows: the better one chosen; tied pairs (equal places) are left out, neither is
    better."""
    return [(i, j) for i, j in combinations(range(len(places)), 2) if places[i] != places[j]]


def pair_rows(
    messages: list[Message],
    ranked: list[str],
    ranks: Sequence[int] | None = None,
    margin: float | None = None,
) -> list[Row]:
    """Every untied pair of one ranking (`untied_pairs`), the better response chosen."""
    places = ranks if ranks is not None else range(len(ranked))
    return [pair_row(messages, ranked[i], ranked[j], margin) for i, j in untied_pairs(places)]


def kto_row(messages: list[Message], completion: str, label: bool) -> Row:
    """One answer judged on its own: desirable (True) or undesirable (False)."""
    prompt = prompt_of(messages)
    return {"prompt": prompt, "completion": answer_of(prompt, completion), "label": label}


def rating_row(
    messages: list[Message], response: str, score: Any, scores: dict[str, Any] | None = None
) -> Row:
    """One response's score; with `scores`, every aspect too (`score` None: no main rating)."""
    prompt = prompt_of(messages)
    row: Row = {"prompt": prompt, "response": answer_of(prompt, response)}
    if score is not None:
        row["score"] = score
    return row if scores is None else row | {"scores": scores}


def row_answers(
    answers: dict[str, Any], response_ids: Sequence[int] | int | None
) -> dict[str, Any]:
    """The `answers` of an exported row, from one annotation's answers (per-response ones keyed
    by response id, the flags under "flags"). Per-task answers stay as they are; a per-response
    answer becomes the value for the row's response (`response_ids` one id: a ratings row), or
    a list aligned with the row's responses (rankings: `responses`; pairs: chosen, rejected),
    None where a response has no answer (no flags: [])."""
    out: dict[str, Any] = {}
    for name, value in answers.items():
        if not isinstance(value, dict):
            out[name] = value
            continue
        missing: Any = [] if name == "flags" else None
        if isinstance(response_ids, int):
            out[name] = value.get(str(response_ids), missing)
        elif response_ids is not None:
            out[name] = [value.get(str(rid), missing) for rid in response_ids]
    return out


def prompt_row(messages: list[Message]) -> Row:
    """A prompt alone (what PPO and generation read)."""
    return {"prompt": prompt_of(messages)}
