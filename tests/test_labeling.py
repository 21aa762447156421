"""The labeling API: next task, annotations, idempotency, leases, skips."""

from datetime import timedelta

import pytest
from sqlalchemy import text

from app.base import utcnow
from app.labeling import remembered
from app.labeling.models import Annotation, Assignment
from tests.helpers import prompts_of, ranking_items, row_id


@pytest.fixture
def ranking(factory, tmp_path):  # type: ignore[no-untyped-def]
    project = factory.project(kind="ranking", k=3, overlap=2, criteria=["unsafe", "hallucination"])
    factory.items(project, ranking_items(3, k=4), tmp_path)
    return project


def _next(client, project, user):  # type: ignore[no-untyped-def]
    return client.get(f"/api/v1/projects/{project.id}/tasks/next", headers=user.headers)


def _post(client, task, user, body, key=None):  # type: ignore[no-untyped-def]
    headers = dict(user.headers)
    if key:
        headers["Idempotency-Key"] = key
    return client.post(
        f"/api/v1/assignments/{task['assignment_id']}/annotations", json=body, headers=headers
    )


def test_next_returns_k_responses_in_a_per_assignment_order(client, factory, ranking) -> None:
    labeler = factory.user()
    task = _next(client, ranking, labeler).json()
    assert task["kind"] == "ranking" and len(task["responses"]) == 3
    assert task["messages"] == [{"role": "user", "content": "question 0"}]
    assert {"unsafe", "hallucination"} == set(task["criteria"])
    # asking again returns the same live lease
    assert _next(client, ranking, labeler).json()["assignment_id"] == task["assignment_id"]


def test_ranking_is_stored_and_the_next_prompt_follows(client, factory, ranking, session) -> None:
    labeler = factory.user()
    task = _next(client, ranking, labeler).json()
    order = [r["id"] for r in reversed(task["responses"])]
    flags = {str(order[0]): ["unsafe"]}
    response = _post(client, task, labeler, {"ranking": order, "flags": flags, "duration_ms": 5})
    assert response.status_code == 201, response.text
    stored = session.get(Annotation, row_id("annotation", response.json()["id"]))
    assert stored.payload == {"ranking": [row_id("response", r) for r in order]}
    assert stored.flags == {str(row_id("response", order[0])): ["unsafe"]}
    assert stored.duration_ms == 5
    assert response.json()["payload"] == {"ranking": order}  # as the labeler sent it
    following = _next(client, ranking, labeler).json()
    assert following["prompt_id"] != task["prompt_id"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (lambda ids: {"ranking": ids[:2]}, "ranking"),
        (lambda ids: {"ranking": [ids[0], ids[0], ids[1]]}, "ranking[1]"),
        (lambda ids: {"ranking": [ids[0], ids[1], 999999]}, "ranking[2]"),
        (lambda ids: {"ranking": ["x", ids[1], ids[2]]}, "ranking[0]"),
        (lambda ids: {"scores": {str(i): 1 for i in ids}}, "ranking"),
        (lambda ids: {"ranking": ids, "flags": {str(ids[0]): ["boring"]}}, "flags.{0}"),
    ],
)
def test_bad_annotations_are_refused_naming_the_field(
    client, factory, ranking, body, field
) -> None:
    labeler = factory.user()
    task = _next(client, ranking, labeler).json()
    ids = [r["id"] for r in task["responses"]]
    response = _post(client, task, labeler, body(ids))
    assert response.status_code == 422
    field = field.format(ids[0])
    assert response.json()["field"] == field
    assert field.split("[")[0].split(".")[0] in response.json()["detail"]


def test_a_retry_with_the_same_key_stores_one_annotation(client, factory, ranking, session) -> None:
    labeler = factory.user()
    task = _next(client, ranking, labeler).json()
    body = {"ranking": [r["id"] for r in task["responses"]]}
    first = _post(client, task, labeler, body, key="draft-1")
    again = _post(client, task, labeler, body, key="draft-1")
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert session.query(Annotation).count() == 1
    # without the key, a second submit of a done assignment is a conflict, not a new row
    assert _post(client, task, labeler, body).status_code == 409
    assert session.query(Annotation).count() == 1


