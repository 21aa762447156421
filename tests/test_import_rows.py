"""Rows the app made itself import inside the caller's transaction, all or nothing."""

import pytest
from sqlalchemy import func, select

from app.projects import importer
from app.projects.models import Prompt, Response


def _prompts(session, project) -> int:  # type: ignore[no-untyped-def]
    query = select(func.count()).select_from(Prompt).where(Prompt.project_id == project.id)
    return session.scalar(query)


def test_rows_are_stored_when_the_caller_commits(session, factory) -> None:
    project = factory.project(kind="ranking", k=2)
    rows = [{"id": f"r{i}", "prompt": f"question {i}", "responses": ["a", "b"]} for i in range(5)]
    report = importer.import_rows(session=session, project=project, rows=[*rows, rows[0]])
    assert (report.lines, report.imported, report.duplicates, report.responses) == (6, 5, 1, 10)
    session.rollback()
    assert _prompts(session, project) == 0  # nothing was committed
    importer.import_rows(session=session, project=project, rows=iter(rows))
    session.commit()
    assert _prompts(session, project) == 5
    assert session.scalar(select(func.count()).select_from(Response)) == 10


def test_a_bad_record_names_its_number_and_nothing_stays(session, factory, monkeypatch) -> None:
    project = factory.project(kind="ranking", k=2)
    monkeypatch.setattr(importer, "CHUNK", 2)  # good rows are written before the bad one
    rows = [{"id": f"r{i}", "prompt": f"question {i}"} for i in range(5)]
    rows += [{"id": "x", "prompt": "lone", "responses": ["only one"]}, {"prompt": ""}]
    with pytest.raises(importer.ImportFailed) as failed:
        importer.import_rows(session=session, project=project, rows=rows)
    assert [e.line for e in failed.value.errors] == [6, 7] and failed.value.error_count == 2
    assert "at least 2" in failed.value.errors[0].error
    session.rollback()
    assert _prompts(session, project) == 0
