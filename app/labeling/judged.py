"""A judge's verdicts stored as a tracked annotator's labels (AI feedback).

The judge is a user named `judge:<model>` (users.source "ai"): made like a source annotator
(`auth.service.source_annotators`), it cannot sign in, take a token or a role, be a member or
be leased a task. Each verdict that gave an answer is that user's assignment of the prompt
(done, showing every response) and an annotation (source "ai", the project's kind, the payload a
labeler's submit stores, checked by the same `validation.validate`); a later verdict of the same
judge on the prompt supersedes its earlier annotation. Every verdict, an abstention included, is
a `Judgment` row (one per run and prompt), and sets the prompt's `judge_margin` (0 when the
judge abstained or its two orders disagreed).

Whether a judge label counts toward overlap is `lease_rules.judge_accepted` (the project's
`judge_accepts`, off by default); `exclusions.settle` applies it with the exclusions, so
`Assignment.counted` and the done counts have one owner.
"""

from dataclasses import dataclass
from typing import Any

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session, aliased

from app.auth import service as auth_service
from app.auth.models import User
from app.base import utcnow
from app.errors import Invalid
from app.labeling import exclusions, validation
from app.labeling.lease_rules import JUDGE_SOURCE
from app.labeling.models import (
    Annotation,
    AnnotationSource,
    Assignment,
    AssignmentStatus,
    Judgment,
)
from app.labeling.schemas import AnnotationIn
from app.projects.kinds import ProjectKind
from app.projects.models import Project, Prompt, Response


def judge_name(model: str) -> str:
    """The judge annotator's name (its users.email): `judge:<model>`."""
    return f"judge:{model}"


def judge_user(*, session: Session, model: str) -> int:
    """The id of the judge annotator of `model`, made (unable to sign in) if it is new."""
    name = judge_name(model)
    found, _ = auth_service.source_annotators(session=session, names=[name], source=JUDGE_SOURCE)
    return found[name]


def recount_project(*, session: Session, project_id: int) -> None:
    """Make the judges' labels in the project count (or not) as `judge_accepts` says now, each
    filling `judge_fills` slots."""
    judges = session.scalars(
        select(Assignment.user_id)
        .join(User, User.id == Assignment.user_id)
        .where(Assignment.project_id == project_id, User.source == JUDGE_SOURCE)
        .distinct()
    )
    for user_id in list(judges):
        exclusions.settle(session, user_id=user_id, project_id=project_id)


def certainty(row: dict[str, Any]) -> float | None:
    """How sure a verdict row is: the margin every judge rule reads (Judgment.margin, the
    prompt's judge margin, `judge_accepts`). A reward model's is its best − second reward. A
    pairwise judge's wins margin alone is 1 for every K=2 pair whose orders agreed, however
    narrowly; when the judge gave probabilities (`preference`, P(best ≻ second) averaged over
    both orders) it is weighted by 2·preference − 1, which is 0 for a coin flip and 1 for a sure
    answer. None when it abstained."""
    margin = row.get("margin")
    if not isinstance(margin, int | float) or isinstance(margin, bool):
        return None
    preference = row.get("preference")
    if isinstance(preference, int | float) and not isinstance(preference, bool):
        return float(margin) * max(0.0, 2.0 * float(preference) - 1.0)
    return float(margin)


def effective_margin(margin: float | None, abstained: bool, orders_agree: bool | None) -> float:
    """What Prompt.judge_margin records of a verdict: 0 when the judge abstained or its two
    orders disagreed, else its margin."""
    if abstained or margin is None or orders_agree is False:
        return 0.0
    return float(margin)


@dataclass(frozen=True, slots=True)
class Verdict:
    """One row of a judge run's judgments.jsonl, about one of the project's prompts."""

    prompt_id: int
    ranking: list[Any] | None
    ratings: dict[str, Any] | None
    scores: dict[str, Any]
    margin: float | None
    abstained: bool
    reason: str | None
    orders_agree: bool | None

    @classmethod
    def of(cls, row: dict[str, Any]) -> "Verdict":
        """From the trainer's row (trainer/judge.py)."""
        return cls(
            prompt_id=int(row["id"]),
            ranking=row.get("ranking"),
            ratings=row.get("ratings"),
            scores=dict(row.get("scores") or {}),
            margin=certainty(row),
            abstained=bool(row.get("abstained")),
            reason=row.get("reason"),
            orders_agree=row.get("orders_agree"),
        )


def _body(project: Project, verdict: Verdict) -> AnnotationIn:
    """The verdict as a labeler's submit would send it."""
    if project.kind == ProjectKind.ranking:
        return AnnotationIn(ranking=list(verdict.ranking or []))
    scores: dict[str, Any] = {}
    for rid, value in (verdict.ratings or {}).items():
        number = float(value)
        scores[str(rid)] = int(number) if number.is_integer() else number
    return AnnotationIn(scores=scores)


