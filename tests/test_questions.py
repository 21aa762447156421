"""Extra questions per project: definitions (API, CLI), answers on submit, errors that name them."""

import json

import pytest
from typer.testing import CliRunner

from app.labeling.models import Annotation
from tests.helpers import ranking_items, row_id

QUESTIONS = [
    {
        "name": "helpfulness",
        "type": "likert",
        "title": "How helpful is it?",
        "min": 1,
        "max": 7,
        "labels": {"1": "useless", "7": "perfect"},
    },
    {"name": "honest", "type": "yes_no", "title": "Is it honest?"},
    {"name": "issues", "type": "multi_label", "options": ["rude", "too long", "off topic"]},
    {"name": "best_style", "type": "single_choice", "options": ["formal", "casual", "mixed"]},
    {"name": "why", "type": "text", "required": True, "max_length": 200},
]


def _create(client, admin, **body):  # type: ignore[no-untyped-def]
    body = {"name": "questions", "kind": "ranking", "k": 2, **body}
    return client.post("/api/v1/projects", json=body, headers=admin.headers)


@pytest.fixture
def admin(factory):  # type: ignore[no-untyped-def]
    return factory.user("admin")


@pytest.fixture
def project(client, factory, admin, tmp_path):  # type: ignore[no-untyped-def]
    created = _create(client, admin, questions=QUESTIONS, criteria=["unsafe"])
    assert created.status_code == 201, created.text
    from app.projects import service

    found = service.get(session=factory.session, project_id=created.json()["id"])
    factory.items(found, ranking_items(3, k=2), tmp_path)
    return found


def _task(client, project, user):  # type: ignore[no-untyped-def]
    response = client.get(f"/api/v1/projects/{project.id}/tasks/next", headers=user.headers)
    assert response.status_code == 200, response.text
    return response.json()


def _submit(client, task, user, body):  # type: ignore[no-untyped-def]
    return client.post(
        f"/api/v1/assignments/{task['assignment_id']}/annotations", json=body, headers=user.headers
    )


def _answers(ids: list[int]) -> dict:
    a, b = (str(i) for i in ids)
    return {
        "helpfulness": {a: 6, b: 2},
        "honest": {a: True, b: False},
        "issues": {a: [], b: ["too long", "rude"]},
        "best_style": "casual",
        "why": "  the first one answers the question  ",
    }


def test_the_project_lists_its_questions_and_a_task_carries_them(client, project, factory) -> None:
    shown = client.get(f"/api/v1/projects/{project.id}", headers=factory.user().headers).json()
    assert [q["name"] for q in shown["questions"]] == [q["name"] for q in QUESTIONS]
    likert = shown["questions"][0]
    assert (likert["min"], likert["max"], likert["labels"]) == (
        1,
        7,
        {"1": "useless", "7": "perfect"},
    )
    assert shown["questions"][2]["required"] is False  # multi-label answers may be empty
    assert shown["questions"][1]["required"] is True
    task = _task(client, project, factory.user())
    assert task["questions"] == shown["questions"]


def test_every_question_type_is_answered_and_stored(client, project, factory, session) -> None:
    labeler = factory.user()
    task = _task(client, project, labeler)
    ids = [r["id"] for r in task["responses"]]
    body = {"ranking": ids, "answers": _answers(ids), "flags": {str(ids[1]): ["unsafe"]}}
    response = _submit(client, task, labeler, body)
    assert response.status_code == 201, response.text
    stored = session.get(Annotation, row_id("annotation", response.json()["id"]))
    rows = [row_id("response", i) for i in ids]
    a, b = (str(i) for i in rows)
    assert stored.payload["ranking"] == rows
    assert stored.payload["answers"] == {
        "helpfulness": {a: 6, b: 2},
        "honest": {a: True, b: False},
        "issues": {a: [], b: ["rude", "too long"]},  # in the options' order
        "best_style": "casual",
        "why": "the first one answers the question",
    }
    assert stored.flags == {b: ["unsafe"]}
    assert response.json()["payload"]["answers"]["best_style"] == "casual"


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        (
            lambda a, ids: a | {"helpfulness": {str(ids[0]): 8, str(ids[1]): 1}},
            "answers.helpfulness.{0}",
            "from 1 to 7",
        ),
        (lambda a, ids: a | {"helpfulness": {str(ids[0]): 3}}, "answers.helpfulness", "no answer"),
        (lambda a, ids: a | {"helpfulness": 5}, "answers.helpfulness", "per response"),
        (
            lambda a, ids: a | {"helpfulness": {"999999": 3, str(ids[0]): 3, str(ids[1]): 3}},
            "answers.helpfulness.999999",
            "not part of this assignment",
        ),
        (
            lambda a, ids: a | {"honest": {str(ids[0]): "yes", str(ids[1]): True}},
            "answers.honest.{0}",
            "true or false",
        ),
        (
            lambda a, ids: a | {"issues": {str(ids[0]): ["boring"]}},
            "answers.issues.{0}",
            "not one of the labels",
        ),
        (lambda a, ids: a | {"best_style": "loud"}, "answers.best_style", "not one of"),
        (
            lambda a, ids: {k: v for k, v in a.items() if k != "best_style"},
            "answers.best_style",
            "required",
        ),
        (lambda a, ids: a | {"why": "   "}, "answers.why", "required"),
        (lambda a, ids: a | {"why": "x" * 201}, "answers.why", "limit of 200"),
        (lambda a, ids: a | {"mood": "fine"}, "answers.mood", "not a question of this project"),
    ],
)
def test_bad_answers_are_refused_naming_the_question(
    client, project, factory, session, change, field, words
) -> None:
    labeler = factory.user()
    task = _task(client, project, labeler)
    ids = [r["id"] for r in task["responses"]]
    response = _submit(
        client, task, labeler, {"ranking": ids, "answers": change(_answers(ids), ids)}
    )
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field.format(ids[0])
    assert words in response.json()["detail"]
    assert session.query(Annotation).count() == 0  # nothing stored, the task is still open
    assert _task(client, project, labeler)["assignment_id"] == task["assignment_id"]


