"""Label Studio JSON exports: prompts, responses and labels under their source annotators."""

import json
import re
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from app.auth import service as auth_service
from app.auth.models import User
from app.errors import Invalid
from app.labeling.models import Annotation
from app.projects import importer
from app.projects.models import Prompt, Response
from tests.imports.common import FIXTURES, assignments, labels


def _import(session, project, name: str, config: str | None = None, **kwargs):  # type: ignore[no-untyped-def]
    label_config = (FIXTURES / config).read_text() if config else None
    return importer.import_file(
        session=session,
        project=project,
        path=FIXTURES / name,
        label_config=label_config,
        **kwargs,
    )


def _responses(session, external_id: str) -> list[str]:  # type: ignore[no-untyped-def]
    prompt = session.scalar(select(Prompt).where(Prompt.external_id == external_id))
    rows = select(Response.text).where(Response.prompt_id == prompt.id).order_by(Response.position)
    return list(session.scalars(rows))


def test_pairwise_with_config(session, factory) -> None:
    project = factory.project(kind="ranking", k=2, overlap=2)
    report = _import(session, project, "labelstudio_pairwise.json", "labelstudio_pairwise.xml")
    assert report.format == "labelstudio" and report.unit == "record"
    assert (report.imported, report.labels, report.skipped_labels, report.labelers) == (3, 3, 1, 2)
    # Left and right are the config's toName order, not the data's field order.
    assert _responses(session, "101") == [
        "Autumn is a season that comes after summer.",
        "Leaves fall in the wind / golden light on quiet paths / the year exhales slow",
    ]
    found = labels(session, project.id)
    haiku = "Leaves fall in the wind / golden light on quiet paths / the year exhales slow"
    assert [(x["prompt"], x["labeler"], x["payload"]["ranking"][0]) for x in found] == [
        ("101", "labelstudio:7", haiku),
        ("101", "labelstudio:9", haiku),
        ("102", "labelstudio:9", "100 degrees Celsius (212 °F)."),
    ]
    assert [x["duration_ms"] for x in found] == [12500, 3250, 8000]
    assert {x["source"] for x in found} == {"import"}
    first = session.scalar(select(Annotation).order_by(Annotation.id))
    assert first.created_at == datetime(2024, 3, 1, 10, 15, 0, 123456, tzinfo=UTC)
    # The cancelled annotation is a skip; task 103 (no annotations) is open.
    assert assignments(session, project.id) == [
        ("101", "labelstudio:7", "done"),
        ("101", "labelstudio:9", "done"),
        ("102", "labelstudio:7", "skipped"),
        ("102", "labelstudio:9", "done"),
    ]
    done = dict(session.execute(select(Prompt.external_id, Prompt.done_count)).all())
    assert done == {"101": 2, "102": 1, "103": 0}
    meta = session.scalar(select(Prompt.meta).where(Prompt.external_id == "101"))
    assert meta["suggestions"] == [
        {"agent": "reward-v1", "score": 0.62, "payload": {"ranking": [1, 0]}}
    ]
    assert meta["labelstudio_meta"] == {"batch": "march"}


def test_pairwise_without_config_takes_the_fields_after_the_prompt(session, factory) -> None:
    project = factory.project(kind="ranking", k=2)
    _import(session, project, "labelstudio_pairwise.json")
    # File order after the prompt: answer2 is left, answer1 right.
    assert _responses(session, "102") == [
        "About 50 degrees Celsius.",
        "100 degrees Celsius (212 °F).",
    ]
    found = labels(session, project.id)
    assert found[0]["payload"]["ranking"] == [
        "Autumn is a season that comes after summer.",
        "Leaves fall in the wind / golden light on quiet paths / the year exhales slow",
    ]


