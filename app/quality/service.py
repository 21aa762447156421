"""Labeler quality of a project: agreement, reliability, gold accuracy and behaviour flags.

Reads labels through the aggregation and labeling services and never writes annotations.
Gold items are judged only against their known answers; agreement, α and reliability use the
real prompts. Imported labels (no labeler) are left out.

A judge's labels (`Annotation.source` ai, under the judge annotator `judge:<model>`) give the
judge a row beside the people: its agreement with the people's consensus, its gold accuracy
and reliability. They never enter a person's consensus, reliability fit, the project medians
a person is compared with, or α (reported again with them, `alpha_with_ai`): adding a judge
changes no person's figures. A person's agreement with the judges' suggestions on the prompts
they labeled is measured against what their gold accuracy predicts (`flags.follows_suggestions`).
"""

import hashlib
from collections import defaultdict
from collections.abc import Hashable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from statistics import median
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.aggregation import service as aggregation
from app.auth import service as auth_service
from app.auth.models import User
from app.base import utcnow
from app.errors import Invalid
from app.labeling import evidence
from app.labeling import gold as gold_rules
from app.labeling.models import AnnotationSource
from app.labeling.sources import Sources
from app.projects.kinds import ProjectKind
from app.projects.models import Project, Prompt
from app.quality import flags as flag_tests
from app.quality.agreement import Values, consensus_values, krippendorff_alpha, leave_one_out
from app.quality.reliability import ReliabilityFit, fit_reliability
from app.quality.schemas import AlphaPoint, FlagOut, LabelerQuality, QualityReport

KIND_OF = {ProjectKind.ranking: "ranking", ProjectKind.rating: "rating"}


@dataclass
class _Label:
    annotation_id: int
    user_id: int
    values: Values
    order: list[int]
    """Response ids best first (ties of a rating or a ranking broken by a fixed hash)."""
    ai: bool = False
    """A judge's label (`Annotation.source` ai)."""


@dataclass
class _Collected:
    prompts: list[tuple[int, str, list[_Label]]] = field(default_factory=list)
    facts: dict[int, evidence.AnnotationFacts] = field(default_factory=dict)
    excluded: set[int] = field(default_factory=set)

    def judges(self) -> set[int]:
        """The annotators whose labels here are AI labels (judges), gold items included."""
        return {f.user_id for f in self.facts.values() if f.ai}

    def per_user(self) -> dict[int, list[_Label]]:
        out: dict[int, list[_Label]] = defaultdict(list)
        for _, _, labels in self.prompts:
            for label in labels:
                out[label.user_id].append(label)
        return out


def _values(payload: dict[str, Any]) -> Values:
    return gold_rules.label_values(payload)


def _order(annotation_id: int, values: Values) -> list[int]:
    """Best first; equal values in an order fixed by a hash of (annotation, response)."""

    def tie(rid: int) -> str:
        return hashlib.sha1(f"{annotation_id}:{rid}".encode()).hexdigest()

    return sorted(values, key=lambda rid: (-values[rid], tie(rid)))


def collect(session: Session, project: Project, sources: str = Sources.all) -> _Collected:
    """Every labeler's live labels of the project's real prompts (of `sources`: people's, AI
    judges' or all), with their context (shared by the report and the labeler drill-down)."""
    out = _Collected(excluded=aggregation.excluded_user_ids(session=session, project_id=project.id))
    kind = KIND_OF.get(project.kind)  # type: ignore[call-overload]
    out.facts = evidence.annotation_facts(session=session, project_id=project.id)
    if kind is None:
        return out
    for prompt in aggregation.prompt_labels(
        session, project.id, (kind,), with_responses=False, sources=sources
    ):
        labels = []
        for label in prompt.labels:
            if label.user_id is None or label.annotation_id not in out.facts:
                continue
            values = _values(label.payload)
            order = _order(label.annotation_id, values)
            ai = out.facts[label.annotation_id].ai
            labels.append(_Label(label.annotation_id, label.user_id, values, order, ai))
        if labels:
            out.prompts.append((prompt.prompt_id, prompt.external_id, labels))
    return out


