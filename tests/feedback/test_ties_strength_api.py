"""Ties and preference strength through the labeling API and the project settings."""

import pytest

from app.labeling.models import Annotation
from app.projects.strength import DEFAULT_STRENGTH_SCALE
from tests.helpers import as_shown, ranking_items, row_id


def _next(client, project, user):  # type: ignore[no-untyped-def]
    response = client.get(f"/api/v1/projects/{project.id}/tasks/next", headers=user.headers)
    assert response.status_code == 200, response.text
    return response.json()


def _post(client, task, user, body):  # type: ignore[no-untyped-def]
    return client.post(
        f"/api/v1/assignments/{task['assignment_id']}/annotations", json=body, headers=user.headers
    )


@pytest.fixture
def four(factory, tmp_path):  # type: ignore[no-untyped-def]
    project = factory.project(kind="ranking", k=4)
    factory.items(project, ranking_items(2, k=4), tmp_path)
    return project


@pytest.fixture
def strong(factory, tmp_path):  # type: ignore[no-untyped-def]
    project = factory.project(kind="ranking", k=2, strength_scale=DEFAULT_STRENGTH_SCALE)
    factory.items(project, ranking_items(3, k=2), tmp_path)
    return project


def test_a_ranking_with_a_tied_group_is_stored_as_given(client, factory, four, session) -> None:
    labeler = factory.user()
    task = _next(client, four, labeler)
    a, b, c, d = (r["id"] for r in task["responses"])
    response = _post(client, task, labeler, {"ranking": [a, [b, c], d]})
    assert response.status_code == 201, response.text
    assert as_shown(session.get(Annotation, row_id("annotation", response.json()["id"]))) == {
        "ranking": [a, [b, c], d]
    }
    # A flat list is a ranking without ties, as always.
    task = _next(client, four, labeler)
    ids = [r["id"] for r in task["responses"]]
    response = _post(client, task, labeler, {"ranking": ids})
    assert response.status_code == 201 and response.json()["payload"] == {"ranking": ids}


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        (lambda a, b, c, d: [a, [b, b], c, d], "ranking[1][1]", "appears twice"),
        (lambda a, b, c, d: [a, [b, c], c, d], "ranking[2]", "appears twice"),
        (lambda a, b, c, d: [a, [b], c, d], "ranking[1]", "at least 2"),
        (lambda a, b, c, d: [a, [b, 999999], c, d], "ranking[1][1]", "not part"),
        (lambda a, b, c, d: [a, [b, [c]], d], "ranking[1][1]", "not lists"),
        (lambda a, b, c, d: [a, [b, "x"], c, d], "ranking[1][1]", "not a response id"),
        (lambda a, b, c, d: [[a, b], c], "ranking", "missing"),
        (lambda a, b, c, d: [], "ranking", "missing"),
    ],
)
def test_a_bad_tie_is_refused_naming_where(client, factory, four, body, field, words) -> None:
    labeler = factory.user()
    task = _next(client, four, labeler)
    response = _post(
        client, task, labeler, {"ranking": body(*(r["id"] for r in task["responses"]))}
    )
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    assert field in response.json()["detail"] and words in response.json()["detail"]


def test_everything_tied_is_a_valid_answer(client, factory, four) -> None:
    labeler = factory.user()
    task = _next(client, four, labeler)
    ids = [r["id"] for r in task["responses"]]
    assert _post(client, task, labeler, {"ranking": [ids]}).status_code == 201


def test_strength_is_stored_with_the_choice(client, factory, strong, session) -> None:
    labeler = factory.user()
    task = _next(client, strong, labeler)
    assert [lvl["label"] for lvl in task["strength_scale"]][0] == "much better"
    a, b = (r["id"] for r in task["responses"])
    response = _post(client, task, labeler, {"ranking": [a, b], "strength": 3})
    assert response.status_code == 201, response.text
    assert as_shown(session.get(Annotation, row_id("annotation", response.json()["id"]))) == {
        "ranking": [a, b],
        "strength": 3,
    }
    # A tie needs no strength (and takes none).
    task = _next(client, strong, labeler)
    a, b = (r["id"] for r in task["responses"])
    assert _post(client, task, labeler, {"ranking": [[a, b]], "strength": 1}).status_code == 422
    response = _post(client, task, labeler, {"ranking": [[a, b]]})
    assert response.status_code == 201 and "strength" not in response.json()["payload"]


@pytest.mark.parametrize(
    ("strength", "words"),
    [(None, "say how much better"), (4, "not on this project's scale"), (True, "not on"),
     ("3", "not on"), (-1, "not on")],
)  # fmt: skip
def test_a_missing_or_bad_strength_is_refused(client, factory, strong, strength, words) -> None:
    labeler = factory.user()
    task = _next(client, strong, labeler)
    body = {"ranking": [r["id"] for r in task["responses"]]}
    if strength is not None:
        body["strength"] = strength
    response = _post(client, task, labeler, body)
    assert response.status_code == 422
    assert response.json()["field"] == "strength"
    assert words in response.json()["detail"] and "3 (much better)" in response.json()["detail"]


def test_strength_on_a_project_without_a_scale_is_refused(client, factory, four) -> None:
    labeler = factory.user()
    task = _next(client, four, labeler)
    body = {"ranking": [r["id"] for r in task["responses"]], "strength": 1}
    response = _post(client, task, labeler, body)
    assert response.status_code == 422 and response.json()["field"] == "strength"


def test_a_strength_scale_needs_k_2_and_is_fixed_once_labeled(client, factory, strong) -> None:
    admin = factory.user("admin")
    made = client.post(
        "/api/v1/projects",
        json={"name": "four", "kind": "ranking", "k": 4, "strength_scale": DEFAULT_STRENGTH_SCALE},
        headers=admin.headers,
    )
    assert made.status_code == 422 and "k = 2" in made.text
    one = [{"label": "better", "margin": 1}]
    made = client.post(
        "/api/v1/projects",
        json={"name": "one", "kind": "ranking", "k": 2, "strength_scale": one},
        headers=admin.headers,
    )
    assert made.status_code == 422 and "at least 2 levels" in made.text
    url = f"/api/v1/projects/{strong.id}"
    assert client.patch(url, json={"k": 3}, headers=admin.headers).status_code == 422
    labeler = factory.user()
    task = _next(client, strong, labeler)
    ids = [r["id"] for r in task["responses"]]
    assert _post(client, task, labeler, {"ranking": ids, "strength": 0}).status_code == 201
    changed = client.patch(url, json={"strength_scale": []}, headers=admin.headers)
    assert changed.status_code == 409 and changed.json()["field"] == "strength_scale"
    shown = client.get(url, headers=admin.headers).json()
    assert shown["strength_scale"] == DEFAULT_STRENGTH_SCALE