def test_reimport_adds_nothing(session, factory) -> None:
    project = factory.project(kind="ranking", k=2)
    _import(session, project, "labelstudio_pairwise.json", "labelstudio_pairwise.xml")
    users = session.scalar(select(func.count()).select_from(User))
    again = _import(session, project, "labelstudio_pairwise.json", "labelstudio_pairwise.xml")
    assert (again.imported, again.duplicates, again.labels, again.labelers) == (0, 3, 0, 0)
    assert session.scalar(select(func.count()).select_from(Annotation)) == 3
    assert session.scalar(select(func.count()).select_from(User)) == users
    # The same file into another project: the same source annotators, new labels.
    other = factory.project(kind="ranking", k=2)
    third = _import(session, other, "labelstudio_pairwise.json", "labelstudio_pairwise.xml")
    assert (third.imported, third.labels, third.labelers) == (3, 3, 0)
    assert session.scalar(select(func.count()).select_from(User)) == users


def test_source_annotators_cannot_sign_in(session, factory) -> None:
    project = factory.project(kind="ranking", k=2)
    _import(session, project, "labelstudio_pairwise.json", "labelstudio_pairwise.xml")
    annotator = auth_service.get_by_email(session=session, email="labelstudio:7")
    assert annotator is not None and annotator.source == "labelstudio"
    assert annotator.password_hash is None
    login = auth_service.authenticate(
        session=session, email="labelstudio:7", password="", max_failures=5, lock_seconds=60
    )
    assert login is None
    with pytest.raises(Invalid, match="source annotator"):
        auth_service.set_password(session=session, user=annotator, password="long enough pw")
    with pytest.raises(Invalid, match="source annotator"):
        auth_service.create_token(session=session, user=annotator)
    with pytest.raises(Invalid, match="source annotator"):
        auth_service.set_role(session=session, user=annotator, role="admin")


def test_ranker_buckets_are_tied_groups(session, factory) -> None:
    project = factory.project(kind="ranking", k=3)
    report = _import(session, project, "labelstudio_ranker.json", "labelstudio_ranker.xml")
    assert (report.imported, report.labels) == (2, 2)
    found = labels(session, project.id)
    now, short, meeting = (
        "The meeting is now on Tuesday.",
        "Meeting: Tuesday.",
        "There was a meeting.",
    )
    assert found[0]["payload"]["ranking"] == [[now, short], meeting]
    # An item left in the list (in no bucket) comes last.
    assert found[1]["payload"]["ranking"] == [short, now, meeting]
    done = dict(session.execute(select(Prompt.external_id, Prompt.done_count)).all())
    assert done == {"201": 2, "202": 0}


def test_ranker_without_buckets_is_an_order(session, factory) -> None:
    project = factory.project(kind="ranking", k=3)
    _import(session, project, "labelstudio_ranker_plain.json")
    [found] = labels(session, project.id)
    assert found["labeler"] == "labelstudio:12"
    assert found["payload"]["ranking"] == ["My starter, my friend", "Sourdough in 5 steps", "Bread"]


def test_rating_choices_and_textarea(session, factory) -> None:
    questions = [
        {"name": "topic", "type": "single_choice", "options": ["math", "writing"]},
        {"name": "why", "type": "text"},
    ]
    project = factory.project(kind="rating", k=1, rating_scale="0-5", questions=questions)
    report = _import(session, project, "labelstudio_rating.json", "labelstudio_rating.xml")
    assert report.labels == 2
    assert report.notes == ["ratings 1–10 were scaled linearly onto 0–5 and rounded"]
    found = labels(session, project.id)
    assert found[0]["payload"]["scores"] == {"144": 4}
    assert found[0]["payload"]["answers"] == {"topic": "math", "why": "correct\nand short"}
    assert found[1]["payload"]["scores"] == {"144": 1}


def test_rating_onto_thumbs_says_how(session, factory) -> None:
    questions = [
        {"name": "topic", "type": "single_choice", "options": ["math", "writing"]},
        {"name": "why", "type": "text"},
    ]
    project = factory.project(kind="rating", k=1, rating_scale="thumbs", questions=questions)
    report = _import(session, project, "labelstudio_rating.json", "labelstudio_rating.xml")
    assert report.notes == ["ratings 1–10 became 👍 above 5.5 and 👎 at or below it"]
    assert [x["payload"]["scores"] for x in labels(session, project.id)] == [
        {"144": 1},
        {"144": -1},
    ]