def _fit(
    collected: _Collected, skip: set[int] | None = None, bootstrap: int = 100
) -> ReliabilityFit:
    triples: list[tuple[Hashable, Hashable, list[int]]] = [
        (prompt_id, label.user_id, label.order)
        for prompt_id, _, labels in collected.prompts
        for label in labels
        if not skip or label.user_id not in skip
    ]
    return fit_reliability(triples, bootstrap=bootstrap)


def _agreement(collected: _Collected, project: Project) -> dict[Hashable, Any]:
    """Leave-one-out τ per labeler; excluded labelers and judges never make anyone's consensus
    (a judge is measured against the people's)."""
    prompts = [[(x.user_id, x.values) for x in labels] for _, _, labels in collected.prompts]
    return leave_one_out(
        prompts,
        rankings=project.kind == ProjectKind.ranking,
        ignore=collected.excluded | collected.judges(),
    )


def _suggestion(collected: _Collected, labels: list[_Label]) -> _Label | None:
    """The suggestion a prompt's labelers get: its newest live AI label of a judge that is not
    excluded (as `labeling.suggestions` serves it)."""
    return next((x for x in reversed(labels) if x.ai and x.user_id not in collected.excluded), None)


def _judge_accuracy(
    collected: _Collected, project: Project, gold: dict[int, gold_rules.GoldStats]
) -> dict[int, tuple[float, int]]:
    """Each judge's (right pairs, pairs): on gold items, or else against the people's
    consensus of the prompts it labeled; left out below `FOLLOWS_MIN_JUDGE_PAIRS` pairs."""
    rankings = project.kind == ProjectKind.ranking
    versus: dict[int, tuple[float, int]] = {}
    for _, _, labels in collected.prompts:
        people = [x.values for x in labels if not x.ai and x.user_id not in collected.excluded]
        if not people:
            continue
        consensus = consensus_values(people, rankings)
        for x in labels:
            if x.ai:
                agree, pairs = gold_rules.agreeing_pairs(dict(x.values), dict(consensus))
                had = versus.get(x.user_id, (0.0, 0))
                versus[x.user_id] = (had[0] + agree, had[1] + pairs)
    out: dict[int, tuple[float, int]] = {}
    for judge in collected.judges():
        stats = gold.get(judge)
        agree, pairs = versus.get(judge, (0.0, 0))
        if stats is not None and stats.pairs >= flag_tests.FOLLOWS_MIN_JUDGE_PAIRS:
            out[judge] = (stats.agree, stats.pairs)
        elif pairs >= flag_tests.FOLLOWS_MIN_JUDGE_PAIRS:
            out[judge] = (agree, pairs)
    return out


@dataclass
class _Anchoring:
    """A person's agreement with the suggestions on the prompts they labeled after one."""

    agree: float = 0.0
    pairs: int = 0
    shares: list[float] = field(default_factory=list)
    """Per prompt: the share of the suggestion's ordered pairs ordered alike."""
    known: list[float] = field(default_factory=list)
    """The shares of the prompts whose judge's accuracy is known (the flag reads these)…"""
    judge_pairs: list[tuple[float, int]] = field(default_factory=list)
    """…and that judge's (right pairs, pairs), per prompt."""


def _anchoring(
    collected: _Collected, judge_accuracy: dict[int, tuple[float, int]]
) -> dict[int, _Anchoring]:
    """Per person: their labels compared with the suggestion stored before each of them."""
    out: dict[int, _Anchoring] = defaultdict(_Anchoring)
    for _, _, labels in collected.prompts:
        suggestion = _suggestion(collected, labels)
        if suggestion is None:
            continue
        since = collected.facts[suggestion.annotation_id].created_at
        for x in labels:
            if x.ai or collected.facts[x.annotation_id].created_at <= since:
                continue
            agree, pairs = gold_rules.agreeing_pairs(dict(x.values), dict(suggestion.values))
            if not pairs:
                continue
            mine = out[x.user_id]
            mine.agree += agree
            mine.pairs += pairs
            mine.shares.append(agree / pairs)
            if suggestion.user_id in judge_accuracy:
                mine.known.append(agree / pairs)
                mine.judge_pairs.append(judge_accuracy[suggestion.user_id])
    return out


