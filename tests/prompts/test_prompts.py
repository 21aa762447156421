"""Task management: the Prompts page, its filters, keyset pages and the logged actions."""

import re

from sqlalchemy import select

from app.labeling import service as labeling
from app.labeling.schemas import AnnotationIn
from app.projects.models import Prompt
from app.prompts import service
from app.prompts.models import PromptAction
from app.prompts.service import PromptFilter
from tests.helpers import ranking_items, row_id
from tests.test_pages import login


def _rank(session, project, user):  # type: ignore[no-untyped-def]
    task = labeling.next_task(session=session, project=project, user=user)
    ids = [r.id for r in task.responses]
    labeling.submit(
        session=session,
        assignment_id=task.assignment_id,
        user=user,
        body=AnnotationIn(ranking=ids),
    )
    return task


def _ids(rows) -> list[str]:  # type: ignore[no-untyped-def]
    return [r.prompt.external_id for r in rows]


def test_filters_show_each_state_of_a_prompt(session, factory, tmp_path) -> None:
    project = factory.project(kind="ranking", k=2, overlap=2)
    items = ranking_items(4, k=2)
    items[3]["responses"][0]["model"] = "special-model"
    items[3]["prompt"] = "Find the NEEDLE here"
    factory.items(project, items, tmp_path)
    ada, bob, cy = factory.user(), factory.user(), factory.user()
    _rank(session, project, ada)  # p0: 1 of 2 done
    _rank(session, project, bob)  # p0: 2 of 2 done -> complete
    _rank(session, project, cy)  # p1: in progress
    held = labeling.next_task(session=session, project=project, user=ada)  # p1 leased
    skipped = labeling.next_task(session=session, project=project, user=bob)  # p1 full: p2
    labeling.skip(session=session, assignment_id=skipped.assignment_id, user=bob, reason="broken")

    def ids(**where: str) -> list[str]:
        rows, _ = service.list_prompts(
            session=session, project=project, where=PromptFilter(**where)
        )
        return _ids(rows)

    assert ids() == ["p0", "p1", "p2", "p3"]
    assert ids(status="complete") == ["p0"]
    assert ids(status="in-progress") == ["p1"]
    assert ids(status="unlabeled") == ["p2", "p3"]
    assert ids(status="skipped") == ["p2"]
    assert ids(model="special-model") == ["p3"]
    assert ids(q="needle") == ["p3"] and ids(q="p2") == ["p2"]
    rows, _ = service.list_prompts(session=session, project=project, where=PromptFilter(q="p1"))
    assert [(lease.user_email, lease.assignment_id) for lease in rows[0].leases] == [
        (ada.email, row_id("assignment", held.assignment_id))
    ]
    rows, _ = service.list_prompts(session=session, project=project, where=PromptFilter(q="p2"))
    assert [(s.user_email, s.reason) for s in rows[0].skips] == [(bob.email, "broken")]


def test_pages_are_keyset_pages(session, factory, tmp_path) -> None:
    project = factory.project(kind="ranking", k=2)
    factory.items(project, ranking_items(7, k=2), tmp_path)
    seen, after = [], 0
    while True:
        rows, after = service.list_prompts(
            session=session, project=project, where=PromptFilter(), after=after, limit=3
        )
        seen.append(_ids(rows))
        if after is None:
            break
    assert seen == [["p0", "p1", "p2"], ["p3", "p4", "p5"], ["p6"]]


