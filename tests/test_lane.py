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


def test_a_form_body_from_a_browser_session_is_refused_at_once(app, factory, ranking) -> None:  # type: ignore[no-untyped-def]
    """A cookie session may send its CSRF token as a form field; these routes take JSON, so a
    form body gets its 4xx at once (the CSRF check reading the form must not leave the route
    waiting for a body that was already read)."""
    import asyncio
    import re

    import httpx

    from app.db_async import dispose_async_engines

    labeler = factory.user()

    async def scenario() -> list[tuple[str, int]]:
        transport = httpx.ASGITransport(app=app)
        seen = []
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as web:
            try:
                page = await web.get("/login")
                csrf = re.search(r'name="csrf-token" content="([^"]+)"', page.text).group(1)
                form = {"email": labeler.email, "password": "correct-horse-battery"}
                signed_in = await web.post("/login", data=form | {"csrf_token": csrf})
                assert signed_in.status_code == 303
                task = (await web.get(f"/api/v1/projects/{ranking.id}/tasks/next")).json()
                base = f"/api/v1/assignments/{task['assignment_id']}"
                fields = {"csrf_token": csrf, "reason": "unclear", "ranking": "1"}
                for path in (f"{base}/skip", f"{base}/annotations", f"{base}/skip?next=1"):
                    for files in (None, {"extra": ("a.txt", b"x")}):  # urlencoded, multipart
                        sent = web.post(path, data=fields, files=files)
                        answer = await asyncio.wait_for(sent, timeout=5)
                        seen.append((path, answer.status_code))
                wrong = await asyncio.wait_for(
                    web.post(f"{base}/skip", data=fields | {"csrf_token": "forged"}), timeout=5
                )
                seen.append(("forged", wrong.status_code))
                still = await web.post(
                    f"{base}/skip", json={"reason": "unclear"}, headers={"X-CSRF-Token": csrf}
                )
                seen.append(("json", still.status_code))
            finally:
                await dispose_async_engines()
        return seen

    seen = asyncio.run(scenario())
    assert [code for _, code in seen[:-2]] == [422] * 6, seen
    assert seen[-2:] == [("forged", 403), ("json", 200)]


def _small_app(*dependencies):  # type: ignore[no-untyped-def]
    """An app with one hot route, `POST /items/{item_id}`, carrying these route dependencies."""
    from typing import Annotated

    from fastapi import APIRouter, Depends, FastAPI, Request
    from pydantic import BaseModel

    class Body(BaseModel):
        text: str

    class Out(BaseModel):
        item_id: int
        text: str
        who: str

    async def caller(request: Request) -> str:
        return request.headers.get("x-who", "nobody")

    router = APIRouter()

    @router.post(
        "/items/{item_id}",
        response_model=Out,
        status_code=201,
        dependencies=[Depends(d) for d in dependencies],
    )
    async def make(item_id: int, body: Body, who: Annotated[str, Depends(caller)]) -> object:
        return Out(item_id=item_id, text=body.text, who=who)

    app = FastAPI()
    app.include_router(router)
    lane.install(app.router, router.routes, (make,))
    return app


def test_a_dependency_added_to_a_hot_route_runs_on_the_lane(taken) -> None:  # type: ignore[no-untyped-def]
    """The lane runs what the route declares: a check added tomorrow (a rate limit, a role)
    cannot be skipped by the quick path."""
    from fastapi import HTTPException, Request
    from fastapi.testclient import TestClient

    calls: list[str] = []

    async def limit(request: Request) -> None:
        calls.append(request.url.path)
        if request.headers.get("x-who") == "flood":
            raise HTTPException(429, "slow down")

    client = TestClient(_small_app(limit))
    ok = client.post("/items/7", json={"text": "hi"}, headers={"x-who": "ann"})
    assert ok.status_code == 201 and ok.json() == {"item_id": 7, "text": "hi", "who": "ann"}
    flood = client.post("/items/7", json={"text": "hi"}, headers={"x-who": "flood"})
    assert flood.status_code == 429
    bad = client.post("/items/x", json={"text": "hi"})  # FastAPI's own 422
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"][0] == "path"
    # Run once each (the declined request by FastAPI alone).
    assert calls == ["/items/7", "/items/7", "/items/x"]
    assert taken == [True, False]  # the 429 left the lane as an exception, not recorded


def test_the_lane_refuses_to_start_on_a_dependency_it_cannot_run() -> None:
    from fastapi import Query

    def paged(page: int = Query(1)) -> int:  # a dependency with its own query parameter
        return page

    def opened():  # type: ignore[no-untyped-def]  # a dependency with cleanup
        yield 1

    for dependency in (paged, opened):
        with pytest.raises(lane.LaneError, match="/items/{item_id}"):
            _small_app(dependency)


def test_the_lane_covers_the_hot_routes_of_the_app(app) -> None:  # type: ignore[no-untyped-def]
    """Every hot endpoint is served by the lane from its declaration (this fails if a FastAPI
    upgrade changes the declarations the lane reads)."""
    from app.labeling import api

    hot = next(r for r in app.router.routes if isinstance(r, lane.HotLane))
    assert [spec.route.endpoint for spec in hot.routes] == list(api.HOT)
    annotate = hot.routes[1]
    assert annotate.status == 201 and list(annotate.query) == ["next"]
    assert [p.alias for p in annotate.headers] == ["idempotency-key"]
    assert annotate.body is not None and annotate.body[1].__name__ == "AnnotationIn"
