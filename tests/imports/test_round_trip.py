"""Ours → Label Studio / Argilla → ours: the same prompts, responses, labels, skips and
labelers."""

import json

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from app.auth.models import User
from app.cli import app
from app.datasets import tool_export
from app.labeling import exclusions
from app.labeling import service as labeling
from app.labeling.models import Assignment
from app.labeling.schemas import AnnotationIn
from app.projects import importer
from app.projects.models import Prompt
from tests.imports.common import FIXTURES, assignments, labels


def _texts(session, project_id: int) -> list[tuple]:  # type: ignore[no-untyped-def]
    """Each label as (prompt text, labeler, ranking or scores or demonstration), sorted."""
    prompts = dict(session.execute(select(Prompt.id, Prompt.messages)).all())
    by_external = {
        external: prompts[pid][-1]["content"]
        for pid, external in session.execute(select(Prompt.id, Prompt.external_id)).all()
    }
    out = []
    for x in labels(session, project_id):
        payload = {k: v for k, v in x["payload"].items() if k != "answers"}
        out.append((by_external[x["prompt"]], x["labeler"], json.dumps(payload, sort_keys=True)))
    return sorted(out)


def _statuses(session, project_id: int) -> list[tuple]:  # type: ignore[no-untyped-def]
    """Each assignment as (prompt text, labeler, done or skipped), sorted."""
    rows = session.execute(
        select(Prompt.messages, User.email, Assignment.status)
        .join(Prompt, Prompt.id == Assignment.prompt_id)
        .join(User, User.id == Assignment.user_id)
        .where(Assignment.project_id == project_id)
    )
    return sorted((messages[-1]["content"], email, status) for messages, email, status in rows)


def _export(session, project, tool: str, path) -> None:  # type: ignore[no-untyped-def]
    with open(path, "wb") as handle:
        for block, _ in tool_export.counted_json(session=session, project=project, tool=tool):
            handle.write(block)
    tool_export.write_settings(project=project, tool=tool, out=path)


def _labeled_project(session, factory):  # type: ignore[no-untyped-def]
    """Label Studio rankings with ties, a label of one of our own labelers and a skip of
    another."""
    project = factory.project(kind="ranking", k=3, overlap=3)
    importer.import_file(
        session=session,
        project=project,
        path=FIXTURES / "labelstudio_ranker.json",
        label_config=(FIXTURES / "labelstudio_ranker.xml").read_text(),
    )
    person = factory.user()
    task = labeling.next_task(session=session, project=project, user=person)
    assert task is not None
    ids = [r.id for r in task.responses]
    body = AnnotationIn(ranking=[ids[2], [ids[0], ids[1]]])
    labeling.submit(session=session, assignment_id=task.assignment_id, user=person, body=body)
    skipper = factory.user()
    task = labeling.next_task(session=session, project=project, user=skipper)
    assert task is not None
    labeling.skip(session=session, assignment_id=task.assignment_id, user=skipper, reason="unsure")
    return project, person, skipper


