"""A suggestion for a task (`Project.suggestions` shown | prefilled): the newest live AI label
of the prompt (a judge's, `Annotation.source` ai, of a judge not excluded from the project),
or else the first usable suggestion that came with an import (`prompt.meta["suggestions"]`, a
Label Studio prediction: `{"payload": {"ranking" | "scores": …by response position}}`).

It reaches the labeler in the task's own terms: the responses the task shows, by their public
ids, tied responses and scores in the task's shuffled order; never who suggested it, the
responses' models, or anything else of the prompt. A gold item gets one by the same rule as
any prompt, so the suggestion does not tell a gold item from a real one (a judge run judges
gold items like any prompt). A suggestion that does not cover every response the task shows,
or scores off the project's scale, is not shown.
"""

from functools import cache
from typing import Any

from sqlalchemy import Connection, bindparam, exists, select
from sqlalchemy.orm import aliased

from app.labeling import exclusions, public, sources
from app.labeling.imported import with_response_ids
from app.labeling.models import Annotation
from app.labeling.public import Kind
from app.labeling.schemas import Suggestion
from app.labeling.validation import SCALES
from app.projects.models import Prompt, Response

MODES = ("off", "shown", "prefilled")
"""off: no suggestion; shown: beside the answer; prefilled: the answer starts from it."""


@cache
def _ai_query() -> Any:
    newer = aliased(Annotation)
    return (
        select(Annotation.payload)
        .where(
            Annotation.prompt_id == bindparam("p_prompt"),
            sources.ai_annotation(),
            Annotation.kind == bindparam("p_kind"),
            ~exists().where(newer.supersedes_id == Annotation.id),
            ~exists().where(exclusions.applies(Annotation.user_id, Annotation.project_id)),
        )
        .order_by(Annotation.id.desc())
        .limit(1)
    )


@cache
def _imported_query() -> Any:
    return select(Prompt.meta).where(Prompt.id == bindparam("p_prompt"))


@cache
def _positions_query() -> Any:
    return (
        select(Response.id)
        .where(Response.prompt_id == bindparam("p_prompt"))
        .order_by(Response.position)
    )


def _imported(conn: Connection, prompt_id: int, kind: str) -> dict[str, Any] | None:
    """The first imported suggestion of the prompt with a payload of the project's kind, with
    response ids for its positions."""
    meta = conn.scalar(_imported_query(), {"p_prompt": prompt_id}) or {}
    found = meta.get("suggestions") if isinstance(meta, dict) else None
    if not isinstance(found, list):
        return None
    key = "ranking" if kind == "ranking" else "scores"
    for entry in found:
        payload = entry.get("payload") if isinstance(entry, dict) else None
        if isinstance(payload, dict) and key in payload:
            ids = list(conn.scalars(_positions_query(), {"p_prompt": prompt_id}))
            try:
                return with_response_ids({key: payload[key]}, ids)
            except (IndexError, ValueError, TypeError):
                continue  # positions that name no response of the prompt
    return None


def _ranking(payload: dict[str, Any], shown: list[int]) -> list[Any] | None:
    """The ranking over the shown responses (public ids, ties in the shown order); None unless
    it places each of them exactly once."""
    where = {rid: i for i, rid in enumerate(shown)}
    groups: list[list[int]] = []
    placed: list[int] = []
    for entry in payload.get("ranking") or []:
        members = entry if isinstance(entry, list) else [entry]
        try:
            mine = sorted({int(r) for r in members if int(r) in where}, key=where.__getitem__)
        except (TypeError, ValueError):
            return None
        placed += mine
        if mine:
            groups.append(mine)
    if sorted(placed) != sorted(shown):
        return None

    def pub(rid: int) -> int:
        return public.encode(Kind.response, rid)

    return [[pub(r) for r in g] if len(g) > 1 else pub(g[0]) for g in groups]


def _scores(payload: dict[str, Any], shown: list[int], scale: str) -> dict[str, int] | None:
    """Scores of the shown responses (public ids, in the shown order); None unless each has a
    score on the project's scale."""
    scores = payload.get("scores")
    if not isinstance(scores, dict):
        return None
    given = {str(k): v for k, v in scores.items()}
    out: dict[str, int] = {}
    for rid in shown:
        value = given.get(str(rid))
        if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
            return None
        if int(value) not in SCALES.get(scale, set()):
            return None
        out[str(public.encode(Kind.response, rid))] = int(value)
    return out


def for_lease(conn: Connection, project: Any, lease: Any) -> Suggestion | None:
    """The suggestion of a leased task, or None (suggestions off, a demonstration project, or
    no usable suggestion). `project` needs kind, rating_scale and suggestions."""
    mode = getattr(project, "suggestions", "off")
    if mode not in ("shown", "prefilled") or project.kind not in ("ranking", "rating"):
        return None
    parameters = {"p_prompt": lease.prompt_id, "p_kind": project.kind}
    payload = conn.scalar(_ai_query(), parameters) or _imported(conn, lease.prompt_id, project.kind)
    if not isinstance(payload, dict):
        return None
    shown = [int(r) for r in lease.response_ids]
    if project.kind == "ranking":
        ranking = _ranking(payload, shown)
        return None if ranking is None else Suggestion(mode=mode, ranking=ranking)
    scores = _scores(payload, shown, str(project.rating_scale))
    return None if scores is None else Suggestion(mode=mode, scores=scores)
