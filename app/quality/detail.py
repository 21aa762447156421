"""One labeler's labels next to the consensus of the others and the gold answers."""

from sqlalchemy.orm import Session

from app.errors import NotFound
from app.labeling import gold as gold_rules
from app.labeling.models import AnnotationSource
from app.projects.kinds import ProjectKind
from app.projects.models import Project
from app.quality import service
from app.quality.agreement import consensus_values, tau_b
from app.quality.schemas import LabelComparison, LabelerDetail


def _best_first(values: dict[int, float]) -> list[int]:
    return sorted(values, key=lambda rid: (-values[rid], rid))


def labeler_detail(
    *, session: Session, project: Project, user_id: int, limit: int = 200
) -> LabelerDetail:
    """The labeler's quality row and their newest labels (gold answers first) with the
    consensus of the other people who labeled them (a judge's labels are in no one's), or the
    known answer for gold items."""
    report = service.project_quality(session=session, project=project, rounds=0)
    row = next((r for r in report.labelers if r.user_id == user_id), None)
    if row is None:
        raise NotFound(f"user {user_id} has no labels in project {project.id}", field="user_id")
    collected = service.collect(session, project)
    rankings = project.kind == ProjectKind.ranking
    out: list[LabelComparison] = []
    sources = (AnnotationSource.labeler, AnnotationSource.ai)
    for _, prompt_id, gold, payload, position in reversed(
        gold_rules.gold_answers(
            session=session, project_id=project.id, user_id=user_id, sources=sources
        )
    ):
        values = gold_rules.label_values(payload)
        truth_by_pos = gold_rules.gold_order(gold)
        truth = {rid: truth_by_pos[pos] for rid, pos in position.items() if pos in truth_by_pos}
        out.append(
            LabelComparison(
                prompt_id=prompt_id,
                external_id="",
                is_gold=True,
                label=_best_first(values),
                scores=None if rankings else values,
                consensus=_best_first({r: v for r, v in truth.items() if r in values}),
                tau=tau_b(values, truth),
                shown=[],
                seconds=None,
            )
        )
    for prompt_id, external_id, labels in reversed(collected.prompts):
        mine = [x for x in labels if x.user_id == user_id]
        if not mine:
            continue
        others = [x.values for x in labels if x.user_id != user_id and not x.ai]
        consensus = consensus_values(others, rankings) if others else None
        facts = collected.facts[mine[-1].annotation_id]
        out.append(
            LabelComparison(
                prompt_id=prompt_id,
                external_id=external_id,
                is_gold=False,
                label=mine[-1].order,
                scores=None if rankings else dict(mine[-1].values),
                consensus=_best_first(dict(consensus)) if consensus else None,
                tau=tau_b(mine[-1].values, consensus) if consensus else None,
                shown=facts.shown,
                seconds=facts.duration_ms / 1000 if facts.duration_ms is not None else None,
            )
        )
        if len(out) >= limit:
            break
    return LabelerDetail(row=row, labels=out)
