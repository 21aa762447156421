"""Simulated labelers that work through the real labeling service (lease, submit)."""

import math
import random

from sqlalchemy import select, text

from app.labeling import service as labeling
from app.labeling.schemas import AnnotationIn
from app.projects.models import Prompt
from tests.helpers import prompts_of, public_id, row_id


def items(n: int, k: int = 4, prefix: str = "p", gold: int = 0, kind: str = "ranking") -> list:
    """n prompts whose response j has true utility −j; the first `gold` carry the answer."""
    out = []
    for i in range(n):
        line = {
            "id": f"{prefix}{i}",
            "prompt": f"question {prefix}{i}",
            "responses": [{"text": f"answer {i}.{j}", "model": f"m{j}"} for j in range(k)],
        }
        if i < gold:
            line["gold"] = (
                {"ranking": list(range(k))} if kind == "ranking" else {"scores": [5, 3, 1, 0][:k]}
            )
        out.append(line)
    return out


def crew(session, behaviours: list[str], prefix: str = "sim") -> list:  # type: ignore[no-untyped-def]
    """(labeler, behaviour) pairs; no password (they work through the service, not a login)."""
    from app.auth.models import User

    users = [
        User(email=f"{prefix}{i}-{b}@example.com", role="labeler") for i, b in enumerate(behaviours)
    ]
    session.add_all(users)
    session.commit()
    return list(zip(users, behaviours, strict=True))


def positions(session, project) -> dict[int, int]:  # type: ignore[no-untyped-def]
    """Response id -> import position (its true rank, 0 = best) over the project."""
    return {rid: pos for _, rids in prompts_of(session, project) for pos, rid in enumerate(rids)}


def gold_prompt_ids(session, project) -> set[int]:  # type: ignore[no-untyped-def]
    return set(
        session.scalars(
            select(Prompt.id).where(Prompt.project_id == project.id, Prompt.is_gold.is_(True))
        )
    )


def answer(behaviour: str, shown: list[int], pos: dict[int, int], rng: random.Random) -> list[int]:
    """A ranking, best first, of the shown response ids."""
    if behaviour == "random":
        return rng.sample(shown, len(shown))
    if behaviour == "first":  # position-biased: takes the shown order as it comes
        return list(shown)
    if behaviour == "contrarian":
        return sorted(shown, key=lambda r: -pos[r])
    left, out = list(shown), []  # careful (and rushing): Plackett–Luce on utility −position
    while left:
        weights = [math.exp(-2.0 * pos[r]) for r in left]
        out.append(left.pop(rng.choices(range(len(left)), weights)[0]))
    return out


def seconds(behaviour: str, rng: random.Random) -> float:
    return rng.uniform(1.0, 2.5) if behaviour == "rush" else rng.uniform(15.0, 40.0)


def seed_database(session, rng: random.Random) -> None:  # type: ignore[no-untyped-def]
    """Seed PostgreSQL's `random()` (the lease's shown order and gold draw) on the connection
    the next lease runs on, so a simulation is as repeatable there as Python's seed makes it."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT setseed(:s)"), {"s": rng.uniform(-1, 1)})


def work(session, project, crew, seed: int = 0, limit: int = 10_000, shuffle: bool = False):  # type: ignore[no-untyped-def]
    """Labelers (user, behaviour) take tasks round robin (in a new random order each round
    with `shuffle`) until none is left; returns the prompt ids each labeler was served."""
    rng = random.Random(seed)
    random.seed(seed)  # the service's shown order and gold draws
    pos = {public_id("response", r): p for r, p in positions(session, project).items()}
    served: dict[int, list[int]] = {user.id: [] for user, _ in crew}
    active = list(crew)
    while active and limit > 0:
        if shuffle:
            rng.shuffle(active)
        for user, behaviour in list(active):
            limit -= 1
            seed_database(session, rng)
            task = labeling.next_task(session=session, project=project, user=user)
            if task is None:
                active.remove((user, behaviour))
                continue
            shown = [r.id for r in task.responses]
            served[user.id].append(row_id("prompt", task.prompt_id))
            ranked = answer(behaviour, shown, pos, rng)
            if project.kind == "rating":
                body = AnnotationIn(
                    scores={
                        str(r): 3 if behaviour == "flat" else max(0, 5 - 2 * ranked.index(r))
                        for r in shown
                    },
                    duration_ms=int(seconds(behaviour, rng) * 1000),
                )
            else:
                body = AnnotationIn(ranking=ranked, duration_ms=int(seconds(behaviour, rng) * 1000))
            labeling.submit(session=session, assignment_id=task.assignment_id, user=user, body=body)
    return served
