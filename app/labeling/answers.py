"""Check the answers to a project's extra questions; errors name the question (and response).
`response_id` reads a response id wherever a payload writes one (ranking, scores, flags,
answers).

The definitions were validated when the project was saved (app/projects/questions.py); here they
are plain dicts read with the assignment, so a submit pays for a few dict look-ups only.
"""

from typing import Any

from app.errors import Invalid

PER_RESPONSE = {"likert", "yes_no", "multi_label"}
MAX_ID_DIGITS = 20
"""Longer digit strings are no id of any column (and `int` refuses over 4,300 digits)."""


def response_id(value: Any, where: str, allowed: list[int]) -> int:
    """A response id as a payload writes it, one of `allowed` (the assignment's responses): a
    JSON integer, or a string of ASCII digits (an object's key). Anything else (a sign, blanks,
    another script's digits such as "²" or "٣") is Invalid naming `where`. The one reader of
    response ids for rankings, scores, flags and answers."""
    if isinstance(value, str) and value.isascii() and value.isdigit():
        rid = int(value) if len(value) <= MAX_ID_DIGITS else -1
    elif isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        rid = value
    else:
        raise Invalid(f"{where}: {value!r} is not a response id", field=where)
    if rid not in allowed:
        raise Invalid(f"{where}: response {value!r} is not part of this assignment", field=where)
    return rid


def _likert(q: dict[str, Any], value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not q["min"] <= value <= q["max"]:
        raise Invalid(
            f"{where}: {value!r} is not a whole number from {q['min']} to {q['max']}", field=where
        )
    return value


def _yes_no(q: dict[str, Any], value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise Invalid(f"{where}: {value!r} is not true or false", field=where)
    return value


def _multi_label(q: dict[str, Any], value: Any, where: str) -> list[str]:
    if not isinstance(value, list):
        raise Invalid(f"{where}: {value!r} is not a list of labels", field=where)
    for label in value:
        if label not in q["options"]:
            raise Invalid(
                f"{where}: {label!r} is not one of the labels {q['options']}", field=where
            )
    return [label for label in q["options"] if label in value]  # the options' order, once each


def _single_choice(q: dict[str, Any], value: Any, where: str) -> str:
    if value not in q["options"] or not isinstance(value, str):
        raise Invalid(f"{where}: {value!r} is not one of {q['options']}", field=where)
    return value


def _text(q: dict[str, Any], value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise Invalid(f"{where}: the answer must be text", field=where)
    value = value.strip()
    if len(value) > q["max_length"]:
        raise Invalid(
            f"{where}: {len(value):,} characters, more than the limit of {q['max_length']:,}",
            field=where,
        )
    return value


CHECKS = {
    "likert": _likert,
    "yes_no": _yes_no,
    "multi_label": _multi_label,
    "single_choice": _single_choice,
    "text": _text,
}


def _per_response(q: dict[str, Any], value: Any, allowed: list[int]) -> dict[str, Any]:
    where = f"answers.{q['name']}"
    if not isinstance(value, dict):
        raise Invalid(
            f"{where}: answer per response, as {{response id: value}}; got {value!r}", field=where
        )
    out: dict[str, Any] = {}
    for key, item in value.items():
        at = f"{where}.{key}"
        rid = response_id(key, at, allowed)
        if item is not None:
            out[str(rid)] = CHECKS[q["type"]](q, item, at)
    if q["required"]:
        missing = [rid for rid in allowed if str(rid) not in out or out[str(rid)] == []]
        if missing:
            raise Invalid(
                f"{where}: responses {missing} have no answer; the question is required",
                field=where,
            )
    return out


def validate(
    questions: list[dict[str, Any]], answers: dict[str, Any], allowed: list[int]
) -> dict[str, Any]:
    """The answers to store (unanswered optional questions left out), or Invalid naming the
    question (and the response) that is wrong. `allowed`: the assignment's response ids."""
    by_name = {q["name"]: q for q in questions}
    for name in answers:
        if name not in by_name:
            known = ", ".join(by_name) or "none"
            raise Invalid(
                f"answers.{name}: not a question of this project (its questions: {known})",
                field=f"answers.{name}",
            )
    out: dict[str, Any] = {}
    for name, q in by_name.items():
        value = answers.get(name)
        if q["type"] in PER_RESPONSE:
            checked = _per_response(q, {} if value is None else value, allowed)
            if checked:
                out[name] = checked
            continue
        if value is not None and value != "":
            out[name] = CHECKS[q["type"]](q, value, f"answers.{name}")
        if q["required"] and out.get(name) in (None, ""):
            raise Invalid(
                f"answers.{name}: no answer; the question is required", field=f"answers.{name}"
            )
        if out.get(name) == "":
            del out[name]
    return out
