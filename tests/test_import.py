"""Imports: formats, line-numbered errors, all-or-nothing, duplicates, streaming."""

import gzip
import json
import tracemalloc

import pytest

from app.errors import Invalid
from app.labeling.models import Annotation
from app.projects import importer, service
from app.projects.models import Prompt, Response
from tests.helpers import ranking_items


def _write(path, lines) -> None:  # type: ignore[no-untyped-def]
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))


def _import(session, project, path, **kw):  # type: ignore[no-untyped-def]
    return importer.import_file(session=session, project=project, path=path, **kw)


def test_native_lines_with_models_meta_and_messages(session, factory, tmp_path) -> None:
    project = factory.project(kind="ranking", k=2)
    path = tmp_path / "a.jsonl"
    _write(
        path,
        [
            {
                "id": "a",
                "prompt": "Hi?",
                "responses": ["x", {"text": "y", "model": "m-v2"}],
                "meta": {"src": "t"},
            },
            {
                "messages": [
                    {"role": "system", "content": "be brief"},
                    {"role": "user", "content": "Q"},
                ],
                "responses": ["1", "2"],
            },
        ],
    )
    report = _import(session, project, path)
    assert (report.imported, report.responses, report.format) == (2, 4, "jsonl")
    first = session.query(Prompt).filter_by(external_id="a").one()
    assert first.meta == {"src": "t"}
    models = [
        r.model
        for r in session.query(Response).filter_by(prompt_id=first.id).order_by(Response.position)
    ]
    assert models == [None, "m-v2"]


def test_a_bad_line_names_its_number_and_nothing_is_imported(session, factory, tmp_path) -> None:
    project = factory.project(kind="ranking", k=2)
    path = tmp_path / "bad.jsonl"
    _write(
        path,
        ranking_items(2, k=2)
        + ["{not json", {"prompt": "only one", "responses": ["a"]}]
        + ranking_items(1, k=2, prefix="z"),
    )
    with pytest.raises(importer.ImportFailed) as failed:
        _import(session, project, path)
    assert [(e.line, e.error.split(":")[0]) for e in failed.value.errors] == [
        (3, "invalid JSON"),
        (4, "a ranking project needs no responses (to generate them) or at least 2"),
    ]
    assert session.query(Prompt).count() == 0


def test_skip_invalid_imports_the_rest_and_reports_each(session, factory, tmp_path) -> None:
    project = factory.project(kind="ranking", k=2)
    path = tmp_path / "bad.jsonl"
    _write(path, ranking_items(2, k=2) + [{"prompt": 5, "responses": ["a", "b"]}])
    report = _import(session, project, path, skip_invalid=True)
    assert report.imported == 2 and report.skipped_count == 1
    assert report.skipped[0].line == 3 and "prompt must be a string" in report.skipped[0].error


def test_same_external_ids_again_add_nothing(session, factory, tmp_path) -> None:
    project = factory.project(kind="ranking", k=2)
    path = tmp_path / "a.jsonl"
    _write(path, ranking_items(3, k=2) + ranking_items(1, k=2))
    assert _import(session, project, path).imported == 3
    again = _import(session, project, path)
    assert (again.imported, again.duplicates) == (0, 4)
    assert session.query(Prompt).count() == 3


def test_hh_rlhf_transcripts_become_prompt_responses_and_a_ranking(
    session, factory, tmp_path
) -> None:
    project = factory.project(kind="ranking", k=2)
    convo = "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: What is 2+2?\n\nAssistant:"
    path = tmp_path / "hh.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.write(json.dumps({"chosen": convo + " 4.", "rejected": convo + " 5."}) + "\n")
        f.write(
            json.dumps(
                {
                    "chosen": "\n\nHuman: A\n\nAssistant: B\n\nHuman: C\n\nAssistant: D",
                    "rejected": "\n\nHuman: A\n\nAssistant: X\n\nHuman: C\n\nAssistant: D",
                }
            )
            + "\n"
        )
    with pytest.raises(Invalid) as failed:
        _import(session, project, path)
    assert failed.value.errors[0].line == 2
    assert "diverge at turn 2" in failed.value.errors[0].error
    report = _import(session, project, path, skip_invalid=True)
    assert (report.format, report.imported, report.rankings) == ("hh", 1, 1)
    prompt = session.query(Prompt).one()
    assert prompt.messages == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "What is 2+2?"},
    ]
    texts = {r.id: r.text for r in session.query(Response)}
    ranking = session.query(Annotation).one()
    assert [texts[i] for i in ranking.payload["ranking"]] == ["4.", "5."]
    assert ranking.source == "import" and ranking.user_id is None


