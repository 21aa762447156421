"""Source annotators' labels count in quality, agreement and consensus, and can be excluded."""

import json

from sqlalchemy import select

from app.aggregation import service as aggregation
from app.auth import service as auth_service
from app.labeling import exclusions
from app.labeling import service as labeling
from app.projects import importer
from app.projects.models import Prompt
from app.quality import service as quality

PAIR = ("A careful, correct answer.", "A sloppy answer.")


def _tasks(n: int) -> list[dict]:
    """n pairwise tasks: annotators 1 and 2 prefer the careful answer, 3 the sloppy one."""
    tasks = []
    for i in range(n):
        annotations = [
            {
                "id": 100 * i + who,
                "completed_by": who,
                "lead_time": 5.0 + who,
                "result": [
                    {
                        "from_name": "pw",
                        "to_name": "pw",
                        "type": "pairwise",
                        "value": {"selected": "right" if who == 3 else "left"},
                    }
                ],
            }
            for who in (1, 2, 3)
        ]
        data = {"prompt": f"question {i}", "answer1": PAIR[0], "answer2": PAIR[1]}
        tasks.append({"id": i + 1, "data": data, "annotations": annotations})
    tasks.append({"id": 999, "data": {"prompt": "open", "answer1": "x", "answer2": "y"}})
    return tasks


def _project(session, factory, tmp_path):  # type: ignore[no-untyped-def]
    project = factory.project(kind="ranking", k=2, overlap=3)
    path = tmp_path / "export.json"
    path.write_text(json.dumps(_tasks(8)))
    importer.import_file(session=session, project=project, path=path)
    return project


def _user(session, name: str):  # type: ignore[no-untyped-def]
    return auth_service.get_by_email(session=session, email=name)


def test_source_annotators_count_in_quality_and_consensus(session, factory, tmp_path) -> None:
    project = _project(session, factory, tmp_path)
    report = quality.project_quality(session=session, project=project, rounds=20)
    rows = {row.email: row for row in report.labelers}
    assert set(rows) == {"labelstudio:1", "labelstudio:2", "labelstudio:3"}
    assert all(row.labels == 8 for row in rows.values())
    assert rows["labelstudio:1"].agreement > rows["labelstudio:3"].agreement
    assert rows["labelstudio:1"].median_seconds == 6.0
    assert report.alpha is not None
    consensus = [c for _, c in aggregation.consensus_by_prompt(session=session, project=project)]
    assert len(consensus) == 8


def test_a_source_annotator_can_be_excluded(session, factory, tmp_path) -> None:
    project = _project(session, factory, tmp_path)
    dissenter = _user(session, "labelstudio:3")
    exclusions.exclude_labeler(session=session, user_id=dissenter.id, project_id=project.id)
    session.commit()
    report = quality.project_quality(session=session, project=project, rounds=20)
    rows = {row.email: row for row in report.labelers}
    assert rows["labelstudio:3"].excluded and not rows["labelstudio:1"].excluded
    for labels, _ in aggregation.consensus_by_prompt(session=session, project=project):
        assert dissenter.id not in {label.user_id for label in labels.labels}
    done = session.scalar(select(Prompt.done_count).where(Prompt.external_id == "1"))
    assert done == 2  # the excluded annotator's label no longer counts toward overlap


def test_a_person_gets_only_the_open_prompt(session, factory, tmp_path) -> None:
    project = _project(session, factory, tmp_path)
    person = factory.user()
    task = labeling.next_task(session=session, project=project, user=person)
    assert task is not None and task.messages[-1]["content"] == "open"