def test_textarea_is_a_demonstration(session, factory, tmp_path) -> None:
    project = factory.project(kind="demonstration", k=1)
    path = tmp_path / "demo.json"
    task = {
        "id": 9,
        "data": {"prompt": "Greet a new colleague."},
        "annotations": [
            {
                "id": 1,
                "completed_by": 3,
                "lead_time": 40,
                "result": [
                    {
                        "from_name": "answer",
                        "to_name": "prompt",
                        "type": "textarea",
                        "value": {"text": ["Welcome aboard!"]},
                    }
                ],
            }
        ],
    }
    path.write_text(json.dumps([task]))
    report = importer.import_file(session=session, project=project, path=path)
    assert report.format == "labelstudio"
    [found] = labels(session, project.id)
    assert found["payload"] == {"demonstration": "Welcome aboard!"}
    assert found["duration_ms"] == 40000


def _broken_file(tmp_path):  # type: ignore[no-untyped-def]
    tasks = json.loads((FIXTURES / "labelstudio_pairwise.json").read_text())
    tasks[1]["annotations"][1]["result"].append(
        {"from_name": "box", "to_name": "image", "type": "rectanglelabels", "value": {"x": 1}}
    )
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(tasks, indent=2))
    return path


def test_unknown_result_type_is_named_and_nothing_is_imported(session, factory, tmp_path) -> None:
    project = factory.project(kind="ranking", k=2)
    with pytest.raises(importer.ImportFailed) as failed:
        importer.import_file(session=session, project=project, path=_broken_file(tmp_path))
    message = str(failed.value)
    assert message.startswith("record 2: task 102, annotation 5004, result 'box'")
    assert "'rectanglelabels' cannot be imported" in message
    assert session.scalar(select(func.count()).select_from(Prompt)) == 0
    assert session.scalar(select(func.count()).select_from(Annotation)) == 0
    assert auth_service.get_by_email(session=session, email="labelstudio:7") is None


def test_skip_invalid_imports_the_other_tasks(session, factory, tmp_path) -> None:
    project = factory.project(kind="ranking", k=2)
    path = _broken_file(tmp_path)
    report = importer.import_file(session=session, project=project, path=path, skip_invalid=True)
    assert (report.imported, report.labels, report.skipped_count) == (2, 2, 1)
    assert report.unit == "record" and report.skipped[0].line == 2


def test_a_label_that_fails_the_projects_check_names_the_annotation(session, factory) -> None:
    project = factory.project(
        kind="ranking",
        k=2,
        strength_scale=[
            {"label": "much better", "margin": 1.0},
            {"label": "better", "margin": 0.0},
        ],
    )
    with pytest.raises(importer.ImportFailed, match="label labelstudio:5001 by labelstudio:7"):
        _import(session, project, "labelstudio_pairwise.json", "labelstudio_pairwise.xml")