def test_trl_rows_with_strings_and_messages(session, factory, tmp_path) -> None:
    project = factory.project(kind="ranking", k=2)
    path = tmp_path / "trl.jsonl"
    _write(
        path,
        [
            {"prompt": "Capital of France?", "chosen": "Paris.", "rejected": "Rome."},
            {
                "prompt": [{"role": "user", "content": "Hi"}],
                "chosen": [{"role": "assistant", "content": "Hello"}],
                "rejected": [{"role": "assistant", "content": "Go away"}],
            },
        ],
    )
    report = _import(session, project, path)
    assert (report.format, report.imported, report.rankings) == ("trl", 2, 2)


def _peak_import(session, factory, path, lines: int) -> int:  # type: ignore[no-untyped-def]
    project = factory.project(kind="ranking", k=2)
    filler = "x" * 400
    with open(path, "w") as f:
        for i in range(lines):
            f.write(
                json.dumps(
                    {
                        "id": str(i),
                        "prompt": f"q{i} {filler}",
                        "responses": [f"a {filler}", f"b {filler}"],
                    }
                )
                + "\n"
            )
    tracemalloc.start()
    report = _import(session, project, path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert report.imported == lines
    return peak


def test_import_streams_in_bounded_memory(session, factory, tmp_path) -> None:
    small = _peak_import(session, factory, tmp_path / "small.jsonl", 1500)
    large = _peak_import(session, factory, tmp_path / "large.jsonl", 6000)
    # four times the lines (~7.5 MB) must not need anything like four times the memory
    assert large < 1.5 * small, f"peak {small} bytes for 1500 lines, {large} for 6000"


def test_api_upload_reports_line_numbers(client, factory, tmp_path) -> None:
    admin = factory.user("admin")
    project = factory.project(kind="ranking", k=2)
    body = json.dumps(ranking_items(1, k=2)[0]) + "\n" + '{"prompt": "x", "responses": ["a"]}\n'
    response = client.post(
        f"/api/v1/projects/{project.id}/items",
        headers=admin.headers,
        files={"file": ("items.jsonl", body, "application/x-ndjson")},
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["line"] == 2
    assert "line 2" in response.json()["detail"]
    ok = client.post(
        f"/api/v1/projects/{project.id}/items?skip_invalid=true",
        headers=admin.headers,
        content=body,
    )
    assert ok.status_code == 200 and ok.json()["imported"] == 1


EMPTY_FILES = {
    "empty.jsonl": b"",
    "blank.jsonl": b"\n  \n\t\n\n",
    "blank.jsonl.gz": gzip.compress(b"\n\n"),
}


def test_an_empty_import_file_is_refused_everywhere(client, factory, session, tmp_path) -> None:
    from typer.testing import CliRunner

    from app.cli import app as cli
    from tests.test_pages import login

    admin = factory.user("admin")
    project = factory.project(kind="ranking", k=2)
    for name, body in EMPTY_FILES.items():
        path = tmp_path / name
        path.write_bytes(body)
        with pytest.raises(Invalid, match="holds no prompts") as refused:
            importer.import_file(session=session, project=project, path=path)
        assert refused.value.field == "file"

        result = CliRunner().invoke(cli, ["import", project.name, str(path)])
        assert result.exit_code == 2, result.output
        assert "the file holds no prompts: it is empty or has only blank lines" in result.stderr

        api = client.post(
            f"/api/v1/projects/{project.id}/items",
            headers=admin.headers,
            files={"file": (name, body, "application/x-ndjson")},
        )
        assert api.status_code == 422 and api.json()["field"] == "file"
        assert "holds no prompts" in api.json()["detail"]

    token = login(client, admin)
    page = client.post(
        f"/admin/projects/{project.id}/import",
        data={"csrf_token": token},
        files={"file": ("blank.jsonl", EMPTY_FILES["blank.jsonl"])},
    )
    assert page.status_code == 422 and "holds no prompts" in page.text
    assert "Imported 0" not in page.text
    assert service.stats(session=session, project=project).prompts == 0
