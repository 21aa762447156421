"""Check an annotation against its project and assignment; errors name the field."""

from typing import Any

from app.errors import Invalid
from app.labeling import answers
from app.labeling.models import Assignment
from app.labeling.schemas import AnnotationIn
from app.projects import strength
from app.projects.kinds import ProjectKind, RatingScale
from app.projects.models import Project

SCALES: dict[str, set[int]] = {RatingScale.thumbs: {-1, 1}, RatingScale.zero_to_five: set(range(6))}
MAX_DEMONSTRATION = 100_000


def _ranking(values: list[Any], allowed: list[int]) -> list[int | list[int]]:
    """Response ids best first, an inner list a group of tied ones; each response once."""
    out: list[int | list[int]] = []
    seen: dict[int, str] = {}

    def take(value: Any, where: str) -> int:
        rid = answers.response_id(value, where, allowed)
        if rid in seen:
            raise Invalid(
                f"{where}: response {rid} appears twice (also at {seen[rid]})", field=where
            )
        seen[rid] = where
        return rid

    for i, entry in enumerate(values):
        if not isinstance(entry, list):
            out.append(take(entry, f"ranking[{i}]"))
            continue
        if len(entry) < 2:
            raise Invalid(
                f"ranking[{i}]: a tied group needs at least 2 responses (write a single one "
                "without brackets)",
                field=f"ranking[{i}]",
            )
        group = []
        for j, value in enumerate(entry):
            if isinstance(value, list):
                where = f"ranking[{i}][{j}]"
                raise Invalid(f"{where}: a tied group holds response ids, not lists", field=where)
            group.append(take(value, f"ranking[{i}][{j}]"))
        out.append(group)
    missing = [rid for rid in allowed if rid not in seen]
    if missing:
        raise Invalid(
            f"ranking: responses {missing} are missing; rank all {len(allowed)}", field="ranking"
        )
    return out


def _strength(value: Any, ranking: list[int | list[int]], scale: list[dict[str, Any]]) -> Any:
    """The strength value to store with a K=2 choice, or None (no scale, or a tie)."""
    tied = len(ranking) == 1
    if not scale:
        if value is not None:
            raise Invalid("strength: this project has no strength scale", field="strength")
        return None
    if tied:
        if value is not None:
            raise Invalid("strength: a tie has no strength; leave it out", field="strength")
        return None
    levels = ", ".join(
        f"{v} ({level['label']})" for v, level in zip(strength.values(scale), scale, strict=True)
    )
    if value is None:
        raise Invalid(
            f"strength: say how much better the first response is, one of {levels}",
            field="strength",
        )
    if isinstance(value, bool) or not isinstance(value, int) or value not in strength.values(scale):
        raise Invalid(
            f"strength: {value!r} is not on this project's scale: {levels}", field="strength"
        )
    return value


def _scores(values: dict[str, Any], allowed: list[int], scale: str) -> dict[str, int]:
    valid = SCALES[scale]
    out: dict[str, int] = {}
    for key, score in values.items():
        rid = answers.response_id(key, f"scores.{key}", allowed)
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
        rid = answers.response_id(key, f"flags.{key}", allowed)
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
    if body.strength is not None and expected != "ranking":
        raise Invalid(f"strength: a {project.kind} project has no strength", field="strength")
    if expected == "ranking":
        ranking = _ranking(body.ranking or [], allowed)
        payload: dict[str, Any] = {"ranking": ranking}
        value = _strength(body.strength, ranking, project.strength_scale or [])
        if value is not None:
            payload["strength"] = value
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