def test_equal_looking_answers_are_checked_each_on_its_own(session, factory, tmp_path) -> None:
    # Rating 1 answers the Likert question; `true` (equal to 1 in Python) does not, even after
    # a label with 1 passed the same check.
    question = {"name": "quality", "type": "likert", "min": 1, "max": 5, "required": False}
    project = factory.project(kind="ranking", k=2, questions=[question])

    def annotation(ref: int, user: int, rating: object) -> dict[str, object]:
        result = [
            {"from_name": "pw", "to_name": "pw", "type": "pairwise", "value": {"selected": "left"}},
            {
                "from_name": "quality",
                "to_name": "answer1",
                "type": "rating",
                "value": {"rating": rating},
            },
        ]
        return {"id": ref, "completed_by": user, "result": result}

    data = {"prompt": "Say hi.", "answer1": "Hi!", "answer2": "Hello there."}
    tasks = [
        {"id": 1, "data": data, "annotations": [annotation(11, 7, 1), annotation(12, 8, 1)]},
        {"id": 2, "data": data, "annotations": [annotation(21, 7, True)]},
    ]
    path = tmp_path / "likert.json"
    path.write_text(json.dumps(tasks))
    with pytest.raises(importer.ImportFailed) as failed:
        importer.import_file(session=session, project=project, path=path, fmt="labelstudio")
    [error] = failed.value.errors
    assert error.line == 2 and error.error.startswith("label labelstudio:21 by labelstudio:7: ")
    assert "True is not a whole number from 1 to 5" in error.error
    path.write_text(json.dumps(tasks[:1]))
    report = importer.import_file(session=session, project=project, path=path, fmt="labelstudio")
    assert [x["payload"]["answers"] for x in labels(session, project.id)] == [
        {"quality": {str(r): 1}} for r in session.scalars(select(Response.id).limit(1))
    ] * 2
    assert report.labels == 2


def test_api_takes_the_label_config_with_the_export(client, factory) -> None:
    admin = factory.user("admin")
    project = factory.project(kind="ranking", k=2)
    files = {
        "file": ("export.json", (FIXTURES / "labelstudio_pairwise.json").read_bytes()),
        "label_config": ("config.xml", (FIXTURES / "labelstudio_pairwise.xml").read_bytes()),
    }
    r = client.post(f"/api/v1/projects/{project.id}/items", files=files, headers=admin.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["format"], body["labels"], body["labelers"], body["unit"]) == (
        "labelstudio",
        3,
        2,
        "record",
    )


def test_api_names_the_bad_record(client, factory, tmp_path) -> None:
    admin = factory.user("admin")
    project = factory.project(kind="ranking", k=2)
    content = _broken_file(tmp_path).read_bytes()
    r = client.post(
        f"/api/v1/projects/{project.id}/items?format=labelstudio",
        content=content,
        headers=admin.headers,
    )
    assert r.status_code == 422
    body = r.json()
    assert body["unit"] == "record" and body["errors"][0]["line"] == 2
    assert "rectanglelabels" in body["errors"][0]["error"]


