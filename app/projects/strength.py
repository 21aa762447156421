"""Preference strength: how much better the chosen response of a K=2 ranking is.

A project's `strength_scale` lists its levels strongest first, each a label and the margin it
stands for (Llama 2's "significantly better … negligibly better / unsure", whose margins enter
the reward loss −log σ(r_chosen − r_rejected − margin)). A labeler answers with the level's
value: the strongest of n levels is n − 1, the weakest 0, so `{"strength": 3}` on the default
scale means "much better". An empty scale asks nothing.
"""

from typing import Any

MAX_LEVELS = 7
"""Levels a scale may have (each gets a key on the labeling page: a, b, c, …)."""
DEFAULT_STRENGTH_SCALE: list[dict[str, Any]] = [
    {"label": "much better", "margin": 1.0},
    {"label": "better", "margin": 2 / 3},
    {"label": "slightly better", "margin": 1 / 3},
    {"label": "negligibly better / unsure", "margin": 0.0},
]
"""Llama 2's four levels and its "small" margins (1, 2/3, 1/3, 0)."""


def values(scale: list[dict[str, Any]]) -> list[int]:
    """The strength values of a scale's levels, in the scale's order (strongest first)."""
    return list(range(len(scale) - 1, -1, -1))


def level(scale: list[dict[str, Any]], value: int) -> dict[str, Any]:
    """The level of a strength value (IndexError when the scale has no such value)."""
    if not 0 <= value < len(scale):
        raise IndexError(value)
    return scale[len(scale) - 1 - value]


def margin(scale: list[dict[str, Any]], value: int | None) -> float | None:
    """The margin a strength value stands for; None without a strength or a scale."""
    if value is None or not scale:
        return None
    return float(level(scale, value)["margin"])


def parse_lines(text: str) -> list[dict[str, Any]]:
    """A scale from the project form: one level per line, strongest first, `label = margin`
    (ValueError naming the line when one is not)."""
    out = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        label, sep, value = line.rpartition("=")
        if not sep or not label.strip():
            raise ValueError(
                f"line {number}: write a level as 'label = margin', e.g. 'better = 0.5'"
            )
        try:
            out.append({"label": label.strip(), "margin": float(value)})
        except ValueError:
            raise ValueError(f"line {number}: {value.strip()!r} is not a number") from None
    return out


def _number(value: float) -> str:
    short = f"{value:g}"
    return short if float(short) == value else repr(value)  # exact: saving again changes nothing


def as_lines(scale: list[dict[str, Any]]) -> str:
    """A scale as the project form shows it (the inverse of `parse_lines`)."""
    return "\n".join(f"{lvl['label']} = {_number(float(lvl['margin']))}" for lvl in scale)
