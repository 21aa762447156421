"""Rankings rows as lines without building them: `kinds.ranking_row`'s row of a string prompt,
encoded once per shape (number of responses, ties) by `jsontext.template` with the prompt and
the texts left as holes, then filled with each string encoded once (`jsontext.encoded`).
Building and encoding a dict per ranking cost more than the rest of an export or a snapshot;
the bytes are `jsontext.row_line`'s of the row (tests hold them to it)."""

from typing import Any

from app import jsontext
from app.datasets.kinds import ranking_row
from app.jsontext import Slot

Form = tuple[bytes, tuple[int, ...] | None] | None
"""A row template: (the %-format, the value of each hole by index, None when in order); None
when the row cannot be a template (`row_line` would leave it to the standard encoder)."""


def _form(count: int, tied: tuple[int, ...] | None) -> Form:
    """The template of a string prompt's ranking row with `count` responses and places `tied`
    (None: no ties): hole 0 the prompt, hole i the i-th response best first."""
    places = list(tied) if tied is not None else list(range(count))
    holes: list[str] = [Slot(i + 1) for i in range(count)]
    made = jsontext.template(ranking_row([{"role": "user", "content": Slot(0)}], holes, places))
    if made is None:
        return None
    fmt, order = made
    return fmt, (None if order == tuple(range(count + 1)) else order)


_UNSEEN: Any = object()


class RankingLines:
    """The lines of string prompts' ranking rows, one template per shape met so far."""

    def __init__(self) -> None:
        self.forms: dict[tuple[int, tuple[int, ...] | None], Form] = {}

    def line(self, prompt: bytes, texts: list[bytes], tied: list[int] | None) -> bytes | None:
        """`row_line(ranking_row(…))` of a string prompt (`prompt`, encoded) and its responses
        best first (`texts`, encoded) at places `tied` (0 = best, dense, ascending; None when
        nothing is tied); None when the shape has no template (build the row instead)."""
        key = (len(texts), None if tied is None else tuple(tied))
        form = self.forms.get(key, _UNSEEN)
        if form is _UNSEEN:
            form = self.forms[key] = _form(*key)
        if form is None:
            return None
        fmt, order = form
        if order is None:  # the holes in order: prompt, best … worst
            return fmt % (prompt, *texts)
        values: list[Any] = [prompt, *texts]
        return fmt % tuple([values[i] for i in order])
