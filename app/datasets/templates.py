"""A speed-up of the rankings builder: every label's rankings rows of string prompts as lines,
without building them.

The rows are the builder's (`rows.builder`, method "all"): each ranking read by
`kinds.preference` (none of one that states no preference), its row `kinds.ranking_row` with the
label's `source` (`sources.row_source`), as the builder adds it. That row is encoded once per
shape (the places of its responses, and its source) by `jsontext.template`, with the
prompt and the texts left as holes, and filled with each string encoded once
(`jsontext.encoded`); the Parquet columns come from the same row (`writer.Encoded`). The bytes
are `jsontext.row_line`'s of the builder's rows (tests hold them to it, on generated rankings
with ties and texts of every kind).

What it buys: `rlhf export --kind rankings` of 1M rankings on PostgreSQL took 10.3–10.7 client
CPU-seconds this way against 15.5–16.1 with a row built and encoded per ranking (the same
bytes; `bench/import_export.py`'s data: 100k prompts × 4 responses).
"""

from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from app import jsontext
from app.datasets.kinds import Row, preference, prompt_of, ranking_row
from app.datasets.writer import Encoded
from app.jsontext import Slot
from app.labeling.labels import Label, PromptLabels, PromptRow, Responses
from app.labeling.sources import row_source


class Form(NamedTuple):
    """The template of one shape of row."""

    format: bytes
    """A bytes %-format with a hole per string."""
    order: tuple[int, ...] | None
    """The value of each hole by index (0 the prompt, i the i-th response best first); None
    when in that order."""
    ranks: list[int] | None
    """The row's "ranks" (None when it has none: nothing tied)."""


def _form(places: tuple[int, ...], source: str) -> Form | None:
    """The template of a string prompt's ranking row with responses at `places` of one label
    of `source`; None when the row cannot be a template (`row_line` would leave it to the
    standard encoder)."""
    count = len(places)
    holes: list[str] = [Slot(i + 1) for i in range(count)]
    row = ranking_row([{"role": "user", "content": Slot(0)}], holes, places)
    row["source"] = source
    made = jsontext.template(row)
    if made is None:
        return None
    fmt, order = made
    return Form(fmt, None if order == tuple(range(count + 1)) else order, row.get("ranks"))


_UNSEEN: Any = object()


class RankingLines:
    """The lines of string prompts' ranking rows, one template per shape met so far."""

    def __init__(self) -> None:
        self.forms: dict[tuple[tuple[int, ...], str], Form | None] = {}

    def line(
        self, prompt: bytes, texts: list[bytes], places: tuple[int, ...], source: str
    ) -> tuple[bytes, list[int] | None] | None:
        """`row_line(ranking_row(…))` of a string prompt (`prompt`, encoded) and its responses
        best first (`texts`, encoded) at `places` (`kinds.Preference.places`) of one label of
        `source`, as (the line, the row's ranks); None when the shape has no template (build
        the row instead)."""
        key = (places, source)
        form = self.forms.get(key, _UNSEEN)
        if form is _UNSEEN:
            form = self.forms[key] = _form(places, source)
        if form is None:
            return None
        fmt, order, ranks = form
        if order is None:  # the holes in order: prompt, best … worst
            return fmt % (prompt, *texts), ranks
        values: list[Any] = [prompt, *texts]
        return fmt % tuple([values[i] for i in order]), ranks


Found = Iterator[tuple[PromptRow, list[Any], list[bool], Responses]]
"""What `labels.live_payloads` yields: each prompt with its live rankings' payloads and
whether each is an AI judge's."""


def encoded_rankings(
    found: Found, build: Callable[[PromptLabels], list[Any]], columns: bool = True
) -> Iterator[tuple[str, list[Row] | Encoded]]:
    """(external id, rows) of every prompt of `found` that has rows: the rankings builder's
    rows of method "all" (`build`), a string prompt's as lines and columns (`writer.Encoded`;
    lines alone without `columns`, for a file without Parquet), any other prompt's built by
    `build`."""
    lines = RankingLines()
    loads, encoded = jsontext.loads, jsontext.encoded
    for prompt, payloads, ai, responses in found:
        shown = prompt_of(messages := loads(prompt.messages))
        made = None
        if type(shown) is str:
            made = _encoded(lines, encoded(shown), payloads, ai, responses, columns)
        if made is None:
            labels = [
                Label(0, None, "ranking", payload, ai=of)
                for payload, of in zip(payloads, ai, strict=True)
            ]
            built = build(PromptLabels(prompt.id, prompt.external_id, messages, responses, labels))
            if built:
                yield prompt.external_id, [m.row for m in built]
        elif made.count:
            if columns:
                made.columns["prompt"] = [shown] * made.count
            yield prompt.external_id, made


_OF = {False: row_source([False]), True: row_source([True])}
"""A row's source by whether its one label is AI."""


def _encoded(
    lines: RankingLines,
    prompt: bytes,
    payloads: list[Any],
    ai: list[bool],
    responses: Responses,
    columns: bool,
) -> Encoded | None:
    """One string prompt's ranking rows (with `columns`, all but "prompt" in the columns);
    None when a shape has no template."""
    enc = {rid: jsontext.encoded(t) for rid, (t, _) in responses.items()}
    text = {rid: t for rid, (t, _) in responses.items()} if columns else {}
    out: list[bytes] = []
    ranked: list[list[str]] = []
    ranks: list[list[int] | None] = []
    of: list[str] = []
    line_of, get_enc, get_text = lines.line, enc.__getitem__, text.__getitem__
    for payload, is_ai in zip(payloads, ai, strict=True):
        p = preference(payload["ranking"])
        if p is None:
            continue
        best_first, places = p
        source = _OF[is_ai]
        made = line_of(prompt, list(map(get_enc, best_first)), places, source)
        if made is None:
            return None
        out.append(made[0])
        if columns:  # the Parquet values
            ranks.append(made[1])
            ranked.append(list(map(get_text, best_first)))
            of.append(source)
    if not columns:
        return Encoded(b"".join(out), len(out), {}, {})
    found: dict[str, list[Any]] = {"prompt": [], "responses": ranked}
    tags = {"prompt": "str", "responses": "strlist"}
    if any(r is not None for r in ranks):
        found["ranks"], tags["ranks"] = ranks, "intlist"
    found["source"], tags["source"] = of, "str"
    return Encoded(b"".join(out), len(out), found, tags)