def test_release_requeue_and_retire_change_what_labelers_get(session, factory, tmp_path) -> None:
    project = factory.project(kind="ranking", k=2, overlap=1)
    factory.items(project, ranking_items(2, k=2), tmp_path)
    admin, ada, bob = factory.user("admin"), factory.user(), factory.user()
    held = labeling.next_task(session=session, project=project, user=ada)
    assert row_id("prompt", held.prompt_id) == _pid(session, "p0")
    service.release_lease(
        session=session,
        project=project,
        assignment_id=row_id("assignment", held.assignment_id),
        by=admin,
    )
    session.commit()
    assert (
        labeling.next_task(session=session, project=project, user=bob).prompt_id == held.prompt_id
    )

    service.retire(session=session, project=project, by=admin, prompt_id=_pid(session, "p1"))
    session.commit()
    carl = factory.user()
    assert labeling.next_task(session=session, project=project, user=carl) is None

    done = service.requeue(session=session, project=project, by=admin, where=PromptFilter())
    session.commit()
    assert done == 1  # p0: a re-queue leaves the retired p1 retired
    p1 = session.get(Prompt, _pid(session, "p1"))
    session.refresh(p1)
    assert p1.retired_at is not None
    done = service.restore(session=session, project=project, by=admin, where=PromptFilter())
    session.commit()
    assert done == 1
    session.refresh(p1)
    assert p1.retired_at is None
    got = labeling.next_task(session=session, project=project, user=carl)
    assert got is not None
    log = list(session.scalars(select(PromptAction).order_by(PromptAction.id)))
    assert [(a.action, a.user_id) for a in log] == [
        ("release", admin.id),
        ("retire", admin.id),
        ("requeue", admin.id),
        ("restore", admin.id),
    ]
    assert log[0].detail["holder"] == ada.email and log[-1].detail == {"filter": {}}


def test_requeue_asks_one_more_label_of_a_complete_prompt(session, factory, tmp_path) -> None:
    project = factory.project(kind="ranking", k=2, overlap=1)
    factory.items(project, ranking_items(1, k=2), tmp_path)
    admin, ada, bob = factory.user("admin"), factory.user(), factory.user()
    _rank(session, project, ada)
    assert labeling.next_task(session=session, project=project, user=bob) is None
    where = PromptFilter(status="complete")
    assert service.requeue(session=session, project=project, by=admin, where=where) == 1
    session.commit()
    assert labeling.next_task(session=session, project=project, user=bob) is not None
    assert labeling.next_task(session=session, project=project, user=ada) is None  # labeled it


def test_bulk_retire_on_a_filter_ends_open_leases(session, factory, tmp_path) -> None:
    project = factory.project(kind="ranking", k=2, overlap=1)
    factory.items(project, ranking_items(3, k=2), tmp_path)
    admin, ada = factory.user("admin"), factory.user()
    held = labeling.next_task(session=session, project=project, user=ada)
    where = PromptFilter(status="in-progress")
    assert service.retire(session=session, project=project, by=admin, where=where) == 1
    session.commit()
    assert (
        service.count_prompts(
            session=session, project=project, where=PromptFilter(status="retired")
        )
        == 1
    )
    rows, _ = service.list_prompts(
        session=session, project=project, where=PromptFilter(status="retired")
    )
    assert rows[0].prompt.id == row_id("prompt", held.prompt_id) and rows[0].leases == []
    nxt = labeling.next_task(session=session, project=project, user=ada)
    assert nxt.prompt_id != held.prompt_id


def _pid(session, external_id: str) -> int:  # type: ignore[no-untyped-def]
    return session.scalar(select(Prompt.id).where(Prompt.external_id == external_id))


def test_the_prompts_page_lists_filters_and_acts(client, factory, session, tmp_path) -> None:
    project = factory.project(kind="ranking", k=2, overlap=1)
    factory.items(project, ranking_items(3, k=2), tmp_path)
    ada, admin = factory.user(), factory.user("admin")
    held = labeling.next_task(session=session, project=project, user=ada)
    token = login(client, admin)
    page = client.get(f"/admin/projects/{project.id}/prompts")
    assert page.status_code == 200
    assert len(re.findall(r'<tr id="prompt-\d+"', page.text)) == 3
    assert ada.email in page.text and "Release" in page.text
    assert "0 / 1" in page.text
    assignment = row_id("assignment", held.assignment_id)  # admin pages use row ids
    url = f"/admin/projects/{project.id}/assignments/{assignment}/release"
    answer = client.post(url, data={"csrf_token": token, "status": "in-progress"})
    assert answer.status_code == 200 and "Lease released" in answer.text
    assert "status=in-progress" in str(answer.url)
    bulk = client.post(
        f"/admin/projects/{project.id}/prompts",
        data={"csrf_token": token, "action": "retire", "q": "question 2"},
    )
    assert "Retire 1 prompt matching search: &#39;question 2&#39;?" in bulk.text
    bulk = client.post(
        f"/admin/projects/{project.id}/prompts",
        data={"csrf_token": token, "action": "retire", "q": "question 2"}
        | {"confirm": "yes", "expected": "1"},
    )
    assert "Retired (no longer served; labels kept): 1 prompt(s)." in bulk.text
    log = re.search(r'id="action-log".*', bulk.text, re.S).group(0)
    assert admin.email in log and "retire" in log and "release" in log
    bad = client.post(
        f"/admin/projects/{project.id}/prompts", data={"csrf_token": token, "action": "x"}
    )
    assert bad.status_code == 422


