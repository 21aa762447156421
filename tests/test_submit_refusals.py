"""Submits and skips that must be refused, with nothing stored, through the HTTP API (the lane
serves the plain routes and ?next=1 alike)."""

from datetime import timedelta

import pytest

from app.base import utcnow
from app.labeling.models import Annotation, Assignment, AssignmentStatus
from tests.helpers import ranking_items, row_id

SUFFIXES = ["", "?next=1"]


def _in(digits: str, zero: int) -> str:
    """An id written in another script's digits (`zero`: that script's digit zero)."""
    return "".join(chr(zero + int(d)) for d in digits)


FOREIGN = {
    "superscript": lambda rid: "²",
    "arabic-indic": lambda rid: _in(str(rid), 0x0660),
    "fullwidth": lambda rid: _in(str(rid), 0xFF10),
    "ascii, 5000 digits": lambda rid: "9" * 5000,
}


def _next(client, project, user):  # type: ignore[no-untyped-def]
    answer = client.get(f"/api/v1/projects/{project.id}/tasks/next", headers=user.headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _submit(client, task, user, body, suffix="", key=None):  # type: ignore[no-untyped-def]
    headers = user.headers | ({"Idempotency-Key": key} if key else {})
    url = f"/api/v1/assignments/{task['assignment_id']}/annotations{suffix}"
    return client.post(url, json=body, headers=headers)


def _labels(session) -> int:  # type: ignore[no-untyped-def]
    session.rollback()  # a fresh read: SQLite keeps a read transaction's snapshot
    return session.query(Annotation).count()


QUESTION = {"name": "helpful", "type": "likert", "min": 1, "max": 5, "required": False}
PLACES = {
    # where a response id is written: (project kind, body from (ids, the id), field named)
    "ranking": ("ranking", lambda ids, x: {"ranking": [x, ids[1]]}, "ranking[0]"),
    "tie": ("ranking", lambda ids, x: {"ranking": [[ids[1], x]]}, "ranking[0][1]"),
    "flags": ("ranking", lambda ids, x: {"ranking": ids, "flags": {x: ["unsafe"]}}, "flags.{x}"),
    "answers": (
        "ranking",
        lambda ids, x: {"ranking": ids, "answers": {"helpful": {x: 3}}},
        "answers.helpful.{x}",
    ),
    "scores": ("rating", lambda ids, x: {"scores": {x: 1, str(ids[1]): 1}}, "scores.{x}"),
}
ID_CASES = [
    pytest.param(*PLACES[place], FOREIGN[written], id=f"{place}-{written}")
    for place in PLACES
    for written in FOREIGN
    if not (place == "flags" and written.startswith("ascii"))  # a flag key: 100 characters
]


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize(("kind", "body", "field", "foreign"), ID_CASES)
def test_response_ids_not_in_ascii_digits_are_422_naming_the_field(  # type: ignore[no-untyped-def]
    client, factory, tmp_path, session, suffix, kind, body, field, foreign
) -> None:
    project = factory.project(kind=kind, k=2, criteria=["unsafe"], questions=[QUESTION])
    factory.items(project, ranking_items(2, k=2), tmp_path)
    labeler = factory.user()
    task = _next(client, project, labeler)
    ids = [r["id"] for r in task["responses"]]
    x = foreign(ids[0])
    answer = _submit(client, task, labeler, body(ids, x), suffix)
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"] == field.format(x=x)
    assert _labels(session) == 0
    # the task is still open: the same lease, and a clean submit of it is stored
    assert _next(client, project, labeler)["assignment_id"] == task["assignment_id"]
    clean = body(ids, str(ids[0]))
    assert _submit(client, task, labeler, clean, suffix).status_code == 201


def _members_only(client, factory, tmp_path, *members):  # type: ignore[no-untyped-def]
    admin = factory.user("admin")
    project = factory.project(kind="ranking", k=2, overlap=2)
    factory.items(project, ranking_items(4, k=2), tmp_path)
    for member in members:
        added = client.post(
            f"/api/v1/projects/{project.id}/members",
            json={"user_id": member.id},
            headers=admin.headers,
        )
        assert added.status_code in (200, 201), added.text
    return admin, project


def _leased(session, assignment_id: int) -> bool:  # type: ignore[no-untyped-def]
    session.rollback()  # a fresh read: SQLite keeps a read transaction's snapshot
    row = session.get(Assignment, row_id("assignment", assignment_id))
    return row.status == AssignmentStatus.leased


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("action", ["submit", "skip"])
def test_a_removed_member_can_neither_submit_nor_skip_the_open_lease(  # type: ignore[no-untyped-def]
    client, factory, tmp_path, session, suffix, action
) -> None:
    kept, removed = factory.user(), factory.user()
    admin, project = _members_only(client, factory, tmp_path, kept, removed)
    task = _next(client, project, removed)  # leased (and remembered by this process)
    left = client.delete(
        f"/api/v1/projects/{project.id}/members/{removed.id}", headers=admin.headers
    )
    assert left.status_code == 200 and [u["id"] for u in left.json()] == [kept.id]
    body = {"ranking": [r["id"] for r in task["responses"]]}
    if action == "submit":
        answer = _submit(client, task, removed, body, suffix, key="draft-1")
    else:
        url = f"/api/v1/assignments/{task['assignment_id']}/skip{suffix}"
        answer = client.post(url, json={"reason": "unclear"}, headers=removed.headers)
    assert answer.status_code == 403, answer.text
    assert "not a member" in answer.json()["detail"]
    assert _labels(session) == 0
    assert _leased(session, task["assignment_id"])
    # the members who stay, and admins (members or not), still label
    for labeler in (kept, admin):
        theirs = _next(client, project, labeler)
        ranking = {"ranking": [r["id"] for r in theirs["responses"]]}
        assert _submit(client, theirs, labeler, ranking, suffix).status_code == 201
    assert _labels(session) == 2


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_a_key_replayed_on_another_labelers_assignment_is_403(  # type: ignore[no-untyped-def]
    client, factory, tmp_path, session, suffix
) -> None:
    project = factory.project(kind="ranking", k=2, overlap=2)
    factory.items(project, ranking_items(2, k=2), tmp_path)
    replayer, owner = factory.user(), factory.user()
    mine = _next(client, project, replayer)
    body = {"ranking": [r["id"] for r in mine["responses"]]}
    assert _submit(client, mine, replayer, body, key="draft-1").status_code == 201
    theirs = _next(client, project, owner)
    answer = _submit(client, theirs, replayer, body, suffix, key="draft-1")
    assert answer.status_code == 403, answer.text
    assert "another labeler" in answer.json()["detail"]
    assert "idempotent-replayed" not in answer.headers
    assert _labels(session) == 1
    assert _leased(session, theirs["assignment_id"])


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_a_key_reused_on_another_assignment_of_ones_own_is_422(  # type: ignore[no-untyped-def]
    client, factory, tmp_path, session, suffix
) -> None:
    project = factory.project(kind="ranking", k=2, overlap=1)
    factory.items(project, ranking_items(3, k=2), tmp_path)
    labeler = factory.user()
    first = _next(client, project, labeler)
    earlier = {"ranking": [r["id"] for r in first["responses"]]}
    assert _submit(client, first, labeler, earlier, key="draft-1").status_code == 201
    second = _next(client, project, labeler)  # PostgreSQL: a lease this process remembers
    ranking = {"ranking": [r["id"] for r in second["responses"]]}
    for _ in range(2):  # PostgreSQL: the remembered lease's store, then the assignment's read
        answer = _submit(client, second, labeler, ranking, suffix, key="draft-1")
        assert answer.status_code == 422, answer.text
        assert answer.json()["field"] == "Idempotency-Key"
        assert f"assignment {first['assignment_id']}" in answer.json()["detail"]
        assert _labels(session) == 1
        assert _leased(session, second["assignment_id"])
    # the key still replays on its own assignment; the second one takes a key of its own
    again = _submit(client, first, labeler, earlier, suffix, key="draft-1")
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    assert _submit(client, second, labeler, ranking, suffix, key="draft-2").status_code == 201
    assert _labels(session) == 2


def _release(client, admin, project, task):  # type: ignore[no-untyped-def]
    assignment = row_id("assignment", task["assignment_id"])  # admins use row ids
    url = f"/api/v1/projects/{project.id}/assignments/{assignment}/release"
    released = client.post(url, headers=admin.headers)
    assert released.status_code == 200, released.text


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_a_submit_after_an_admin_released_the_lease_is_409(  # type: ignore[no-untyped-def]
    client, factory, tmp_path, session, suffix
) -> None:
    admin, labeler = factory.user("admin"), factory.user()
    project = factory.project(kind="ranking", k=2, overlap=2)
    factory.items(project, ranking_items(1, k=2), tmp_path)
    task = _next(client, project, labeler)  # PostgreSQL: a lease this process remembers
    _release(client, admin, project, task)
    body = {"ranking": [r["id"] for r in task["responses"]]}
    # the slot is still free (overlap 2, nobody else took it): a late submit would be kept
    for key in ("draft-1", None):
        answer = _submit(client, task, labeler, body, suffix, key=key)
        assert answer.status_code == 409, answer.text
        detail = answer.json()["detail"]
        assert "released by an admin" in detail and "not stored" in detail
    assert _labels(session) == 0
    # leased again (the same assignment, a new lease): that lease is the labeler's to submit
    again = _next(client, project, labeler)
    assert again["assignment_id"] == task["assignment_id"]
    assert _submit(client, again, labeler, body, suffix).status_code == 201
    assert _labels(session) == 1


def test_a_lease_that_expired_after_a_release_and_a_new_lease_is_late_not_released(  # type: ignore[no-untyped-def]
    client, factory, tmp_path, session
) -> None:
    """A release ends one lease; the same assignment leased again and expired is only late,
    and a late submit is kept while the slot is free."""
    admin, labeler = factory.user("admin"), factory.user()
    project = factory.project(kind="ranking", k=2, overlap=2)
    factory.items(project, ranking_items(1, k=2), tmp_path)
    task = _next(client, project, labeler)
    _release(client, admin, project, task)
    assert _next(client, project, labeler)["assignment_id"] == task["assignment_id"]
    session.rollback()
    lease = session.get(Assignment, row_id("assignment", task["assignment_id"]))
    lease.expires_at = utcnow() - timedelta(seconds=1)
    session.commit()
    body = {"ranking": [r["id"] for r in task["responses"]]}
    assert _submit(client, task, labeler, body).status_code == 201


def test_the_sync_service_refuses_as_the_api_does(  # type: ignore[no-untyped-def]
    client, factory, tmp_path, session
) -> None:
    """labeling.service (pages, CLI) runs the same checks as the hot path above."""
    from app.errors import Conflict, Forbidden, Invalid
    from app.labeling import service
    from app.labeling.schemas import AnnotationIn
    from app.projects import service as project_service
    from app.prompts import service as prompts_service

    member, other, released = factory.user(), factory.user(), factory.user()
    admin, project = _members_only(client, factory, tmp_path, member, other, released)

    def lease(user):  # type: ignore[no-untyped-def]
        task = service.next_task(session=session, project=project, user=user)
        return task, AnnotationIn(ranking=[r.id for r in task.responses])

    def submit(user, task, body, key=None):  # type: ignore[no-untyped-def]
        return service.submit(
            session=session,
            assignment_id=task.assignment_id,
            user=user,
            body=body,
            idempotency_key=key,
        )

    first, body = lease(member)
    submit(member, first, body, key="draft-1")
    second, body2 = lease(member)
    with pytest.raises(Invalid) as reused:
        submit(member, second, body2, key="draft-1")
    assert reused.value.field == "Idempotency-Key"
    theirs, _ = lease(other)
    with pytest.raises(Forbidden, match="another labeler"):
        submit(member, theirs, body, key="draft-1")
    taken_back, body3 = lease(released)
    prompts_service.release_lease(
        session=session,
        project=project,
        assignment_id=row_id("assignment", taken_back.assignment_id),
        by=admin,
    )
    session.commit()
    with pytest.raises(Conflict, match="released by an admin"):
        submit(released, taken_back, body3)
    project_service.remove_member(session=session, project=project, user_id=other.id)
    session.commit()
    with pytest.raises(Forbidden, match="not a member"):
        submit(other, theirs, AnnotationIn(ranking=[r.id for r in theirs.responses]))
    with pytest.raises(Forbidden, match="not a member"):
        service.skip(session=session, assignment_id=theirs.assignment_id, user=other, reason="x")
    assert _labels(session) == 1
