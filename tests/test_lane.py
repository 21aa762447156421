"""The hot path's lane (app/labeling/lane.py) answers as the FastAPI routes it stands in for."""

import json

import pytest

from app.labeling import lane
from tests.helpers import ranking_items


@pytest.fixture
def ranking(factory, tmp_path):  # type: ignore[no-untyped-def]
    project = factory.project(kind="ranking", k=3, overlap=2)
    factory.items(project, ranking_items(4, k=3), tmp_path)
    return project


@pytest.fixture
def taken(monkeypatch):  # type: ignore[no-untyped-def]
    """For each request the lane matched: whether it answered (False: passed on to FastAPI)."""
    record: list[bool] = []
    handle = lane.HotLane.handle

    async def spy(self, scope, receive, send):  # type: ignore[no-untyped-def]
        await handle(self, scope, receive, send)
        record.append(lane.DECLINED not in scope)

    monkeypatch.setattr(lane.HotLane, "handle", spy)
    return record


def test_clean_requests_take_the_lane_and_answer_as_fastapi_does(
    client, factory, ranking, taken
) -> None:
    labeler = factory.user()
    path = f"/api/v1/projects/{ranking.id}/tasks/next"
    quick = client.get(path, headers=labeler.headers)
    # An unknown query parameter: the lane passes the request on to the FastAPI route.
    routed = client.get(path + "?unused=1", headers=labeler.headers)
    assert taken == [True, False]
    assert quick.status_code == routed.status_code == 200
    assert quick.json() == routed.json()  # the same live lease, the same document
    assert quick.headers["content-type"] == routed.headers["content-type"]

    task = quick.json()
    post = f"/api/v1/assignments/{task['assignment_id']}/annotations"
    body = {"ranking": [r["id"] for r in task["responses"]]}
    headers = labeler.headers | {"Idempotency-Key": "lane-1"}
    first = client.post(post, json=body, headers=headers)
    again_quick = client.post(post, json=body, headers=headers)
    again_routed = client.post(post + "?unused=1", json=body, headers=headers)
    assert taken[2:] == [True, True, False]
    assert first.status_code == 201 and "idempotent-replayed" not in first.headers
    for again in (again_quick, again_routed):
        assert again.status_code == 200, again.text
        assert again.headers["idempotent-replayed"] == "true"
        assert again.json() == first.json()


def test_next_in_the_same_answer_through_the_lane(client, factory, ranking, taken) -> None:
    labeler = factory.user()
    task = client.get(f"/api/v1/projects/{ranking.id}/tasks/next", headers=labeler.headers).json()
    body = {"ranking": [r["id"] for r in task["responses"]]}
    stored = client.post(
        f"/api/v1/assignments/{task['assignment_id']}/annotations?next=1",
        json=body,
        headers=labeler.headers,
    )
    assert stored.status_code == 201
    following = stored.json()["next_task"]
    assert following["prompt_id"] != task["prompt_id"]
    skipped = client.post(
        f"/api/v1/assignments/{following['assignment_id']}/skip?next=page",
        json={"reason": "unclear"},
        headers=labeler.headers,
    )
    assert skipped.status_code == 200, skipped.text
    out = skipped.json()
    assert out["status"] == "skipped" and out["skip_reason"] == "unclear"
    assert out["next_task"]["prompt_id"] not in (task["prompt_id"], following["prompt_id"])
    assert str(out["next_task"]["assignment_id"]) in out["next_page"]
    assert taken == [True, True, True]


@pytest.mark.parametrize(
    ("method", "suffix", "body", "content_type", "key"),
    [
        ("POST", "-1/annotations", {"ranking": [1]}, "application/json", None),
        ("POST", "abc/annotations", {"ranking": [1]}, "application/json", None),
        ("POST", f"{2**48}/annotations", {"ranking": [1]}, "application/json", None),
        ("POST", "{id}/annotations", {"bogus": 1}, "application/json", None),
        ("POST", "{id}/annotations", {"ranking": [1]}, "text/plain", None),
        ("POST", "{id}/annotations", {"ranking": [1]}, "application/json", "k" * 201),
        ("POST", "{id}/annotations?next=2", {"ranking": [1]}, "application/json", None),
        ("POST", "{id}/skip", {"reason": ""}, "application/json", None),
    ],
)
def test_inputs_the_lane_does_not_take_get_fastapis_errors(  # type: ignore[no-untyped-def]
    client, factory, ranking, taken, method, suffix, body, content_type, key
) -> None:
    labeler = factory.user()
    task = client.get(f"/api/v1/projects/{ranking.id}/tasks/next", headers=labeler.headers).json()
    headers = labeler.headers | {"Content-Type": content_type}
    if key is not None:
        headers["Idempotency-Key"] = key
    answer = client.request(
        method,
        "/api/v1/assignments/" + suffix.replace("{id}", str(task["assignment_id"])),
        content=json.dumps(body),
        headers=headers,
    )
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert isinstance(detail, list) and detail[0]["loc"][0] in ("path", "body", "header", "query")
    assert True not in taken[1:]  # none of them was answered by the lane


def test_the_lane_authenticates_as_the_routes_do(client, factory, ranking) -> None:
    path = f"/api/v1/projects/{ranking.id}/tasks/next"
    admin, member, outsider = factory.user("admin"), factory.user(), factory.user()
    assert client.get(path).status_code == 401
    assert client.get(path, headers={"Authorization": "Bearer nope"}).status_code == 401
    added = client.post(
        f"/api/v1/projects/{ranking.id}/members", json={"user_id": member.id}, headers=admin.headers
    )
    assert added.status_code in (200, 201), added.text
    assert client.get(path, headers=member.headers).status_code == 200
    refused = client.get(path, headers=outsider.headers)
    assert refused.status_code == 403 and "not a member" in refused.json()["detail"]
    missing = client.get("/api/v1/projects/999999/tasks/next", headers=outsider.headers)
    assert missing.status_code == 404
    assert client.head(path, headers=member.headers).status_code == 405


def test_a_body_too_deep_to_parse_gets_fastapis_answer(client, factory, ranking, taken) -> None:
    labeler = factory.user()
    task = client.get(f"/api/v1/projects/{ranking.id}/tasks/next", headers=labeler.headers).json()
    path = f"/api/v1/assignments/{task['assignment_id']}/annotations"
    deep = '{"ranking": ' + "[" * 5000 + "]" * 5000 + "}"
    headers = labeler.headers | {"Content-Type": "application/json"}
    quick = client.post(path, content=deep, headers=headers)
    routed = client.post(path + "?unused=1", content=deep, headers=headers)
    assert quick.status_code == routed.status_code and quick.status_code < 500, quick.text
    assert quick.json() == routed.json()
    assert taken[1:] == [False, False]
