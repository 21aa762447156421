"""Anchoring: labelers who copy a 70%-accurate judge's suggestions are flagged
follows-suggestions; careful labelers (about 90% accurate) who see the same suggestions are
not."""

import random

from app.labeling import service as labeling
from app.labeling.schemas import AnnotationIn
from app.quality import flags as flag_tests
from app.quality import service as quality
from tests.helpers import public_id
from tests.quality import judges, sim


def _work_with_suggestions(session, project, crew, seed: int) -> None:  # type: ignore[no-untyped-def]
    """Labelers take tasks round robin: "copy" submits the task's suggestion as it is,
    "careful" ranks on their own (about 90% of pairs right)."""
    rng = random.Random(seed)
    random.seed(seed)
    pos = {public_id("response", r): p for r, p in sim.positions(session, project).items()}
    active = list(crew)
    while active:
        for user, behaviour in list(active):
            task = labeling.next_task(session=session, project=project, user=user)
            if task is None:
                active.remove((user, behaviour))
                continue
            shown = [r.id for r in task.responses]
            if behaviour == "copy":
                assert task.suggestion is not None
                ranking = task.suggestion.ranking
            else:
                ranking = sim.answer("careful", shown, pos, rng)
            body = AnnotationIn(ranking=ranking, duration_ms=int(rng.uniform(15, 40) * 1000))
            labeling.submit(session=session, assignment_id=task.assignment_id, user=user, body=body)


def test_labelers_who_copy_a_judges_suggestions_are_flagged(factory, session, tmp_path):  # type: ignore[no-untyped-def]
    project = factory.project(k=4, overlap=3, gold_rate=0.15, suggestions="prefilled")
    factory.items(project, sim.items(80, gold=10), tmp_path)
    judge = judges.judge_user(session)
    judges.judge_all(session, project, judge, beta=0.6, seed=5)
    crew = sim.crew(session, ["copy"] * 2 + ["careful"] * 4)
    _work_with_suggestions(session, project, crew, seed=6)

    report = quality.project_quality(session=session, project=project, rounds=0)
    rows = {row.user_id: row for row in report.labelers}
    judged = rows[judge.id]
    assert 0.6 <= judged.gold_accuracy <= 0.8  # a 70%-accurate judge
    for user, behaviour in crew:
        row = rows[user.id]
        assert row.suggestion_prompts >= flag_tests.MIN_LABELS
        assert row.gold_seen >= flag_tests.FOLLOWS_MIN_GOLD
        if behaviour == "copy":
            assert "follows-suggestions" in row.flags, row
            assert row.suggestion_agreement == 1.0
            evidence = {f.name: f.evidence for f in row.evidence}["follows-suggestions"]
            assert "agreed with the suggestions on 100%" in evidence
        else:
            assert "follows-suggestions" not in row.flags, row
            assert row.suggestion_agreement < 0.85
    assert "follows-suggestions" not in judged.flags
    careful = [rows[u.id].gold_accuracy for u, b in crew if b == "careful"]
    assert sum(careful) / len(careful) >= 0.85  # about 90% of gold pairs right