def store_verdicts(
    *, session: Session, project: Project, run_id: int, user_id: int, verdicts: list[Verdict]
) -> int:
    """Store the verdicts not stored for this run yet (the caller commits); how many were new.
    A verdict on a prompt that is gone is passed over."""
    ids = [v.prompt_id for v in verdicts]
    if not ids:
        return 0
    done = set(
        session.scalars(
            select(Judgment.prompt_id).where(Judgment.run_id == run_id, Judgment.prompt_id.in_(ids))
        )
    )
    prompts = {
        p.id: p
        for p in session.scalars(
            select(Prompt).where(Prompt.id.in_(ids), Prompt.project_id == project.id)
        )
    }
    responses: dict[int, list[int]] = {}
    for prompt_id, response_id in session.execute(
        select(Response.prompt_id, Response.id)
        .where(Response.prompt_id.in_(list(prompts)))
        .order_by(Response.prompt_id, Response.position, Response.id)
    ):
        responses.setdefault(prompt_id, []).append(response_id)
    held = {
        a.prompt_id: a
        for a in session.scalars(
            select(Assignment).where(
                Assignment.user_id == user_id, Assignment.prompt_id.in_(list(prompts))
            )
        )
    }
    new = 0
    now = utcnow()
    for verdict in verdicts:
        prompt = prompts.get(verdict.prompt_id)
        if prompt is None or verdict.prompt_id in done:
            continue
        done.add(verdict.prompt_id)
        abstained, reason = verdict.abstained, verdict.reason
        annotation_id = None
        if not abstained:
            try:
                annotation_id = _label(
                    session, project, prompt, user_id, run_id, verdict, responses, held, now
                )
            except Invalid as exc:  # e.g. a required question a judge cannot answer
                abstained, reason = True, f"its label was refused: {exc.message}"
        session.add(
            Judgment(
                project_id=project.id,
                prompt_id=prompt.id,
                run_id=run_id,
                user_id=user_id,
                annotation_id=annotation_id,
                abstained=abstained,
                reason=reason,
                margin=None if abstained else verdict.margin,
                orders_agree=verdict.orders_agree,
                scores=verdict.scores,
                created_at=now,
            )
        )
        prompt.judge_margin = effective_margin(verdict.margin, abstained, verdict.orders_agree)
        new += 1
    session.flush()
    if new:
        exclusions.settle(session, user_id=user_id, project_id=project.id)
    return new


def _label(
    session: Session,
    project: Project,
    prompt: Prompt,
    user_id: int,
    run_id: int,
    verdict: Verdict,
    responses: dict[int, list[int]],
    held: dict[int, Assignment],
    now: Any,
) -> int:
    """Store the verdict's label as the judge's (checked as a submit is); the annotation id."""
    shown = responses.get(prompt.id, [])
    assignment = held.get(prompt.id)
    if assignment is None:
        assignment = Assignment(
            project_id=project.id,
            prompt_id=prompt.id,
            user_id=user_id,
            status=AssignmentStatus.done,
            response_ids=shown,
            expires_at=now,
            created_at=now,
            completed_at=now,
            counted=False,  # exclusions.settle decides (judge_accepts)
        )
    payload, flags = validation.validate(
        project=project,
        assignment=Assignment(response_ids=shown),
        body=_body(project, verdict),
    )
    previous = None
    if assignment.id is not None:
        newer = aliased(Annotation)
        previous = session.scalar(
            select(Annotation.id).where(
                Annotation.assignment_id == assignment.id,
                ~exists().where(newer.supersedes_id == Annotation.id),
            )
        )
        assignment.response_ids = shown
        assignment.status = AssignmentStatus.done
        assignment.completed_at = now
    else:
        session.add(assignment)
        session.flush()
        held[prompt.id] = assignment
    annotation = Annotation(
        project_id=project.id,
        prompt_id=prompt.id,
        assignment_id=assignment.id,
        user_id=user_id,
        kind=project.kind,
        payload=payload,
        flags=flags,
        source=AnnotationSource.ai,
        idempotency_key=f"judge-run:{run_id}:{prompt.id}",
        supersedes_id=previous,
        created_at=now,
    )
    session.add(annotation)
    session.flush()
    return annotation.id


def judged_counts(*, session: Session, run_id: int) -> dict[str, Any]:
    """What a judge run stored: items judged, labels, abstentions (by reason, most first) and
    verdicts whose two orders disagreed."""
    mine = Judgment.run_id == run_id
    judged, labels, abstained, disagree = session.execute(
        select(
            func.count(),
            func.count(Judgment.annotation_id),
            func.count().filter(Judgment.abstained.is_(True)),
            func.count().filter(Judgment.orders_agree.is_(False)),
        ).where(mine)
    ).one()
    reason = func.coalesce(Judgment.reason, "no reason given")
    by_reason = session.execute(
        select(reason, func.count())
        .where(mine, Judgment.abstained.is_(True))
        .group_by(reason)
        .order_by(func.count().desc(), reason)
        .limit(REASONS_SHOWN)
    ).all()
    return {
        "judged": judged,
        "labels": labels,
        "abstained": abstained,
        "abstain_reasons": {text: n for text, n in by_reason},
        "orders_disagree": disagree,
    }


REASONS_SHOWN = 20
"""The most common abstention reasons a run page lists."""
