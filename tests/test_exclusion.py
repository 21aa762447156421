"""An excluded labeler is out of the project in every sense: no tasks, open leases ended (a
submit on one is refused), labels that count toward nothing, so their prompts are served to
others until each has `overlap` counted labels; counting them in again restores all of it."""

from sqlalchemy import select

from app.labeling.models import Annotation
from app.projects.models import Prompt
from tests.helpers import ranking_items


def _next(client, project, user):  # type: ignore[no-untyped-def]
    return client.get(f"/api/v1/projects/{project.id}/tasks/next", headers=user.headers)


def _rank(client, task, user):  # type: ignore[no-untyped-def]
    return client.post(
        f"/api/v1/assignments/{task['assignment_id']}/annotations",
        json={"ranking": [r["id"] for r in task["responses"]]},
        headers=user.headers,
    )


def _label_all(client, project, user) -> int:  # type: ignore[no-untyped-def]
    served = 0
    while (answer := _next(client, project, user)).status_code == 200:
        assert _rank(client, answer.json(), user).status_code == 201
        served += 1
    assert answer.status_code == 204
    return served


def _done_counts(session, project) -> list[int]:  # type: ignore[no-untyped-def]
    session.commit()  # a new snapshot
    query = select(Prompt.done_count).where(Prompt.project_id == project.id).order_by(Prompt.id)
    return list(session.scalars(query))


def _progress(client, project, user):  # type: ignore[no-untyped-def]
    url = f"/api/v1/projects/{project.id}/progress"
    return client.get(url, headers=user.headers).json()


def test_an_excluded_labeler_is_out_and_counting_them_in_restores_it(  # type: ignore[no-untyped-def]
    client, factory, session, tmp_path
) -> None:
    admin = factory.user("admin")
    project = factory.project(k=2, overlap=2)
    factory.items(project, ranking_items(4, k=2), tmp_path)
    bad, b, c = factory.user(), factory.user(), factory.user()
    for _ in range(2):
        assert _rank(client, _next(client, project, bad).json(), bad).status_code == 201
    held = _next(client, project, bad).json()  # an open lease when the admin excludes them
    assert sorted(_done_counts(session, project)) == [0, 0, 1, 1]

    url = f"/api/v1/projects/{project.id}/exclusions"
    made = client.post(url, json={"user_id": bad.id}, headers=admin.headers)
    assert made.status_code == 201, made.text
    assert _done_counts(session, project) == [0, 0, 0, 0]  # their labels count toward nothing

    # No more tasks, the open lease is over and a submit on it stores nothing.
    assert _next(client, project, bad).status_code == 204
    stored = session.scalar(select(Annotation.id).order_by(Annotation.id.desc()).limit(1))
    late = _rank(client, held, bad)
    assert late.status_code in (403, 409, 410), late.text
    session.commit()
    assert session.scalar(select(Annotation.id).order_by(Annotation.id.desc()).limit(1)) == stored
    progress = _progress(client, project, bad)
    assert progress["available"] == 0 and "excluded" in progress["held"]

    # Every prompt goes to both others: overlap 2 counted labels each.
    assert _label_all(client, project, b) == 4
    assert _label_all(client, project, c) == 4
    assert _done_counts(session, project) == [2, 2, 2, 2]
    assert _progress(client, project, b)["available"] == 0

    # Counted in again: their labels count once more (and they may label again).
    exclusion_id = made.json()["id"]
    gone = client.delete(f"/api/v1/exclusions/{exclusion_id}", headers=admin.headers)
    assert gone.status_code == 204
    assert sorted(_done_counts(session, project)) == [2, 2, 3, 3]
    assert _progress(client, project, bad)["held"] is None


def test_a_global_exclusion_takes_the_labeler_out_of_every_project(  # type: ignore[no-untyped-def]
    client, factory, session, tmp_path
) -> None:
    admin = factory.user("admin")
    first, second = factory.project(k=2, overlap=1), factory.project(k=2, overlap=1)
    factory.items(first, ranking_items(2, k=2), tmp_path)
    factory.items(second, ranking_items(2, k=2), tmp_path)
    bad, other = factory.user(), factory.user()
    assert _rank(client, _next(client, second, bad).json(), bad).status_code == 201
    url = f"/api/v1/projects/{first.id}/exclusions"
    body = {"user_id": bad.id, "all_projects": True}
    assert client.post(url, json=body, headers=admin.headers).status_code == 201
    assert _next(client, first, bad).status_code == 204
    assert _next(client, second, bad).status_code == 204
    assert _done_counts(session, second) == [0, 0]
    assert _label_all(client, second, other) == 2  # the excluded label no longer fills a slot