def test_cli_reads_the_label_config(engine, factory) -> None:
    from typer.testing import CliRunner

    from app.cli import app

    factory.project(name="from label studio", kind="ranking", k=2)
    result = CliRunner().invoke(
        app,
        [
            "import",
            "from label studio",
            str(FIXTURES / "labelstudio_pairwise.json"),
            "--label-config",
            str(FIXTURES / "labelstudio_pairwise.xml"),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["imported"], report["labels"], report["skipped_labels"]) == (3, 3, 1)


def test_a_nul_character_is_a_bad_record(session, factory, tmp_path) -> None:
    project = factory.project(kind="ranking", k=2)
    tasks = json.loads((FIXTURES / "labelstudio_pairwise.json").read_text())
    tasks[2]["data"]["prompt"] = "before\u0000after"
    path = tmp_path / "nul.json"
    path.write_text(json.dumps(tasks))
    with pytest.raises(importer.ImportFailed, match="^record 3: text must not contain the NUL"):
        importer.import_file(session=session, project=project, path=path)
    assert session.scalar(select(func.count()).select_from(Prompt)) == 0


BAD_CONFIGS = {
    "not UTF-8": (b"<View>\xff\xfe</View>", "the label config is not UTF-8 text"),
    "too long": (b"<View>" + b" " * importer.MAX_LABEL_CONFIG + b"</View>", "longer than 1 MB"),
    # Read up to the limit, 1 MB of two-byte characters ends inside one: still too long.
    "too long, not ASCII": ("<View>" + "é" * 600_000 + "</View>", "longer than 1 MB"),
    "not XML": (b"<View><Text name=", "the label config is not valid XML"),
}


def _upload(config: bytes | str) -> dict:
    raw = config.encode() if isinstance(config, str) else config
    export = (FIXTURES / "labelstudio_pairwise.json").read_bytes()
    return {"file": ("export.json", export), "label_config": ("config.xml", raw)}


def test_import_page_takes_the_label_config(client, factory, session) -> None:
    from tests.test_pages import login

    project = factory.project(kind="ranking", k=2)
    token = login(client, factory.user("admin"))
    url = f"/admin/projects/{project.id}/import"
    page = client.get(f"/admin/projects/{project.id}")
    assert '<input type="file" name="label_config"' in page.text
    assert '<option value="labelstudio">' in page.text
    config = (FIXTURES / "labelstudio_pairwise.xml").read_bytes()
    form = {"csrf_token": token, "format": "labelstudio"}
    page = client.post(url, data=form, files=_upload(config))
    assert page.status_code == 200, page.text
    assert "Imported 3 prompts with 6 responses from export.json (labelstudio" in page.text
    # Left and right in the config's toName order (without it: the data's field order).
    assert _responses(session, "101") == [
        "Autumn is a season that comes after summer.",
        "Leaves fall in the wind / golden light on quiet paths / the year exhales slow",
    ]


def test_import_page_without_a_label_config_reads_the_fields(client, factory, session) -> None:
    from tests.test_pages import login

    project = factory.project(kind="ranking", k=2)
    token = login(client, factory.user("admin"))
    url = f"/admin/projects/{project.id}/import"
    # A file input left empty sends an empty part without a name: no config.
    files = _upload(b"") | {"label_config": ("", b"")}
    page = client.post(url, data={"csrf_token": token}, files=files)
    assert page.status_code == 200 and "Imported 3 prompts" in page.text
    assert _responses(session, "102") == [
        "About 50 degrees Celsius.",
        "100 degrees Celsius (212 °F).",
    ]


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_import_page_refuses_a_bad_label_config(client, factory, session, case: str) -> None:
    from tests.test_pages import login

    config, message = BAD_CONFIGS[case]
    project = factory.project(kind="ranking", k=2)
    token = login(client, factory.user("admin"))
    form = {"csrf_token": token, "format": "labelstudio"}
    page = client.post(f"/admin/projects/{project.id}/import", data=form, files=_upload(config))
    assert page.status_code == 422
    assert re.search(r'role="alert"><div>label_config: [^<]*' + re.escape(message), page.text)
    assert re.search(r'name="label_config"[^>]* aria-invalid="true"', page.text)
    assert '<option value="labelstudio" selected>' in page.text  # the form as it was sent
    assert "Imported" not in page.text
    assert session.scalar(select(func.count()).select_from(Prompt)) == 0


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_api_refuses_a_bad_label_config(client, factory, session, case: str) -> None:
    config, message = BAD_CONFIGS[case]
    admin = factory.user("admin")
    project = factory.project(kind="ranking", k=2)
    url = f"/api/v1/projects/{project.id}/items?format=labelstudio"
    r = client.post(url, files=_upload(config), headers=admin.headers)
    assert r.status_code == 422
    assert r.json()["field"] == "label_config" and message in r.json()["detail"]
    assert session.scalar(select(func.count()).select_from(Prompt)) == 0


def test_cli_refuses_a_bad_label_config(engine, factory, tmp_path) -> None:
    from typer.testing import CliRunner

    from app.cli import app

    factory.project(name="bad config", kind="ranking", k=2)
    factory.session.commit()
    config = tmp_path / "config.xml"
    config.write_bytes(BAD_CONFIGS["too long, not ASCII"][0].encode())
    export = str(FIXTURES / "labelstudio_pairwise.json")
    result = CliRunner().invoke(
        app, ["import", "bad config", export, "--label-config", str(config)]
    )
    assert result.exit_code == 2
    assert "error: --label-config: the label config is longer than 1 MB" in result.stderr
