"""Answers to a project's questions in exported rows, and every aspect in `ratings` snapshots."""

import json

import pytest

from app.datasets import export
from app.labeling import service as labeling
from app.labeling.schemas import AnnotationIn
from tests.datasets.test_snapshots import read_jsonl, read_parquet, snap
from tests.helpers import ranking_items, row_id

QUESTIONS = [
    {"name": "helpfulness", "type": "likert", "min": 1, "max": 7},
    {"name": "honest", "type": "yes_no", "required": False},
    {"name": "why", "type": "text"},
]


@pytest.fixture(autouse=True)
def artifacts(tmp_path, monkeypatch, engine):  # type: ignore[no-untyped-def]
    from app.config import get_settings

    monkeypatch.setenv("RLHF_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def label(session, project, user, main, answers, flags=None):  # type: ignore[no-untyped-def]
    """Lease the labeler's next task, answer it through the labeling service; returns the task.
    `main(ids)` gives the main payload, `answers(ids)` the answers, with the public ids of the
    responses in import order; returns their row ids in that order."""
    task = labeling.next_task(session=session, project=project, user=user)
    ids = sorted((r.id for r in task.responses), key=lambda i: row_id("response", i))
    body = AnnotationIn(**main(ids), answers=answers(ids), flags=(flags or (lambda _: {}))(ids))
    labeling.submit(session=session, assignment_id=task.assignment_id, user=user, body=body)
    return [row_id("response", i) for i in ids]


def export_rows(**kwargs):  # type: ignore[no-untyped-def]
    return [row for batch in export.row_batches(**kwargs) for row in batch]


def texts(session, ids):  # type: ignore[no-untyped-def]
    from app.projects.models import Response

    return [session.get(Response, i).text for i in ids]


def test_raw_export_rows_carry_the_answers_aligned_with_their_responses(
    session, factory, tmp_path
) -> None:
    project = factory.project(kind="ranking", k=2, questions=QUESTIONS, criteria=["unsafe"])
    factory.items(project, ranking_items(1, k=2), tmp_path)
    user = factory.user()
    ids = label(
        session,
        project,
        user,
        lambda ids: {"ranking": [ids[1], ids[0]]},  # the second response is better
        lambda ids: {
            "helpfulness": {str(ids[0]): 2, str(ids[1]): 6},
            "honest": {str(ids[1]): True},
            "why": "clearer",
        },
        lambda ids: {str(ids[0]): ["unsafe"]},
    )
    worse, better = texts(session, ids)
    [ranking] = export_rows(session=session, project=project, kind="rankings")
    assert ranking["responses"] == [better, worse]
    assert ranking["answers"] == {
        "helpfulness": [6, 2],  # aligned with `responses`
        "honest": [True, None],  # optional, unanswered for the worse one
        "why": "clearer",
        "flags": [[], ["unsafe"]],  # the criteria, a multi-label question named flags
    }
    [pair] = export_rows(session=session, project=project, kind="pairs")
    assert (pair["chosen"], pair["rejected"]) == (better, worse)
    assert pair["answers"]["helpfulness"] == [6, 2] and pair["answers"]["why"] == "clearer"
    plain = factory.project(kind="ranking", k=2)  # no questions, no criteria: rows as before
    factory.items(plain, ranking_items(1, k=2, prefix="q"), tmp_path)
    label(session, plain, user, lambda ids: {"ranking": ids}, lambda ids: {})
    [row] = export_rows(session=session, project=plain, kind="rankings")
    assert set(row) == {"prompt", "responses", "source"}


def test_ratings_snapshot_carries_every_aspect(session, factory, tmp_path) -> None:
    project = factory.project(
        kind="rating", k=2, overlap=2, rating_scale="0-5", questions=QUESTIONS
    )
    factory.items(project, ranking_items(1, k=2), tmp_path)
    scores = [(5, 1, 7, 2), (3, 1, 5, 2)]  # per labeler: main a, main b, helpfulness a, b
    for main_a, main_b, help_a, help_b in scores:
        label(
            session,
            project,
            factory.user(),
            lambda ids, a=main_a, b=main_b: {"scores": {str(ids[0]): a, str(ids[1]): b}},
            lambda ids, a=help_a, b=help_b: {
                "helpfulness": {str(ids[0]): a, str(ids[1]): b},
                "why": "x",
            },
        )
    snapshot, _ = snap(session, project, kind="ratings", split=1.0)
    rows = read_jsonl(snapshot, "train")
    assert [(r["response"], r["score"], r["scores"]) for r in rows] == [
        ("answer 0.0", 4.0, {"score": 4.0, "helpfulness": 6.0}),
        ("answer 0.1", 1.0, {"score": 1.0, "helpfulness": 2.0}),
    ]
    assert read_parquet(snapshot, "train") == rows  # `scores` travels as JSON text in Parquet
    raw = export_rows(session=session, project=project, kind="ratings")
    assert [r["answers"] for r in raw[:2]] == [
        {"helpfulness": 7, "why": "x"},  # the value for the row's response
        {"helpfulness": 2, "why": "x"},
    ]


def test_a_ranking_project_with_a_likert_question_gives_ratings_rows(
    session, factory, tmp_path
) -> None:
    project = factory.project(kind="ranking", k=2, questions=QUESTIONS[:1])
    factory.items(project, ranking_items(1, k=2), tmp_path)
    label(
        session,
        project,
        factory.user(),
        lambda ids: {"ranking": ids},
        lambda ids: {"helpfulness": {str(ids[0]): 7, str(ids[1]): 3}},
    )
    snapshot, _ = snap(session, project, kind="ratings", split=1.0)
    rows = read_jsonl(snapshot, "train")
    assert rows == [
        {
            "prompt": "question 0",
            "response": "answer 0.0",
            "scores": {"helpfulness": 7.0},
            "source": "human",
        },
        {
            "prompt": "question 0",
            "response": "answer 0.1",
            "scores": {"helpfulness": 3.0},
            "source": "human",
        },
    ]


def test_sft_rows_carry_the_per_task_answers(session, factory, tmp_path) -> None:
    questions = [{"name": "topic", "type": "single_choice", "options": ["code", "prose"]}]
    project = factory.project(kind="demonstration", questions=questions)
    factory.items(project, [{"id": "d", "prompt": "say hi"}], tmp_path)
    label(
        session,
        project,
        factory.user(),
        lambda _: {"demonstration": "hi"},
        lambda _: {"topic": "prose"},
    )
    rows = export_rows(session=session, project=project, kind="sft")
    assert rows == [
        {"prompt": "say hi", "completion": "hi", "source": "human", "answers": {"topic": "prose"}}
    ]
    assert json.loads(json.dumps(rows[0])) == rows[0]