def test_overlap_and_never_the_same_prompt_twice(client, factory, ranking) -> None:
    a, b, c = factory.user(), factory.user(), factory.user()
    seen: dict[int, list[int]] = {}
    for labeler in (a, b, c):
        while (response := _next(client, ranking, labeler)).status_code == 200:
            task = response.json()
            seen.setdefault(labeler.id, []).append(task["prompt_id"])
            assert (
                _post(
                    client, task, labeler, {"ranking": [r["id"] for r in task["responses"]]}
                ).status_code
                == 201
            )
        assert response.status_code == 204
    # 3 prompts × overlap 2 = 6 labels; nobody labels a prompt twice
    assert sum(len(v) for v in seen.values()) == 6
    assert all(len(v) == len(set(v)) for v in seen.values())
    counts: dict[int, int] = {}
    for prompts in seen.values():
        for p in prompts:
            counts[p] = counts.get(p, 0) + 1
    assert set(counts.values()) == {2}


def test_prompts_reopened_behind_the_frontier_are_still_served(  # type: ignore[no-untyped-def]
    client, factory, tmp_path, session, monkeypatch, backend
) -> None:
    """PostgreSQL: leases start at the project's frontier (the first unfinished prompt, cached per
    process); a prompt below it reopened by a change this process did not see (another
    process raised the overlap) is served once nothing is left past the frontier."""
    project = factory.project(kind="ranking", k=2, overlap=1)
    factory.items(project, ranking_items(3, k=2), tmp_path)
    a, b = factory.user(), factory.user()
    monkeypatch.setattr(remembered, "FRONTIER_SECONDS", 0.0)  # read on every lease
    for _ in range(2):
        task = _next(client, project, a).json()
        _post(client, task, a, {"ranking": [r["id"] for r in task["responses"]]})
    last = _next(client, project, a).json()  # the frontier is now the third prompt
    monkeypatch.setattr(remembered, "FRONTIER_SECONDS", 3600.0)  # … and stays cached
    session.execute(text("UPDATE projects SET overlap = 2 WHERE id = :id"), {"id": project.id})
    session.commit()
    got = []
    while (response := _next(client, project, b)).status_code == 200:
        task = response.json()
        got.append(row_id("prompt", task["prompt_id"]))
        assert _post(client, task, b, {"ranking": [r["id"] for r in task["responses"]]}).is_success
    assert response.status_code == 204
    every = sorted(prompt_id for prompt_id, _ in prompts_of(session, project))
    assert sorted(got) == every
    # PostgreSQL: first past the frontier, then the reopened ones; SQLite: import order.
    assert got[0] == (row_id("prompt", last["prompt_id"]) if backend == "postgresql" else every[0])


def test_expired_lease_returns_to_the_pool(client, factory, tmp_path, session) -> None:
    project = factory.project(kind="ranking", k=2, overlap=1)
    factory.items(project, ranking_items(1, k=2), tmp_path)
    a, b = factory.user(), factory.user()
    task = _next(client, project, a).json()
    assert _next(client, project, b).status_code == 204
    assignment = session.get(Assignment, row_id("assignment", task["assignment_id"]))
    assignment.expires_at = utcnow() - timedelta(seconds=1)
    session.commit()
    taken = _next(client, project, b)
    assert taken.status_code == 200 and taken.json()["prompt_id"] == task["prompt_id"]
    late = _post(client, task, a, {"ranking": [r["id"] for r in task["responses"]]})
    assert late.status_code == 410
    assert "expired" in late.json()["detail"]


def test_a_late_submit_is_kept_while_the_slot_is_still_free(
    client, factory, ranking, session
) -> None:
    labeler = factory.user()
    task = _next(client, ranking, labeler).json()
    assignment = session.get(Assignment, row_id("assignment", task["assignment_id"]))
    assignment.expires_at = utcnow() - timedelta(seconds=1)
    session.commit()
    response = _post(client, task, labeler, {"ranking": [r["id"] for r in task["responses"]]})
    assert response.status_code == 201


def test_skip_needs_a_reason_and_the_prompt_never_comes_back(client, factory, tmp_path) -> None:
    project = factory.project(kind="ranking", k=2, overlap=1)
    factory.items(project, ranking_items(1, k=2), tmp_path)
    labeler, other = factory.user(), factory.user()
    task = _next(client, project, labeler).json()
    url = f"/api/v1/assignments/{task['assignment_id']}/skip"
    assert client.post(url, json={"reason": ""}, headers=labeler.headers).status_code == 422
    skipped = client.post(url, json={"reason": "not English"}, headers=labeler.headers)
    assert skipped.status_code == 200 and skipped.json()["skip_reason"] == "not English"
    assert _next(client, project, labeler).status_code == 204
    assert _next(client, project, other).json()["prompt_id"] == task["prompt_id"]


