"""Gold items (prompts with a known answer) in the lease path, and the auto-hold rule.

A labeler gets gold items at the project's `gold_rate`: after n tasks they hold about
rate·n gold ones (never a whole task more or less), at random places in the sequence, each
gold item at most once, and only while real work is also left for them, so a gold task
cannot be told from a real one. Gold items never count against `overlap`.

With `auto_hold`, a labeler whose answers to at least `hold_after_gold` gold items agree
with the known orders significantly less often than `GOLD_ACCURACY_FLOOR` stops getting tasks
in the project until an admin releases the hold; only gold answers given after the release
count towards the next hold.
"""

import random
from dataclasses import dataclass
from datetime import datetime
from itertools import combinations
from typing import Any

from sqlalchemy import Connection, and_, func, insert, select, update
from sqlalchemy.orm import Session

from app.auth.models import User
from app.base import utcnow
from app.labeling import exclusions, ranks
from app.labeling.models import (
    Annotation,
    AnnotationSource,
    Assignment,
    LabelerHold,
)
from app.projects.models import Prompt, Response
from app.stats import binomial_cdf

GOLD_ACCURACY_FLOOR = 0.7
"""Pairwise agreement with gold answers below which a labeler may be flagged (or held)."""
GOLD_SIGNIFICANCE = 0.05
"""One-sided binomial test level for `low_gold_accuracy`."""

Db = Session | Connection
"""Everything here is Core statements, so it runs on a Session or on a bare Connection (the
asyncio lease path runs it through `run_sync`)."""


@dataclass(frozen=True, slots=True)
class GoldStats:
    """A labeler's answers to gold items: items seen, agreeing and compared pairs."""

    seen: int = 0
    agree: float = 0.0
    pairs: int = 0

    @property
    def accuracy(self) -> float | None:
        """Share of gold pairs ordered as the known answer (a tie counts half)."""
        return self.agree / self.pairs if self.pairs else None

    def add(self, agree: float, pairs: int) -> "GoldStats":
        """These stats plus one more gold answer."""
        return GoldStats(self.seen + 1, self.agree + agree, self.pairs + pairs)


def gold_order(gold: dict[str, Any]) -> dict[int, float]:
    """Known answer as a value per response position (higher is better)."""
    if "ranking" in gold:
        n = len(gold["ranking"])
        return {int(pos): float(n - rank) for rank, pos in enumerate(gold["ranking"])}
    return {pos: float(v) for pos, v in enumerate(gold["scores"])}


def label_values(payload: dict[str, Any]) -> dict[int, float]:
    """A labeler's answer as a value per response id (higher is better)."""
    if "ranking" in payload:
        return ranks.values(payload["ranking"])  # tied responses share a value
    scores = payload.get("scores", {})
    return {
        int(rid): 1.0 if v is True else 0.0 if v is False else float(v) for rid, v in scores.items()
    }


def answer_agreement(
    gold: dict[str, Any], payload: dict[str, Any], position: dict[int, int]
) -> tuple[float, int]:
    """(agreeing pairs, pairs) of one answer against the known order, over strictly ordered
    gold pairs of the responses the labeler judged; a tie in the answer counts half."""
    given = {position[rid]: v for rid, v in label_values(payload).items() if rid in position}
    return agreeing_pairs(given, gold_order(gold))


def agreeing_pairs(given: dict[int, float], truth: dict[int, float]) -> tuple[float, int]:
    """(agreeing pairs, pairs) of values per response against reference values: the pairs of
    responses both judged that the reference orders strictly; a tie in `given` counts half.
    The quality report compares a labeler with a judge's suggestion by the same rule."""
    agree, pairs = 0.0, 0
    for a, b in combinations(sorted(given), 2):
        if a not in truth or b not in truth or truth[a] == truth[b]:
            continue
        pairs += 1
        if given[a] == given[b]:
            agree += 0.5
        elif (given[a] > given[b]) == (truth[a] > truth[b]):
            agree += 1.0
    return agree, pairs


def low_gold_accuracy(stats: GoldStats, min_seen: int) -> bool:
    """Enough gold items and agreement significantly below `GOLD_ACCURACY_FLOOR`."""
    if stats.seen < min_seen or not stats.pairs or stats.accuracy is None:
        return False
    if stats.accuracy >= GOLD_ACCURACY_FLOOR:
        return False
    return binomial_cdf(stats.agree, stats.pairs, GOLD_ACCURACY_FLOOR) < GOLD_SIGNIFICANCE


def gold_answers(
    *,
    session: Db,
    project_id: int,
    user_id: int | None = None,
    since: datetime | None = None,
    sources: tuple[str, ...] = (AnnotationSource.labeler,),
) -> list[tuple[int, int, dict[str, Any], dict[str, Any], dict[int, int]]]:
    """(user id, prompt id, gold, payload, response id -> position) of labelers' live answers
    to gold items, oldest first (one labeler's, and only those after `since`, if given);
    `sources` adds judges' answers (`AnnotationSource.ai`) for the quality report."""
    query = (
        select(Annotation.user_id, Annotation.prompt_id, Prompt.gold, Annotation.payload)
        .join(Prompt, Prompt.id == Annotation.prompt_id)
        .where(
            Annotation.project_id == project_id,
            Annotation.source.in_(sources),
            Prompt.is_gold.is_(True),
        )
        .order_by(Annotation.id)
    )
    if user_id is not None:
        query = query.where(Annotation.user_id == user_id)
    if since is not None:
        query = query.where(Annotation.created_at > since)
    rows = session.execute(query).all()
    positions: dict[int, dict[int, int]] = {}
    prompt_ids = sorted({row.prompt_id for row in rows})
    if prompt_ids:
        for rid, pid, pos in session.execute(
            select(Response.id, Response.prompt_id, Response.position).where(
                Response.prompt_id.in_(prompt_ids)
            )
        ):
            positions.setdefault(pid, {})[rid] = pos
    return [
        (row.user_id, row.prompt_id, row.gold or {}, row.payload, positions.get(row.prompt_id, {}))
        for row in rows
    ]


