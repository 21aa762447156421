"""Curation without surprises: a bulk action states its count and asks first, restore is its
own action, and only actions that can apply are offered."""

import re

import pytest
from sqlalchemy import select

from app.errors import Conflict, Invalid
from app.labeling import service as labeling
from app.projects.models import Prompt
from app.prompts import service
from app.prompts.models import PromptAction
from app.prompts.service import PromptFilter
from tests.helpers import ranking_items, row_id
from tests.test_pages import login


def _retired(session) -> list[str]:  # type: ignore[no-untyped-def]
    session.rollback()  # see what the requests committed
    query = select(Prompt.external_id).where(Prompt.retired_at.is_not(None)).order_by(Prompt.id)
    return list(session.scalars(query))


def _pid(session, external_id: str) -> int:  # type: ignore[no-untyped-def]
    return session.scalar(select(Prompt.id).where(Prompt.external_id == external_id))


def _bulk_bar(html: str) -> str:
    return re.search(r'<form[^>]*id="bulk".*?</form>', html, re.S).group(0)


def test_a_bulk_action_states_its_count_and_acts_only_once_confirmed(
    client, factory, session, tmp_path
) -> None:
    project = factory.project(kind="ranking", k=2, overlap=1)
    factory.items(project, ranking_items(5, k=2), tmp_path)
    admin = factory.user("admin")
    token = login(client, admin)
    url = f"/admin/projects/{project.id}/prompts"

    asked = client.post(url, data={"csrf_token": token, "action": "retire"})
    assert asked.status_code == 200
    assert f"Retire all 5 prompts of {project.name} (no filter)?" in asked.text
    assert _retired(session) == []  # asking did nothing

    asked = client.post(
        url, data={"csrf_token": token, "action": "retire", "status": "unlabeled", "q": "question"}
    )
    assert "Retire 5 prompts matching status: unlabeled, search: &#39;question&#39;?" in asked.text
    form = re.search(r'<form[^>]*id="confirm-form".*?</form>', asked.text, re.S).group(0)
    assert 'name="confirm" value="yes"' in form and 'name="expected" value="5"' in form
    assert _retired(session) == []

    # The filter changed since the admin was asked: asked again with the new count.
    client.post(
        url,
        data={"csrf_token": token, "action": "retire", "q": "question 4"}
        | {"confirm": "yes", "expected": "1"},
    )
    assert _retired(session) == ["p4"]
    stale = client.post(
        url,
        data={"csrf_token": token, "action": "retire", "status": "unlabeled"}
        | {"confirm": "yes", "expected": "5"},
    )
    assert stale.status_code == 200 and "it matches 4 now" in stale.text
    assert _retired(session) == ["p4"]

    done = client.post(
        url,
        data={"csrf_token": token, "action": "retire", "status": "unlabeled"}
        | {"confirm": "yes", "expected": "4"},
    )
    assert "Retired (no longer served; labels kept): 4 prompt(s)." in done.text
    assert _retired(session) == ["p0", "p1", "p2", "p3", "p4"]


def test_restore_is_its_own_action_and_requeue_never_unretires(
    client, factory, session, tmp_path
) -> None:
    project = factory.project(kind="ranking", k=2, overlap=1)
    factory.items(project, ranking_items(3, k=2), tmp_path)
    admin, ada = factory.user("admin"), factory.user()
    base = f"/api/v1/projects/{project.id}"
    p0, p1 = _pid(session, "p0"), _pid(session, "p1")
    assert client.post(f"{base}/prompts/{p0}/retire", headers=admin.headers).json() == {
        "changed": 1
    }
    for path in (f"{p0}/retire", f"{p0}/requeue", f"{p1}/restore"):
        again = client.post(f"{base}/prompts/{path}", headers=admin.headers)
        assert again.status_code == 409, path
    requeued = client.post(
        f"{base}/prompts/actions", json={"action": "requeue"}, headers=admin.headers
    )
    assert requeued.json() == {"changed": 2}  # p1 and p2; p0 stays retired
    assert _retired(session) == ["p0"]

    inapplicable = [
        {"action": "retire", "status": "retired"},
        {"action": "requeue", "status": "retired"},
        {"action": "restore", "status": "unlabeled"},
    ]
    for body in inapplicable:
        refused = client.post(f"{base}/prompts/actions", json=body, headers=admin.headers)
        assert refused.status_code == 422 and refused.json()["field"] == "action", body
    with pytest.raises(Invalid):
        service.requeue(
            session=session, project=project, by=admin, where=PromptFilter(status="retired")
        )
    session.rollback()
    with pytest.raises(Conflict):
        service.restore(session=session, project=project, by=admin, prompt_id=p1)
    session.rollback()

    body = {"action": "restore", "status": "retired"}
    restored = client.post(f"{base}/prompts/actions", json=body, headers=admin.headers)
    assert restored.json() == {"changed": 1} and _retired(session) == []
    prompt = session.get(Prompt, p0)
    assert prompt.extra_labels == 0  # served again as it was: no extra label asked
    got = labeling.next_task(session=session, project=project, user=ada)
    assert got is not None and row_id("prompt", got.prompt_id) == p0
    log = [a.action for a in session.scalars(select(PromptAction).order_by(PromptAction.id))]
    assert log == ["retire", "requeue", "requeue", "restore"]


def test_the_page_offers_only_the_actions_that_apply(client, factory, session, tmp_path) -> None:
    project = factory.project(kind="ranking", k=2, overlap=1)
    factory.items(project, ranking_items(3, k=2), tmp_path)
    admin = factory.user("admin")
    service.retire(session=session, project=project, by=admin, prompt_id=_pid(session, "p0"))
    session.commit()
    token = login(client, admin)
    url = f"/admin/projects/{project.id}/prompts"

    retired = client.get(f"{url}?status=retired").text
    bar = _bulk_bar(retired)
    assert 'value="restore"' in bar and 'value="retire"' not in bar and "requeue" not in bar
    row = re.search(r'<tr id="prompt-\d+".*?</tr>', retired, re.S).group(0)
    assert "/restore" in row and "/retire" not in row and "/requeue" not in row

    unlabeled = _bulk_bar(client.get(f"{url}?status=unlabeled").text)
    assert 'value="restore"' not in unlabeled and 'value="retire"' in unlabeled
    every = client.get(url).text
    assert all(f'value="{a}"' in _bulk_bar(every) for a in ("requeue", "retire", "restore"))
    served = re.search(rf'<tr id="prompt-{_pid(session, "p1")}".*?</tr>', every, re.S).group(0)
    assert "/retire" in served and "/requeue" in served and "/restore" not in served

    refused = client.post(url, data={"csrf_token": token, "action": "retire", "status": "retired"})
    assert refused.status_code == 422 and _retired(session) == ["p0"]
    done = client.post(f"{url}/{_pid(session, 'p0')}/restore", data={"csrf_token": token})
    assert "Restored (served again): 1 prompt(s)." in done.text and _retired(session) == []