@pytest.mark.parametrize("tool", ["labelstudio", "argilla"])
def test_round_trip(session, factory, tmp_path, tool: str) -> None:
    project, person, skipper = _labeled_project(session, factory)
    path = tmp_path / "export.json"
    _export(session, project, tool, path)
    back = factory.project(kind="ranking", k=3)
    report = importer.import_file(session=session, project=back, path=path)
    assert report.format == tool
    assert (report.imported, report.labels, report.skipped_labels) == (2, 3, 1)
    before, after = _texts(session, project.id), _texts(session, back.id)
    # A labeler keeps its id in the same tool; anyone else goes under their user id.
    ids = dict(session.execute(select(User.email, User.id)).all())

    def there(labeler: str) -> str:
        return labeler if labeler.startswith(f"{tool}:") else f"{tool}:{ids[labeler]}"

    assert person.email in {labeler for _, labeler, _ in before}
    assert after == sorted((text, there(labeler), payload) for text, labeler, payload in before)
    assert any("[[" in payload for _, _, payload in after)  # the ties came back
    # The skip came back as a skip, under the skipper's name there.
    statuses = _statuses(session, project.id)
    assert (skipper.email, "skipped") in {(labeler, status) for _, labeler, status in statuses}
    assert _statuses(session, back.id) == sorted(
        (text, there(labeler), status) for text, labeler, status in statuses
    )
    again = importer.import_file(session=session, project=back, path=path)
    assert (again.imported, again.labels) == (0, 0)
    # A prompt a batch: each batch finds its own prompts' skips.
    blocks = list(tool_export.counted_json(session=session, project=project, tool=tool, batch=1))
    assert b"".join(b for b, _ in blocks) == path.read_bytes()
    assert [n for _, n in blocks] == [1, 1, 0]

    # An excluded labeler's skip is left out, as their labels are.
    exclusions.exclude_labeler(session=session, user_id=skipper.id, project_id=project.id)
    session.commit()
    _export(session, project, tool, path)
    records = json.loads(path.read_text())
    if tool == "labelstudio":
        given = [a["was_cancelled"] for t in records for a in t["annotations"]]
    else:
        given = [r["status"] for x in records for rs in x["responses"].values() for r in rs]
    assert len(given) == 3 and set(given) == {False if tool == "labelstudio" else "submitted"}


def test_pairwise_and_ratings_round_trip_through_label_studio(session, factory, tmp_path) -> None:
    pairwise = factory.project(kind="ranking", k=2)
    importer.import_file(
        session=session, project=pairwise, path=FIXTURES / "labelstudio_pairwise.json"
    )
    path = tmp_path / "pairwise.json"
    _export(session, pairwise, "labelstudio", path)
    assert json.loads(path.read_text())[0]["annotations"][0]["result"][0]["type"] == "pairwise"
    back = factory.project(kind="ranking", k=2)
    importer.import_file(session=session, project=back, path=path)
    assert _texts(session, back.id) == _texts(session, pairwise.id)
    # Label Studio → ours → Label Studio → ours: the cancelled annotation is a skip each time.
    assert ("102", "labelstudio:7", "skipped") in assignments(session, pairwise.id)
    assert _statuses(session, back.id) == _statuses(session, pairwise.id)

    questions = [
        {"name": "topic", "type": "single_choice", "options": ["math", "writing"]},
        {"name": "why", "type": "text"},
    ]
    rating = factory.project(kind="rating", k=1, rating_scale="0-5", questions=questions)
    importer.import_file(
        session=session,
        project=rating,
        path=FIXTURES / "labelstudio_rating.json",
        label_config=(FIXTURES / "labelstudio_rating.xml").read_text(),
    )
    path = tmp_path / "rating.json"
    _export(session, rating, "labelstudio", path)
    again = factory.project(kind="rating", k=1, rating_scale="0-5", questions=questions)
    importer.import_file(
        session=session,
        project=again,
        path=path,
        label_config=path.with_suffix(".xml").read_text(),
    )
    assert _texts(session, again.id) == _texts(session, rating.id)
    answers = [x["payload"]["answers"] for x in labels(session, again.id)]
    assert answers[0] == {"topic": "math", "why": "correct\nand short"}


def test_cli_exports_label_studio_tasks(engine, factory, tmp_path) -> None:
    project = factory.project(name="to label studio", kind="ranking", k=2)
    factory.session.commit()
    importer.import_file(
        session=factory.session, project=project, path=FIXTURES / "labelstudio_pairwise.json"
    )
    out = tmp_path / "tasks.json"
    result = CliRunner().invoke(
        app, ["export", "to label studio", "--kind", "labelstudio", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    tasks = json.loads(out.read_text())
    assert [len(t["annotations"]) for t in tasks] == [2, 2, 0]
    assert tasks[0]["annotations"][0]["completed_by"] == 7
    # Task 102's cancelled annotation (a skip here) goes back cancelled, with no result.
    cancelled = [a for a in tasks[1]["annotations"] if a["was_cancelled"]]
    assert cancelled == [
        {
            "completed_by": 7,
            "result": [],
            "was_cancelled": True,
            "created_at": cancelled[0]["created_at"],
        }
    ]
    assert cancelled[0]["created_at"].startswith("2024-03-02T08:00:00")
