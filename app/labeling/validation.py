"""Check an annotation against its project and assignment; errors name the field."""

from typing import Any

from app.errors import Invalid
from app.labeling import answers
from app.labeling.models import Assignment
from app.labeling.schemas import AnnotationIn
from app.projects.kinds import ProjectKind, RatingScale
from app.projects.models import Project

SCALES: dict[str, set[int]] = {RatingScale.thumbs: {-1, 1}, RatingScale.zero_to_five: set(range(6))}
MAX_DEMONSTRATION = 100_000


def _response_id(value: Any, where: str, allowed: list[int]) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit():
        raise Invalid(f"{where}: {value!r} is not a response id", field=where)
    rid = int(value)
    if rid not in allowed:
        raise Invalid(f"{where}: response {rid} is not part of this assignment", field=where)
    return rid


def _ranking(values: list[Any], allowed: list[int]) -> list[int]:
    ids = [_response_id(v, f"ranking[{i}]", allowed) for i, v in enumerate(values)]
    seen: set[int] = set()
    for i, rid in enumerate(ids):
        if rid in seen:
            raise Invalid(f"ranking[{i}]: response {rid} appears twice", field=f"ranking[{i}]")
        seen.add(rid)
    missing = [rid for rid in allowed if rid not in seen]
    if missing:
        raise Invalid(
            f"ranking: responses {missing} are missing; rank all {len(allowed)}", field="ranking"
        )
    return ids


def _scores(values: dict[str, Any], allowed: list[int], scale: str) -> dict[str, int]:
    valid = SCALES[scale]
    out: dict[str, int] = {}
    for key, score in values.items():
        rid = _response_id(key, f"scores.{key}", allowed)
        if isinstance(score, bool) or not isinstance(score, int) or score not in valid:
            raise Invalid(
                f"scores.{key}: {score!r} is not on the {scale} scale {sorted(valid)}",
                field=f"scores.{key}",
            )
        out[str(rid)] = score
    missing = [rid for rid in allowed if str(rid) not in out]
    if missing:
        raise Invalid(f"scores: responses {missing} have no score", field="scores")
    return out


def _demonstration(value: str | list[Any]) -> str | list[dict[str, str]]:
    if isinstance(value, str):
        if not value.strip():
            raise Invalid("demonstration: the text is empty", field="demonstration")
        if len(value) > MAX_DEMONSTRATION:
            raise Invalid(
                f"demonstration: {len(value):,} characters, more than the limit of "
                f"{MAX_DEMONSTRATION:,}",
                field="demonstration",
            )
        return value
    if not value:
        raise Invalid("demonstration: the conversation is empty", field="demonstration")
    turns = []
    for i, turn in enumerate(value):
        where = f"demonstration[{i}]"
        if not isinstance(turn, dict) or turn.get("role") not in {"user", "assistant"}:
            raise Invalid(f"{where}: needs role user or assistant", field=where)
        content = turn.get("content")
        if not isinstance(content, str) or not content.strip():
            raise Invalid(f"{where}.content: the text is empty", field=f"{where}.content")
        if len(content) > MAX_DEMONSTRATION:
            raise Invalid(
                f"{where}.content: {len(content):,} characters, more than the limit of "
                f"{MAX_DEMONSTRATION:,}",
                field=f"{where}.content",
            )
        turns.append({"role": turn["role"], "content": content})
    if turns[-1]["role"] != "assistant":
        raise Invalid(
            "demonstration: the conversation must end with an assistant turn",
            field=f"demonstration[{len(turns) - 1}]",
        )
    return turns


def _flags(values: dict[str, list[Any]], allowed: list[int], criteria: list[str]) -> dict:
    out: dict[str, list[str]] = {}
    for key, names in values.items():
        rid = _response_id(key, f"flags.{key}", allowed)
        for name in names:
            if name not in criteria:
                raise Invalid(
                    f"flags.{key}: {name!r} is not a criterion of this project {criteria}",
                    field=f"flags.{key}",
                )
        if names:
            out[str(rid)] = sorted(set(names))
    return out


def validate(
    *, project: Project, assignment: Assignment, body: AnnotationIn
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The payload and flags to store, or Invalid naming the field that is wrong."""
    given = [k for k in ("ranking", "scores", "demonstration") if getattr(body, k) is not None]
    expected = {
        ProjectKind.ranking: "ranking",
        ProjectKind.rating: "scores",
        ProjectKind.demonstration: "demonstration",
    }[ProjectKind(project.kind)]
    if given != [expected]:
        raise Invalid(
            f"this is a {project.kind} project: send exactly one field, {expected!r}",
            field=expected,
        )
    allowed = [int(r) for r in assignment.response_ids]
    if expected == "ranking":
        payload: dict[str, Any] = {"ranking": _ranking(body.ranking or [], allowed)}
    elif expected == "scores":
        payload = {"scores": _scores(body.scores or {}, allowed, project.rating_scale)}
    else:
        payload = {"demonstration": _demonstration(body.demonstration or "")}
    flags = _flags(body.flags, allowed, project.criteria)
    if project.questions or body.answers:
        given_answers = answers.validate(project.questions or [], body.answers, allowed)
        if given_answers:
            payload["answers"] = given_answers
    return payload, flags