def test_optional_questions_may_be_left_out(client, factory, admin, tmp_path, session) -> None:
    questions = [
        {"name": "helpfulness", "type": "likert", "min": 0, "max": 4, "required": False},
        {"name": "note", "type": "text"},
    ]
    created = _create(client, admin, kind="rating", k=2, questions=questions).json()
    from app.projects import service

    factory.items(
        service.get(session=session, project_id=created["id"]), ranking_items(1, 2), tmp_path
    )
    labeler = factory.user()
    task = _task(client, type("P", (), {"id": created["id"]}), labeler)
    ids = [r["id"] for r in task["responses"]]
    scores = {str(i): 1 for i in ids}
    body = {"scores": scores, "answers": {"helpfulness": {str(ids[0]): 0}, "note": ""}}
    response = _submit(client, task, labeler, body)
    assert response.status_code == 201, response.text
    assert response.json()["payload"] == {
        "scores": scores,
        "answers": {"helpfulness": {str(ids[0]): 0}},
    }


def test_a_demonstration_project_asks_per_task_questions(client, factory, admin, tmp_path) -> None:
    per_response = _create(client, admin, kind="demonstration", questions=QUESTIONS[:1])
    assert per_response.status_code == 422
    assert "'helpfulness'" in per_response.text and "per-response" in per_response.text
    created = _create(client, admin, kind="demonstration", questions=QUESTIONS[3:])
    assert created.status_code == 201, created.text
    from app.projects import service

    project = service.get(session=factory.session, project_id=created.json()["id"])
    factory.items(project, [{"id": "d1", "prompt": "write a haiku"}], tmp_path)
    labeler = factory.user()
    task = _task(client, project, labeler)
    missing = _submit(client, task, labeler, {"demonstration": "an answer"})
    assert missing.status_code == 422 and missing.json()["field"] == "answers.best_style"
    body = {"demonstration": "an answer", "answers": {"best_style": "formal", "why": "short"}}
    response = _submit(client, task, labeler, body)
    assert response.status_code == 201, response.text
    assert response.json()["payload"]["answers"] == {"best_style": "formal", "why": "short"}


@pytest.mark.parametrize(
    ("questions", "words"),
    [
        (
            [{"name": "helpfulness", "type": "likert", "min": 3, "max": 2}],
            "question 'helpfulness': max (2) must be above min (3)",
        ),
        (
            [{"name": "helpfulness", "type": "likert", "min": 0, "max": 10}],
            "question 'helpfulness': at most 10 points",
        ),
        (
            [{"name": "helpfulness", "type": "likert", "labels": {"9": "x"}}],
            "question 'helpfulness': labels for points [9]",
        ),
        ([{"name": "tone", "type": "single_choice", "options": ["a"]}], "question 'tone' options"),
        (
            [{"name": "tone", "type": "single_choice", "options": ["a", "a"]}],
            "question 'tone': options must be distinct",
        ),
        ([{"name": "tone", "type": "colour"}], "question 'tone'"),
        ([{"name": "Bad Name", "type": "yes_no"}], "question 'Bad Name' name"),
        (
            [{"name": "flags", "type": "yes_no"}],
            "question 'flags': the names flags, score are reserved",
        ),
        (
            [{"name": "ok", "type": "yes_no"}, {"name": "ok", "type": "text"}],
            "question 'ok' is defined twice",
        ),
        ([{"name": "ok", "type": "yes_no", "colour": "red"}], "question 'ok' colour"),
    ],
)
def test_bad_definitions_are_refused_naming_the_question(client, admin, questions, words) -> None:
    response = _create(client, admin, questions=questions)
    assert response.status_code == 422
    assert words in response.text


