"""Argilla records (2.x nested and flattened, JSONL and Parquet; 1.x rankings with ties)."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import func, select

from app.labeling.models import Annotation
from app.projects import importer
from app.projects.models import Prompt
from tests.imports.common import FIXTURES, assignments, labels

FIRST = "0c0b9c4e-7a0d-4b25-9a34-1b4f4c6f2a11"
SECOND = "5e2f3b1a-3d11-4c63-8f8c-77b0de0c9b22"
QUESTIONS = [
    {
        "name": "topic",
        "type": "single_choice",
        "options": ["science", "cooking"],
        "required": False,
    },
    {"name": "note", "type": "text"},
]
SKY = ("Rayleigh scattering: shorter wavelengths scatter more.", "Because it reflects the ocean.")


def _project(factory):  # type: ignore[no-untyped-def]
    return factory.project(kind="ranking", k=2, questions=QUESTIONS)


def _check(session, project, report) -> None:  # type: ignore[no-untyped-def]
    assert report.format == "argilla"
    assert (report.imported, report.labels, report.skipped_labels, report.labelers) == (3, 2, 1, 2)
    assert report.notes == ["draft responses were left out (only submitted ones count)"]
    found = labels(session, project.id)
    assert [(x["prompt"], x["labeler"]) for x in found] == [
        ("rec-1", f"argilla:{FIRST}"),
        ("rec-1", f"argilla:{SECOND}"),
    ]
    assert found[0]["payload"]["ranking"] == list(SKY)
    assert found[0]["payload"]["answers"] == {
        "topic": "science",
        "note": "the first one explains it",
    }
    assert found[1]["payload"]["ranking"] == list(reversed(SKY))
    assert assignments(session, project.id) == [
        ("rec-1", f"argilla:{FIRST}", "done"),
        ("rec-1", f"argilla:{SECOND}", "done"),
        ("rec-2", f"argilla:{SECOND}", "skipped"),
    ]
    prompt = session.scalar(select(Prompt).where(Prompt.external_id == "rec-1"))
    assert prompt.messages == [{"role": "user", "content": "Why is the sky blue?"}]
    assert prompt.meta["argilla_metadata"] == {"source": "web"}
    assert prompt.meta["suggestions"]["preference"]["agent"] == "judge-v0"
    done = dict(session.execute(select(Prompt.external_id, Prompt.done_count)).all())
    assert done == {"rec-1": 2, "rec-2": 0, "rec-3": 0}


def test_nested_records_with_settings(session, factory) -> None:
    project = _project(factory)
    path = FIXTURES / "argilla_nested" / "records.json"
    _check(session, project, importer.import_file(session=session, project=project, path=path))
    again = importer.import_file(session=session, project=project, path=path)
    assert (again.imported, again.duplicates, again.labels) == (0, 3, 0)


def test_flattened_hub_rows(session, factory) -> None:
    project = _project(factory)
    path = FIXTURES / "argilla_hub" / "train.jsonl"
    _check(session, project, importer.import_file(session=session, project=project, path=path))


def test_flattened_parquet(session, factory, tmp_path) -> None:
    rows = [json.loads(line) for line in (FIXTURES / "argilla_hub" / "train.jsonl").open()]
    (tmp_path / ".argilla").mkdir()
    settings = (FIXTURES / "argilla_hub" / ".argilla" / "settings.json").read_text()
    (tmp_path / ".argilla" / "settings.json").write_text(settings)
    path = tmp_path / "train-00000-of-00001.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    project = _project(factory)
    report = importer.import_file(session=session, project=project, path=path)
    assert report.unit == "row"
    _check(session, project, report)


def test_v1_rankings_keep_their_ties(session, factory) -> None:
    project = factory.project(kind="ranking", k=3)
    path = FIXTURES / "argilla_v1_rankings.jsonl"
    report = importer.import_file(session=session, project=project, path=path)
    assert (report.format, report.labels) == ("argilla", 2)
    found = labels(session, project.id)
    assert found[0]["payload"]["ranking"] == [["Whiskers.", "Mittens."], "Cat."]
    assert found[1]["payload"]["ranking"] == ["Mittens.", "Whiskers.", "Cat."]
    assert found[0]["labeler"] == "argilla:3f1b0a4c-6a8e-4b3e-9e0c-1c2d3e4f5a66"


def test_an_unknown_question_type_is_named(session, factory, tmp_path) -> None:
    project = _project(factory)
    records = json.loads((FIXTURES / "argilla_nested" / "records.json").read_text())
    records[0]["responses"]["entities"] = [
        {"value": [{"start": 0, "end": 3, "label": "X"}], "user_id": FIRST, "status": "submitted"}
    ]
    settings = json.loads((FIXTURES / "argilla_nested" / ".argilla" / "settings.json").read_text())
    settings["questions"].append(
        {"name": "entities", "settings": {"type": "span", "field": "response1", "options": []}}
    )
    (tmp_path / ".argilla").mkdir()
    (tmp_path / ".argilla" / "settings.json").write_text(json.dumps(settings))
    path = tmp_path / "records.json"
    path.write_text(json.dumps(records))
    with pytest.raises(importer.ImportFailed) as failed:
        importer.import_file(session=session, project=project, path=path)
    message = str(failed.value)
    assert message.startswith(f"record 1: record rec-1, user {FIRST}, question 'entities'")
    assert "question type 'span' cannot be imported" in message
    assert session.scalar(select(func.count()).select_from(Annotation)) == 0
