"""The task a labeling page holds ready behind the current one (`?ahead=1`): a lease like any
other — at most one extra per labeler, counted toward overlap, never the same prompt twice,
given back when the page is left, and shown in progress."""

from datetime import timedelta

from sqlalchemy import select

from app.base import utcnow
from app.labeling.models import Assignment
from tests.helpers import ranking_items, row_id


def _next(client, project, user):  # type: ignore[no-untyped-def]
    return client.get(f"/api/v1/projects/{project.id}/tasks/next", headers=user.headers)


def _ahead_page(client, project, user):  # type: ignore[no-untyped-def]
    return client.get(f"/projects/{project.id}/label?ahead=1", headers=user.headers)


def _live(session, project, user) -> list[int]:  # type: ignore[no-untyped-def]
    session.commit()  # a fresh snapshot
    now = utcnow()
    return list(
        session.scalars(
            select(Assignment.prompt_id).where(
                Assignment.project_id == project.id,
                Assignment.user_id == user.id,
                Assignment.status == "leased",
                Assignment.expires_at > now,
            )
        )
    )


def test_a_task_held_ahead_is_one_more_lease_that_every_rule_counts(  # type: ignore[no-untyped-def]
    client, factory, session, tmp_path
) -> None:
    project = factory.project(kind="ranking", k=2, overlap=1)
    factory.items(project, ranking_items(3, k=2), tmp_path)
    ada, bob = factory.user(), factory.user()
    current = _next(client, project, ada).json()
    page = _ahead_page(client, project, ada)
    assert page.status_code == 200 and "task-config" in page.text
    assert str(current["assignment_id"]) not in page.text  # another task
    assert len(set(_live(session, project, ada))) == 2
    again = _ahead_page(client, project, ada)  # asking again: the same task, no third lease
    assert len(_live(session, project, ada)) == 2
    assert _next(client, project, ada).json()["assignment_id"] == current["assignment_id"]
    progress = client.get(f"/api/v1/projects/{project.id}/progress", headers=ada.headers).json()
    assert progress["leased"] == 2 and progress["available"] == 1
    assert "2</strong> remaining" in again.text  # held + 1 open, once the current is done

    # Overlap 1: bob gets the one prompt left, and nothing after it.
    assert _next(client, project, bob).status_code == 200
    assert _ahead_page(client, project, bob).text.count("task-config") == 0

    # The page that is left gives its held task back; the prompt is free for anyone.
    held = [p for p in _live(session, project, ada) if p != row_id("prompt", current["prompt_id"])]
    [lease] = session.scalars(select(Assignment.id).where(Assignment.prompt_id == held[0]))
    from app.labeling import public

    answer = client.post(
        f"/api/v1/assignments/{public.encode(public.Kind.assignment, lease)}/return",
        headers=ada.headers,
    )
    assert answer.status_code == 204
    assert _live(session, project, ada) == [row_id("prompt", current["prompt_id"])]
    assert _next(client, project, factory.user()).status_code == 200  # the freed prompt


def test_another_labeler_cannot_give_back_my_lease(client, factory, session, tmp_path) -> None:  # type: ignore[no-untyped-def]
    project = factory.project(kind="ranking", k=2, overlap=1)
    factory.items(project, ranking_items(1, k=2), tmp_path)
    ada, eve = factory.user(), factory.user()
    task = _next(client, project, ada).json()
    url = f"/api/v1/assignments/{task['assignment_id']}/return"
    assert client.post(url, headers=eve.headers).status_code == 204  # nothing to say
    assert _live(session, project, ada) == [row_id("prompt", task["prompt_id"])]
    lease = session.get(Assignment, row_id("assignment", task["assignment_id"]))
    assert lease.expires_at > utcnow() + timedelta(seconds=10)
