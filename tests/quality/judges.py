"""A judge annotator and its AI labels, stored directly as a judge run stores them: the user
`judge:<model>` (source "ai"), and per prompt an assignment (done, counted toward no overlap)
with an annotation whose source is ai."""

import math
import random
from datetime import timedelta

from app.auth.models import User
from tests.helpers import judge, judge_label, prompts_of


def judge_user(session, model: str = "tiny") -> User:  # type: ignore[no-untyped-def]
    return judge(session, model)


def pl_ranking(rids: list[int], rng: random.Random, beta: float) -> list[int]:
    """Best first: Plackett–Luce on utility −position (import position 0 is best)."""
    left, out = list(range(len(rids))), []
    while left:
        weights = [math.exp(-beta * p) for p in left]
        out.append(left.pop(rng.choices(range(len(left)), weights)[0]))
    return [rids[p] for p in out]


def add_label(session, project, judge, prompt_id: int, rids: list[int], payload: dict, ago=None):  # type: ignore[no-untyped-def]
    """One AI label of `judge` on a prompt (its assignment done, not counted), an hour old
    unless `ago` says otherwise."""
    return judge_label(
        session,
        project,
        prompt_id,
        judge,
        payload,
        kind=project.kind,
        shown=rids,
        ago=ago or timedelta(hours=1),
    )


def judge_all(session, project, judge, beta: float = 0.6, seed: int = 0) -> dict[int, dict]:  # type: ignore[no-untyped-def]
    """The judge labels every prompt of the project, gold items too (rankings from a
    Plackett–Luce of strength `beta`; ratings 5, 3, 1, 0 down that ranking); returns each
    prompt's payload."""
    rng = random.Random(seed)
    out = {}
    for prompt_id, rids in prompts_of(session, project):
        ranked = pl_ranking(rids, rng, beta)
        if project.kind == "ranking":
            payload: dict = {"ranking": ranked}
        else:
            scale = [5, 3, 1, 0] if project.rating_scale == "0-5" else [1, 1, -1, -1]
            payload = {"scores": {str(r): scale[i] for i, r in enumerate(ranked)}}
        add_label(session, project, judge, prompt_id, rids, payload)
        out[prompt_id] = payload
    return out
