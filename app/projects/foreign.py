"""What the parsers of other tools' exports share: the project they import into, how a rating
of another scale becomes one of the project's, answers to the project's questions, timestamps.

A parser never guesses silently: a value it maps (a 1–10 rating onto 👍/👎) is said once in the
import report's notes, and anything it cannot place (an unknown result type, a question the
project does not ask) is a `LineError` naming it.
"""

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from app.projects.formats import LineError
from app.projects.kinds import ProjectKind, RatingScale

PER_RESPONSE = {"likert", "yes_no", "multi_label"}


@dataclass
class Context:
    """The project an import goes into, and what came with the file."""

    kind: ProjectKind
    rating_scale: str
    questions: list[dict[str, Any]]
    label_config: str | None = None
    """Label Studio: the project's labeling config (XML), as Label Studio shows it."""
    settings: dict[str, Any] | None = None
    """Argilla: the dataset's settings (`.argilla/settings.json`)."""
    notes: dict[str, None] = field(default_factory=dict)
    """What the parsers mapped, each said once (a dict keeps their order)."""

    def note(self, text: str) -> None:
        """Say once, in the import report, how something was mapped."""
        self.notes.setdefault(text, None)


def question_name(name: str) -> str:
    """A source's control or question name as one of ours (lower case, `_` for the rest)."""
    return re.sub(r"[^a-z0-9_]", "_", name.strip().lower())[:40]


def question(ctx: Context, name: str, where: str) -> dict[str, Any]:
    """The project's question a source's control or question `name` answers, or LineError."""
    wanted = question_name(name)
    for q in ctx.questions:
        if q["name"] == wanted:
            return q
    known = ", ".join(q["name"] for q in ctx.questions) or "none"
    raise LineError(
        f"{where}: {name!r} is not one of this project's questions (its questions: {known}); "
        "add a question of that name to the project first"
    )


def put_answer(
    answers: dict[str, Any], q: dict[str, Any], value: Any, position: int | None, n: int, where: str
) -> None:
    """Put `value` as the answer to `q` (of response `position` for a per-response question;
    with no position, the only response)."""
    if q["type"] not in PER_RESPONSE:
        answers[q["name"]] = value
        return
    if position is None:
        if n != 1:
            raise LineError(
                f"{where}: {q['name']!r} is asked per response, but the answer names none of "
                f"the {n} responses"
            )
        position = 0
    answers.setdefault(q["name"], {})[str(position)] = value


def score(ctx: Context, value: Any, low: int, high: int, where: str) -> int:
    """A rating from `low` to `high` as a score of the project's scale (said in the notes)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise LineError(f"{where}: rating {value!r} is not a number from {low} to {high}")
    if ctx.rating_scale == RatingScale.thumbs:
        middle = (low + high) / 2
        ctx.note(f"ratings {low}–{high} became 👍 above {middle:g} and 👎 at or below it")
        return 1 if value > middle else -1
    if low >= 0 and high <= 5 and value == int(value):
        ctx.note(f"ratings {low}–{high} kept their value on the 0–5 scale")
        return int(value)
    ctx.note(f"ratings {low}–{high} were scaled linearly onto 0–5 and rounded")
    return round(5 * (value - low) / (high - low))


def likert(q: dict[str, Any], value: Any, low: int, high: int, where: str) -> int:
    """A rating from `low` to `high` as an answer to the Likert question `q` (same range)."""
    if (low, high) != (q["min"], q["max"]):
        raise LineError(
            f"{where}: a {low}–{high} rating cannot answer {q['name']!r}, a {q['min']}–{q['max']} "
            "question; give the question the same range"
        )
    return value


def timestamp(value: Any, where: str) -> datetime | None:
    """An ISO 8601 string or seconds since 1970 as a UTC datetime (None when absent)."""
    if value is None or value == "":
        return None
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return datetime.fromtimestamp(value, UTC)
        if isinstance(value, str):
            stamp = datetime.fromisoformat(value)
            return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        pass
    raise LineError(f"{where}: {value!r} is not a time (ISO 8601 or seconds since 1970)")


def key(*parts: Any) -> str:
    """A label's source id from its parts, at most 200 characters."""
    joined = ":".join(map(str, parts))
    if len(joined) > 200:
        raise LineError(f"the source id {joined[:60]}… is longer than 200 characters")
    return joined


def source_id(value: Any, what: str) -> str:
    """A record's or a user's id in the source (a string or a whole number)."""
    text = str(value) if isinstance(value, str | int) and not isinstance(value, bool) else ""
    if text == "":
        raise LineError(f"{what} must be a non-empty string or a whole number, not {value!r}")
    if len(text) > 150:
        raise LineError(f"{what} is longer than 150 characters")
    return text