def gold_stats(
    *,
    session: Db,
    project_id: int,
    user_id: int | None = None,
    since: datetime | None = None,
    sources: tuple[str, ...] = (AnnotationSource.labeler,),
) -> dict[int, GoldStats]:
    """Gold items seen and pairwise agreement with their answers, per labeler (and per judge
    with `sources`, as in `gold_answers`)."""
    out: dict[int, GoldStats] = {}
    seen: set[tuple[int, int]] = set()
    answers = gold_answers(
        session=session, project_id=project_id, user_id=user_id, since=since, sources=sources
    )
    for uid, prompt_id, gold, payload, position in reversed(answers):
        if (uid, prompt_id) in seen:  # a correction replaces the earlier answer
            continue
        seen.add((uid, prompt_id))
        agree, pairs = answer_agreement(gold, payload, position)
        out[uid] = out.get(uid, GoldStats()).add(agree, pairs)
    return out


# --- serving ----------------------------------------------------------------------------------


def pick_gold(*, session: Db, project: Any, user_id: int) -> int | None:
    """The gold prompt to lease instead of the next real one, or None (see the module doc).

    The same statements run whether a gold item is due or not (a gold item is drawn either
    way), so the time a lease takes does not tell a gold task from a real one. The caller
    leases it only where real work is left for this labeler.
    """
    total, gold = session.execute(
        select(func.count(Assignment.id), func.count(Prompt.id))
        .select_from(Assignment)
        .outerjoin(Prompt, and_(Prompt.id == Assignment.prompt_id, Prompt.is_gold.is_(True)))
        .where(Assignment.project_id == project.id, Assignment.user_id == user_id)
    ).one()
    drawn = session.scalar(
        select(Prompt.id).where(*_unseen(project, user_id)).order_by(func.random()).limit(1)
    )
    debt = project.gold_rate * (total + 1) - gold
    if debt <= 0 or (debt < 1 and random.random() >= debt):
        return None
    return drawn


def unseen_count(*, session: Db, project: Any, user_id: int) -> int:
    """Gold items of the project this labeler has not been given yet."""
    return session.scalar(select(func.count()).where(*_unseen(project, user_id))) or 0


def _unseen(project: Any, user_id: int) -> list[Any]:
    """WHERE conditions on Prompt: the project's gold items never given to this labeler."""
    given = select(Assignment.prompt_id).where(
        Assignment.project_id == project.id, Assignment.user_id == user_id
    )
    return [Prompt.project_id == project.id, Prompt.is_gold.is_(True), Prompt.id.not_in(given)]


# --- holds ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hold:
    """Why a labeler gets no tasks in a project; `hold_id` is None until it is recorded."""

    reason: str
    hold_id: int | None = None


def _holds(session: Db, project_id: int, user_id: int) -> list[Any]:
    return list(
        session.execute(
            select(LabelerHold.id, LabelerHold.reason, LabelerHold.released_at)
            .where(LabelerHold.project_id == project_id, LabelerHold.user_id == user_id)
            .order_by(LabelerHold.id)
        )
    )


def hold_of(*, session: Db, project: Any, user_id: int, record: bool = False) -> Hold | None:
    """The labeler's hold in this project under `auto_hold`, or None; `record` writes a newly
    reached one (the caller commits). `project` needs id, auto_hold and hold_after_gold."""
    if not project.auto_hold:
        return None
    holds = _holds(session, project.id, user_id)
    active = next((h for h in holds if h.released_at is None), None)
    if active is not None:
        return Hold(active.reason, active.id)
    since = max((h.released_at for h in holds if h.released_at is not None), default=None)
    stats = gold_stats(session=session, project_id=project.id, user_id=user_id, since=since).get(
        user_id
    )
    if stats is None or not low_gold_accuracy(stats, project.hold_after_gold):
        return None
    reason = (
        f"your answers agreed with known answers on {stats.accuracy:.0%} of compared pairs "
        f"over {stats.seen} checked items; an admin will review your work"
    )
    if not record:
        return Hold(reason)
    hold_id = session.execute(
        insert(LabelerHold)
        .values(project_id=project.id, user_id=user_id, reason=reason, created_at=utcnow())
        .returning(LabelerHold.id)
    ).scalar_one()
    exclusions.settle(session, user_id=user_id, project_id=project.id)
    return Hold(reason, hold_id)


def release_hold(*, session: Db, project: Any, user_id: int, by: User | None) -> bool:
    """Reinstate a held labeler (gold answers before now no longer count); False if not held."""
    hold = hold_of(session=session, project=project, user_id=user_id, record=True)
    if hold is None or hold.hold_id is None:
        return False
    session.execute(
        update(LabelerHold)
        .where(LabelerHold.id == hold.hold_id)
        .values(released_at=utcnow(), released_by_id=by.id if by else None)
    )
    exclusions.settle(session, user_id=user_id, project_id=project.id)
    return True


def held_user_ids(*, session: Db, project_id: int) -> set[int]:
    """Labelers with a recorded, unreleased hold in the project."""
    return set(
        session.scalars(
            select(LabelerHold.user_id).where(
                LabelerHold.project_id == project_id, LabelerHold.released_at.is_(None)
            )
        )
    )