def test_a_foreign_assignment_is_refused(client, factory, ranking) -> None:
    owner, intruder = factory.user(), factory.user()
    task = _next(client, ranking, owner).json()
    response = _post(client, task, intruder, {"ranking": [r["id"] for r in task["responses"]]})
    assert response.status_code == 403
    assert "another labeler" in response.json()["detail"]


def test_rating_scale_is_enforced(client, factory, tmp_path) -> None:
    project = factory.project(kind="rating", k=2, rating_scale="0-5")
    factory.items(project, ranking_items(1, k=2), tmp_path)
    labeler = factory.user()
    task = _next(client, project, labeler).json()
    ids = [r["id"] for r in task["responses"]]
    bad = _post(client, task, labeler, {"scores": {str(ids[0]): 6, str(ids[1]): 3}})
    assert bad.status_code == 422 and bad.json()["field"] == f"scores.{ids[0]}"
    good = _post(client, task, labeler, {"scores": {str(ids[0]): 5, str(ids[1]): 0}})
    assert good.status_code == 201


def test_thumbs_scale(client, factory, tmp_path) -> None:
    project = factory.project(kind="rating", k=1, rating_scale="thumbs")
    factory.items(project, ranking_items(1, k=1), tmp_path)
    labeler = factory.user()
    task = _next(client, project, labeler).json()
    rid = str(task["responses"][0]["id"])
    assert _post(client, task, labeler, {"scores": {rid: 3}}).status_code == 422
    assert _post(client, task, labeler, {"scores": {rid: -1}}).status_code == 201


def test_multi_turn_demonstration(client, factory, tmp_path, session) -> None:
    project = factory.project(kind="demonstration", k=1)
    factory.items(project, [{"id": "d", "prompt": "hello"}], tmp_path)
    labeler = factory.user()
    task = _next(client, project, labeler).json()
    assert task["responses"] == []
    ends_with_user = [{"role": "assistant", "content": "hi"}, {"role": "user", "content": "?"}]
    bad = _post(client, task, labeler, {"demonstration": ends_with_user})
    assert bad.status_code == 422 and bad.json()["field"] == "demonstration[1]"
    dialogue = ends_with_user + [{"role": "assistant", "content": "I can help."}]
    assert _post(client, task, labeler, {"demonstration": dialogue}).status_code == 201


def test_labelers_see_only_their_own_annotations(client, factory, ranking) -> None:
    admin, a, b = factory.user("admin"), factory.user(), factory.user()
    for labeler in (a, b):
        task = _next(client, ranking, labeler).json()
        _post(client, task, labeler, {"ranking": [r["id"] for r in task["responses"]]})
    mine = client.get("/api/v1/annotations?user_id=" + str(b.id), headers=a.headers).json()
    assert [x["user_id"] for x in mine] == [a.id]
    assert {
        x["user_id"] for x in client.get("/api/v1/annotations", headers=admin.headers).json()
    } == {a.id, b.id}
    assert all(
        x["user_id"] == a.id for x in client.get("/api/v1/assignments", headers=a.headers).json()
    )


def test_submit_and_skip_can_return_the_next_task(client, factory, ranking, session) -> None:
    labeler = factory.user()
    task = _next(client, ranking, labeler).json()
    body = {"ranking": [r["id"] for r in task["responses"]]}
    plain = _post(client, task, labeler, body, key="k1").json()
    assert plain["next_task"] is None  # only when asked for
    headers = labeler.headers | {"Idempotency-Key": "k2"}
    second = _next(client, ranking, labeler).json()
    url = f"/api/v1/assignments/{second['assignment_id']}/annotations?next=1"
    answer = client.post(
        url, json={"ranking": [r["id"] for r in second["responses"]]}, headers=headers
    )
    assert answer.status_code == 201
    following = answer.json()["next_task"]
    assert following["prompt_id"] not in {task["prompt_id"], second["prompt_id"]}
    # the task it carries is the labeler's live lease: asking again returns the same one
    assert _next(client, ranking, labeler).json()["assignment_id"] == following["assignment_id"]
    skipped = client.post(
        f"/api/v1/assignments/{following['assignment_id']}/skip?next=1",
        json={"reason": "unclear"},
        headers=labeler.headers,
    )
    assert skipped.status_code == 200 and skipped.json()["next_task"] is None  # nothing left
    assert session.query(Annotation).count() == 2