def _behaviour(
    project: Project, labels: list[_Label], facts: dict[int, evidence.AnnotationFacts]
) -> tuple[list[float], list[flag_tests.Flag]]:
    """Seconds per label and the position/straight-lining flags of one labeler."""
    seconds = [ms / 1000 for x in labels if (ms := facts[x.annotation_id].duration_ms) is not None]
    found: list[flag_tests.Flag] = []
    if project.kind == ProjectKind.ranking:
        shown = [(facts[x.annotation_id].shown, x.order) for x in labels]
        shown = [(s, o) for s, o in shown if len(s) >= 2]
        firsts = sum(1 for s, o in shown if o and o[0] == s[0])
        chance = sum(1 / len(s) for s, _ in shown) / len(shown) if shown else 1.0
        flag = flag_tests.position_bias(firsts, len(shown), chance)
        if flag:
            found.append(flag)
    return seconds, found


def _flat(label: _Label) -> bool:
    return len(label.values) >= 2 and len(set(label.values.values())) == 1


def project_quality(
    *, session: Session, project: Project, rounds: int = 200, seed: int = 0
) -> QualityReport:
    """α with its interval and one row per labeler: agreement, reliability, gold, flags."""
    if not 0 <= rounds <= 10_000:
        raise Invalid("rounds must be from 0 to 10000", field="rounds")
    collected = collect(session, project)
    judges = collected.judges()
    people = [[x.values for x in labels if not x.ai] for _, _, labels in collected.prompts]
    alpha = krippendorff_alpha(people, rounds=rounds, seed=seed)
    with_ai = None
    if judges:
        everyone = [[x.values for x in labels] for _, _, labels in collected.prompts]
        with_ai = krippendorff_alpha(everyone, rounds=rounds, seed=seed)
    fit = _fit(collected, skip=judges)
    fit_with_judges = _fit(collected) if judges else fit  # a judge's reliability among people
    agreement = _agreement(collected, project)
    sources = (AnnotationSource.labeler, AnnotationSource.ai)
    gold = gold_rules.gold_stats(session=session, project_id=project.id, sources=sources)
    anchoring = _anchoring(collected, _judge_accuracy(collected, project, gold))
    per_user = collected.per_user()
    users = {u.id: u for u in auth_service.list_users(session=session)}
    project_seconds = [
        f.duration_ms / 1000
        for f in collected.facts.values()
        if f.duration_ms is not None and not f.ai
    ]
    enough = [
        a.mean for u, a in agreement.items() if a.n >= flag_tests.MIN_LABELS and u not in judges
    ]
    median_tau = median(enough) if enough else None
    flat_all = [(x.user_id, _flat(x)) for labels in per_user.values() for x in labels if not x.ai]
    held = gold_rules.held_user_ids(session=session, project_id=project.id)
    rows = []
    for user_id in sorted(set(per_user) | set(gold)):
        labels = per_user.get(user_id, [])
        judge = user_id in judges
        seconds, found = _behaviour(project, labels, collected.facts)
        if judge:
            found = []  # a judge's times and shown orders say nothing of its care
        others = [s for u, s in _durations(collected, exclude=user_id)]
        if not judge and (flag := flag_tests.too_fast(seconds, others or project_seconds)):
            found.insert(0, flag)
        if project.kind == ProjectKind.rating and not judge:
            mine = [f for u, f in flat_all if u == user_id]
            rest = [f for u, f in flat_all if u != user_id]
            share = sum(rest) / len(rest) if rest else 0.0
            if flag := flag_tests.straight_lining(sum(mine), len(mine), share):
                found.append(flag)
        stats = gold.get(user_id)
        if flag := flag_tests.gold_flag(stats, project.hold_after_gold):
            found.append(flag)
        agree = agreement.get(user_id)
        if agree and (flag := flag_tests.low_agreement(agree.mean, agree.sd, agree.n, median_tau)):
            found.append(flag)
        anchored = anchoring.get(user_id, _Anchoring())
        if flag := flag_tests.follows_suggestions(anchored.known, anchored.judge_pairs, stats):
            found.append(flag)
        rel = (fit_with_judges if judge else fit).labelers.get(user_id)
        if rel is not None and rel.shared < flag_tests.MIN_LABELS:
            rel = None  # too few shared labels: the fit would echo its prior (0.50, 0.50–0.50)
        hold = user_id in held or (
            project.auto_hold
            and gold_rules.hold_of(session=session, project=project, user_id=user_id) is not None
        )
        user = users.get(user_id)
        rows.append(
            LabelerQuality(
                user_id=user_id,
                email=user.email if user else f"user {user_id}",
                source=user.source if user else None,
                ai=judge,
                labels=len(labels),
                gold_seen=stats.seen if stats else 0,
                gold_accuracy=stats.accuracy if stats else None,
                agreement=agree.mean if agree else None,
                reliability=rel.value if rel else None,
                reliability_interval=(rel.lower, rel.upper) if rel else None,
                median_seconds=median(seconds) if seconds else None,
                suggestion_agreement=anchored.agree / anchored.pairs if anchored.pairs else None,
                suggestion_prompts=len(anchored.shares),
                flags=[f.name for f in found],
                evidence=[
                    FlagOut(name=f.name, evidence=f.evidence, p_value=f.p_value) for f in found
                ],
                excluded=user_id in collected.excluded,
                held=hold,
            )
        )
    gold_items = session.scalar(
        select(func.count()).where(Prompt.project_id == project.id, Prompt.is_gold.is_(True))
    )
    return QualityReport(
        project_id=project.id,
        kind=project.kind,
        labels=sum(len(labels) for labels in people),
        ai_labels=sum(1 for _, _, labels in collected.prompts for x in labels if x.ai),
        alpha=alpha.value,
        alpha_interval=(alpha.lower, alpha.upper) if alpha.lower is not None else None,
        alpha_with_ai=with_ai.value if with_ai else None,
        alpha_with_ai_interval=(
            (with_ai.lower, with_ai.upper) if with_ai and with_ai.lower is not None else None
        ),
        gold_items=gold_items or 0,
        labelers=rows,
    )