def test_the_api_pages_prompts_and_acts_on_a_filter(client, factory, session, tmp_path) -> None:
    project = factory.project(kind="ranking", k=2, overlap=1)
    factory.items(project, ranking_items(3, k=2), tmp_path)
    admin, ada = factory.user("admin"), factory.user()
    held = labeling.next_task(session=session, project=project, user=ada)
    base = f"/api/v1/projects/{project.id}"
    first = client.get(f"{base}/prompts?limit=2", headers=admin.headers).json()
    assert [p["external_id"] for p in first["prompts"]] == ["p0", "p1"]
    assert first["prompts"][0]["leases"][0]["user_email"] == ada.email
    assert first["prompts"][0]["labels_needed"] == 1
    rest = client.get(f"{base}/prompts?after={first['next_after']}", headers=admin.headers)
    assert [p["external_id"] for p in rest.json()["prompts"]] == ["p2"]
    assert rest.json()["next_after"] is None
    url = f"{base}/assignments/{row_id('assignment', held.assignment_id)}/release"
    assert client.post(url, headers=admin.headers).json() == {"changed": 1}
    assert client.post(url, headers=admin.headers).status_code == 409  # no open lease now
    body = {"action": "retire", "status": "unlabeled"}
    assert client.post(f"{base}/prompts/actions", json=body, headers=admin.headers).json() == {
        "changed": 3
    }
    bad = client.get(f"{base}/prompts?status=nope", headers=admin.headers)
    assert bad.status_code == 422 and bad.json()["field"] == "status"
    assert client.get(f"{base}/prompts", headers=ada.headers).status_code == 403


SEARCHED = {
    "needle": "Find the NEEDLE here",
    "percent": "Take 50% off",
    "fifty": "Buy 500 apples",
    "snake": "call snake_case names",
    "quote": 'She said "hi"',
    "accent": "Crème brûlée recipe",
    "chat": [
        {"role": "system", "content": "be kind"},
        {"role": "user", "content": "What is 2+2?"},
    ],
}


def test_search_matches_message_text_literally(client, factory, session, tmp_path) -> None:
    """`q` is text to find in the messages: `%` and `_` are no wildcards, and the JSON around
    the text (the keys `role` and `content`, the roles, quotes) is not searched."""
    project = factory.project(kind="ranking", k=2)
    lines = [
        {"id": external, "prompt": prompt, "responses": ["a", "b"]}
        for external, prompt in SEARCHED.items()
    ]
    factory.items(project, lines, tmp_path)
    admin = factory.user("admin")

    def ids(q: str) -> list[str]:
        rows, _ = service.list_prompts(session=session, project=project, where=PromptFilter(q=q))
        return _ids(rows)

    for q in ("%%", "__", "content", "role", "user", "system", "\\", "{", ":"):
        assert ids(q) == [], q
    assert ids("%") == ids("50%") == ["percent"]
    assert ids("_") == ids("snake_") == ["snake"]
    assert ids("ke 5") == ["percent"]
    assert ids("needle") == ["needle"]  # case does not matter
    assert ids('"hi"') == ["quote"]
    assert ids("brûlée") == ["accent"]
    assert ids("be kind") == ids("2+2") == ["chat"]
    assert ids("fifty") == ["fifty"]  # an external id, exactly
    base = f"/api/v1/projects/{project.id}"
    listed = client.get(f"{base}/prompts?q=content", headers=admin.headers)
    assert listed.status_code == 200 and listed.json()["prompts"] == []
    for q, changed in (("%%", 0), ("_", 1)):  # a bulk action acts on the same filter
        body = {"action": "retire", "q": q}
        retired = client.post(f"{base}/prompts/actions", json=body, headers=admin.headers)
        assert retired.json() == {"changed": changed}, q
    session.rollback()  # read what the requests committed
    retired_now = PromptFilter(status="retired")
    assert _ids(service.list_prompts(session=session, project=project, where=retired_now)[0]) == [
        "snake"
    ]
    assert ids("") == list(SEARCHED)  # no search: every prompt
