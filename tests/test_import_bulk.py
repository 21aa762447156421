"""Bulk import (COPY on PostgreSQL, executemany on SQLite): files of many chunks stay all or
nothing, name their bad lines, store exactly what the file says, and report progress."""

import json

import pytest
from sqlalchemy import func, select, text
from typer.testing import CliRunner

from app.labeling.models import Annotation
from app.projects import importer
from app.projects.formats import parse_native
from app.projects.models import Prompt, Response
from tests.helpers import ranking_items


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of 7 prompts, so that a few dozen lines cross many chunk boundaries."""
    monkeypatch.setattr(importer, "CHUNK", 7)


def _write(tmp_path, lines: list) -> object:  # type: ignore[no-untyped-def]
    path = tmp_path / "items.jsonl"
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


def _counts(session, project) -> tuple[int, int, int]:  # type: ignore[no-untyped-def]
    session.rollback()
    prompts = session.scalar(
        select(func.count()).select_from(Prompt).where(Prompt.project_id == project.id)
    )
    responses = session.scalar(
        select(func.count())
        .select_from(Response)
        .join(Prompt, Prompt.id == Response.prompt_id)
        .where(Prompt.project_id == project.id)
    )
    annotations = session.scalar(
        select(func.count()).select_from(Annotation).where(Annotation.project_id == project.id)
    )
    return prompts, responses, annotations


def test_a_bad_line_deep_in_a_many_chunk_file_stores_nothing(session, factory, tmp_path) -> None:
    project = factory.project(kind="ranking", k=2)
    lines: list = ranking_items(60, k=2)
    lines[40] = '{"prompt": "x", "responses": ["only one"]}'
    lines[52] = "{not json"
    path = _write(tmp_path, lines)
    with pytest.raises(importer.ImportFailed) as failed:
        importer.import_file(session=session, project=project, path=path)
    assert [e.line for e in failed.value.errors] == [41, 53]
    assert "line 41" in str(failed.value) and "nothing was imported" in str(failed.value)
    assert _counts(session, project) == (0, 0, 0)
    # the same file, fixed, imports completely afterwards
    lines[40], lines[52] = (
        ranking_items(1, k=2, prefix="a")[0],
        ranking_items(1, k=2, prefix="b")[0],
    )
    report = importer.import_file(session=session, project=project, path=_write(tmp_path, lines))
    assert report.imported == 60 and _counts(session, project) == (60, 120, 0)


def test_stored_rows_are_exactly_the_parsed_lines(session, factory, tmp_path) -> None:
    project = factory.project(kind="ranking", k=3)
    lines = []
    for i in range(30):
        line = {
            "id": i if i % 2 else f"x-{i}",
            "messages": [
                {"role": "system", "content": f"be brief {i}"},
                {"role": "user", "content": f'question {i} — «ünïcode» \U0001f600 "quoted" \\'},
            ],
            "responses": [
                {
                    "text": f"answer {i}.{j}\n\ttabbed",
                    "model": f"m{j}" if j else None,
                    "meta": {"j": j},
                }
                for j in range(3)
            ],
            "meta": {"n": i, "big": 2**70, "f": 0.1 * i, "nested": {"a": [1, None, True]}},
        }
        if i % 5 == 0:
            line["gold"] = {"ranking": [2, 0, 1]}
        lines.append(line)
    report = importer.import_file(session=session, project=project, path=_write(tmp_path, lines))
    assert report.imported == 30 and report.responses == 90
    session.rollback()
    stored = session.scalars(
        select(Prompt).where(Prompt.project_id == project.id).order_by(Prompt.id)
    ).all()
    assert [p.external_id for p in stored] == [str(x["id"]) for x in lines]
    for prompt, line in zip(stored, lines, strict=True):
        item = parse_native(line)
        assert prompt.messages == item.messages
        assert prompt.meta == item.meta and prompt.meta["big"] == 2**70
        assert prompt.is_gold == (item.gold is not None) and prompt.gold == item.gold
        assert prompt.done_count == 0 and prompt.extra_labels == 0 and prompt.retired_at is None
        assert prompt.created_at is not None and prompt.created_at.tzinfo is not None
        responses = session.scalars(
            select(Response).where(Response.prompt_id == prompt.id).order_by(Response.position)
        ).all()
        assert [(r.position, r.text, r.model, r.meta) for r in responses] == [
            (j, r["text"], r["model"], r["meta"]) for j, r in enumerate(item.responses)
        ]
        assert all(r.model_id is None and r.sample_index is None for r in responses)


def test_duplicates_within_the_file_and_in_the_project_across_chunks(
    session, factory, tmp_path
) -> None:
    project = factory.project(kind="ranking", k=2)
    first = importer.import_file(
        session=session, project=project, path=_write(tmp_path, ranking_items(10, k=2))
    )
    assert first.imported == 10
    # ids p5…p24, with p20…p24 twice: 5 already stored, 5 repeated in the file
    lines = ranking_items(25, k=2)[5:] + ranking_items(25, k=2)[20:]
    report = importer.import_file(session=session, project=project, path=_write(tmp_path, lines))
    assert (report.imported, report.duplicates) == (15, 10)
    assert _counts(session, project) == (25, 50, 0)


def test_imported_rankings_name_the_right_responses(session, factory, tmp_path) -> None:
    project = factory.project(kind="ranking", k=2)
    lines = [{"prompt": f"q{i}", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(20)]
    report = importer.import_file(
        session=session, project=project, path=_write(tmp_path, lines), fmt="trl"
    )
    assert report.rankings == 20
    session.rollback()
    for annotation in session.scalars(
        select(Annotation).where(Annotation.project_id == project.id)
    ):
        texts = dict(
            session.execute(
                select(Response.id, Response.text).where(Response.prompt_id == annotation.prompt_id)
            ).all()
        )
        best, worst = annotation.payload["ranking"]
        assert texts[best].startswith("good") and texts[worst].startswith("bad")
        assert texts[best][5:] == texts[worst][4:]


def test_skip_invalid_stores_every_good_line_of_every_chunk(session, factory, tmp_path) -> None:
    project = factory.project(kind="ranking", k=2)
    lines: list = ranking_items(30, k=2)
    for bad in (3, 14, 29):
        lines[bad] = '{"prompt": 5}'
    report = importer.import_file(
        session=session, project=project, path=_write(tmp_path, lines), skip_invalid=True
    )
    assert report.imported == 27 and [e.line for e in report.skipped] == [4, 15, 30]
    assert _counts(session, project) == (27, 54, 0)


def test_progress_counts_up_to_the_whole_file(session, factory, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(importer, "PROGRESS_EVERY", 10)
    project = factory.project(kind="ranking", k=2)
    calls: list[tuple[int, int, int]] = []
    report = importer.import_file(
        session=session,
        project=project,
        path=_write(tmp_path, ranking_items(50, k=2)),
        progress=lambda *args: calls.append(args),
    )
    assert report.imported == 50
    done = [d for _, d, _ in calls]
    assert done == sorted(done) and len(calls) >= 5
    assert calls[-1][0] == 50 and calls[-1][1] == calls[-1][2] > 0


def test_cli_progress_bar_only_when_asked_or_on_a_terminal(engine, factory, tmp_path) -> None:
    from app.cli import app

    project = factory.project(kind="ranking", k=2)
    path = _write(tmp_path, ranking_items(20, k=2))
    runner = CliRunner()
    quiet = runner.invoke(app, ["import", str(project.id), str(path), "--json"])
    assert quiet.exit_code == 0, quiet.output
    assert "import [" not in quiet.stderr and json.loads(quiet.stdout)["imported"] == 20
    shown = runner.invoke(app, ["import", str(project.id), str(path), "--progress", "--json"])
    assert shown.exit_code == 0, shown.output
    assert "import [" in shown.stderr and "prompts" in shown.stderr
    assert json.loads(shown.stdout)["duplicates"] == 20


def test_the_page_import_reports_progress_to_its_poll(
    client, factory, tmp_path, monkeypatch
) -> None:
    from app.projects import import_progress

    monkeypatch.setenv("RLHF_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    from app.config import get_settings

    get_settings.cache_clear()
    monkeypatch.setattr(importer, "PROGRESS_EVERY", 5)
    monkeypatch.setattr(import_progress, "EVERY", 0)
    states: list[dict] = []
    real = import_progress.ImportProgress._write

    def recording(self, state):  # type: ignore[no-untyped-def]
        states.append(state)
        real(self, state)

    monkeypatch.setattr(import_progress.ImportProgress, "_write", recording)
    admin = factory.user("admin")
    project = factory.project(kind="ranking", k=2)
    body = "".join(json.dumps(x) + "\n" for x in ranking_items(40, k=2))
    progress_id = "0123456789abcdef" * 2
    url = f"/admin/projects/{project.id}/import"
    answer = client.post(
        url,
        headers=admin.headers,
        data={"format": "auto", "progress_id": progress_id},
        files={"file": ("items.jsonl", body, "application/x-ndjson")},
    )
    assert answer.status_code == 200 and "Imported 40 prompts" in answer.text
    rows = [s["rows"] for s in states if not s["finished"]]
    assert rows == sorted(rows) and rows[-1] >= 35 and len(rows) >= 8
    polled = client.get(f"{url}/progress?id={progress_id}", headers=admin.headers)
    assert polled.json() == {"rows": 40, "done": 1, "total": 1, "finished": True}

    bad = body + '{"prompt": "x", "responses": ["one"]}\n'
    failed = client.post(
        url,
        headers=admin.headers,
        data={"format": "auto", "progress_id": "f" * 32},
        files={"file": ("items.jsonl", bad, "application/x-ndjson")},
    )
    assert failed.status_code == 422 and '<td class="num">41</td>' in failed.text
    polled = client.get(f"{url}/progress?id={'f' * 32}", headers=admin.headers).json()
    assert polled["finished"] and polled["rows"] == 0
    for unknown in ("e" * 32, "../../etc/passwd", ""):
        missing = client.get(f"{url}/progress", params={"id": unknown}, headers=admin.headers)
        assert missing.status_code == 404


def _analyzed(session, table: str) -> bool:  # type: ignore[no-untyped-def]
    """Whether PostgreSQL's planner has statistics of `table` (reltuples -1: never analyzed
    since it was created or emptied)."""
    session.rollback()
    return session.scalar(
        text("SELECT reltuples >= 0 FROM pg_class WHERE relname = :t"), {"t": table}
    )


def test_an_import_analyzes_only_the_tables_it_wrote(session, factory, tmp_path, backend) -> None:
    """Statistics of an empty assignments table would have a new project's leases scan it
    whole until autovacuum analyzed it again: an import of prompts alone leaves them be."""
    if backend != "postgresql":
        pytest.skip("planner statistics of PostgreSQL")
    project = factory.project(kind="ranking", k=2)
    assert not _analyzed(session, "prompts") and not _analyzed(session, "assignments")
    path = _write(tmp_path, ranking_items(importer.ANALYZE_AFTER, k=2))
    importer.import_file(session=session, project=project, path=path)
    assert _analyzed(session, "prompts") and _analyzed(session, "responses")
    assert not _analyzed(session, "assignments") and not _analyzed(session, "annotations")
    n = importer.ANALYZE_AFTER
    lines = [{"prompt": f"q{i}", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(n)]
    importer.import_file(session=session, project=project, path=_write(tmp_path, lines), fmt="trl")
    assert _analyzed(session, "assignments") and _analyzed(session, "annotations")