def _durations(collected: _Collected, exclude: int) -> list[tuple[int, float]]:
    return [
        (f.user_id, f.duration_ms / 1000)
        for f in collected.facts.values()
        if f.duration_ms is not None and f.user_id != exclude and not f.ai
    ]


def labeler_weights(
    *, session: Session, project: Project, sources: str = Sources.all
) -> dict[int, float]:
    """Reliability per labeler (excluded labelers left out), the weights of a weighted
    consensus, fitted on the labels of `sources` (a snapshot's: the labels it keeps)."""
    collected = collect(session, project, sources)
    fit = _fit(collected, skip=collected.excluded, bootstrap=0)
    return {int(k): round(v.value, 6) for k, v in fit.labelers.items()}  # type: ignore[call-overload]


def alpha_of(
    *, session: Session, project: Project, rounds: int = 200, sources: str = Sources.all
) -> tuple[Any, int]:
    """α (with interval) over the labels of `sources` that count in aggregates, and their
    number."""
    collected = collect(session, project, sources)
    prompts = [
        [x.values for x in labels if x.user_id not in collected.excluded]
        for _, _, labels in collected.prompts
    ]
    return krippendorff_alpha(prompts, rounds=rounds), sum(len(p) for p in prompts)


def alpha_over_time(*, session: Session, project: Project, days: int = 14) -> list[AlphaPoint]:
    """α of the people's labels stored up to the end of each of the last `days` UTC days."""
    collected = collect(session, project)
    today = utcnow().date()
    points = []
    for back in range(days - 1, -1, -1):
        day = today - timedelta(days=back)
        end = datetime.combine(day + timedelta(days=1), time.min, tzinfo=UTC)

        def before(label: _Label, end: datetime = end) -> bool:
            stamp = collected.facts[label.annotation_id].created_at
            stamp = stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)
            return stamp < end

        prompts = [
            [x.values for x in labels if before(x) and not x.ai]
            for _, _, labels in collected.prompts
        ]
        count = sum(len(p) for p in prompts)
        alpha = krippendorff_alpha(prompts, rounds=0).value if count else None
        points.append(AlphaPoint(day=day, alpha=alpha, labels=count))
    return points


def reinstate(*, session: Session, project: Project, user_id: int, by: User | None) -> bool:
    """Count a labeler in again in this project: its exclusion goes and a hold is released."""
    changed = gold_rules.release_hold(session=session, project=project, user_id=user_id, by=by)
    for exclusion in aggregation.list_exclusions(session=session, project_id=project.id):
        if exclusion.user_id == user_id and exclusion.project_id == project.id:
            aggregation.remove_exclusion(session=session, exclusion_id=exclusion.id)
            changed = True
    return changed