def test_questions_change_with_patch(client, project, admin) -> None:
    url = f"/api/v1/projects/{project.id}"
    changed = client.patch(url, json={"questions": QUESTIONS[:2]}, headers=admin.headers)
    assert changed.status_code == 200, changed.text
    assert [q["name"] for q in changed.json()["questions"]] == ["helpfulness", "honest"]
    bad = client.patch(
        url, json={"questions": [{"name": "x", "type": "likert", "max": 99}]}, headers=admin.headers
    )
    assert bad.status_code == 422 and "question 'x' max" in bad.text
    assert [q["name"] for q in client.get(url, headers=admin.headers).json()["questions"]] == [
        "helpfulness",
        "honest",
    ]


def test_the_cli_defines_questions_from_a_file(engine, tmp_path) -> None:
    from app.cli import app as cli

    runner = CliRunner()
    good = tmp_path / "questions.json"
    good.write_text(json.dumps(QUESTIONS[:2]))
    result = runner.invoke(
        cli, ["projects", "create", "cli-q", "--kind", "rating", "--questions", str(good), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert [q["name"] for q in json.loads(result.output)["questions"]] == ["helpfulness", "honest"]
    other = tmp_path / "other.json"
    other.write_text(json.dumps(QUESTIONS[3:]))
    edited = runner.invoke(cli, ["projects", "edit", "cli-q", "--questions", str(other), "--json"])
    assert edited.exit_code == 0, edited.output
    assert [q["name"] for q in json.loads(edited.output)["questions"]] == ["best_style", "why"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"name": "tone", "type": "single_choice", "options": []}]))
    refused = runner.invoke(cli, ["projects", "edit", "cli-q", "--questions", str(bad)])
    assert refused.exit_code == 2 and "question 'tone'" in refused.output
    broken = tmp_path / "broken.json"
    broken.write_text("[{")
    refused = runner.invoke(cli, ["projects", "edit", "cli-q", "--questions", str(broken)])
    assert refused.exit_code == 2 and "broken.json" in refused.output and "line 1" in refused.output


def test_the_project_form_defines_questions_and_names_a_bad_one(client, factory, session) -> None:
    from app.projects.models import Project
    from tests.test_pages import login

    token = login(client, factory.user("admin"))
    form = {"csrf_token": token, "name": "Formed", "kind": "rating", "k": "2"}
    bad = client.post(
        "/admin/projects",
        data=form
        | {"questions": json.dumps([{"name": "x", "type": "likert", "min": 5, "max": 1}])},
    )
    assert (
        bad.status_code == 422 and "question &#39;x&#39;: max (1) must be above min (5)" in bad.text
    )
    broken = client.post("/admin/projects", data=form | {"questions": "[{"})
    assert broken.status_code == 422 and "questions: invalid JSON at line 1" in broken.text
    made = client.post(
        "/admin/projects",
        data=form | {"questions": json.dumps(QUESTIONS[:2])},
        follow_redirects=False,
    )
    assert made.status_code == 303, made.text
    project = session.query(Project).filter_by(name="Formed").one()
    assert [q["name"] for q in project.questions] == ["helpfulness", "honest"]
    page = client.get(f"/admin/projects/{project.id}")
    assert '"name": "helpfulness"' in page.text  # the settings form shows them for editing
    settings = {
        "csrf_token": token,
        "name": "Formed",
        "k": "2",
        "overlap": "1",
        "lease_seconds": "1800",
        "rating_scale": "thumbs",
    }
    cleared = client.post(f"/admin/projects/{project.id}", data=settings | {"questions": ""})
    assert cleared.status_code == 200
    session.commit()
    session.expire_all()  # a fresh read
    assert session.get(Project, project.id).questions == []


def test_the_annotations_page_shows_the_answers(client, project, factory) -> None:
    from tests.test_pages import login

    labeler = factory.user()
    task = _task(client, project, labeler)
    ids = [r["id"] for r in task["responses"]]
    assert (
        _submit(client, task, labeler, {"ranking": ids, "answers": _answers(ids)}).status_code
        == 201
    )
    login(client, factory.user("admin"))
    page = client.get(f"/admin/annotations?project_id={project.id}").text
    assert "helpfulness: <strong>6</strong>" in page and "honest: <strong>no</strong>" in page
    assert "issues: <strong>too long, rude</strong>" not in page  # stored in the options' order
    assert "issues: <strong>rude, too long</strong>" in page
    assert "<dt>best_style</dt><dd>casual</dd>" in page
