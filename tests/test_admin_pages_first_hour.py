"""Admin pages a new admin meets in their first hour: no dead ends, no misleading numbers."""

import re

from sqlalchemy import select

from tests.test_pages import login


def _dashboard_row(page: str, project_id: int) -> str:
    link = f'<a href="/admin/projects/{project_id}">'
    return page.split(link, 1)[1].split("</tr>", 1)[0]


def test_an_empty_projects_progress_bar_is_empty_and_says_no_prompts_yet(
    client, factory, tmp_path
) -> None:
    login(client, factory.user("admin"))
    empty = factory.project(name="empty one")
    full = factory.project(name="with prompts", k=2)
    factory.items(full, [{"id": "a", "prompt": "q", "responses": ["x", "y"]}], tmp_path)
    page = client.get("/admin").text
    row = _dashboard_row(page, empty.id)
    assert re.search(r'<div class="meter"><span style="width: 0%"></span></div>', row)
    assert "no prompts yet" in row and "0 / 0" not in row
    assert f'href="/admin/projects/{empty.id}#import"' in row
    other = _dashboard_row(page, full.id)
    assert "no prompts yet" not in other and "0 / 1" in other


LOCKED = ("k", "rating_scale", "strength_scale")


def _control(page: str, name: str) -> str:
    """The opening tag of the form control named `name` in the settings form."""
    settings = page.split("<h2>Settings</h2>", 1)[1]
    return re.search(rf'<(?:input|select|textarea) name="{name}"[^>]*>', settings).group(0)


def test_locked_project_fields_are_disabled_with_the_reason(client, factory, tmp_path) -> None:
    from tests.test_pages import annotate

    token = login(client, factory.user("admin"))
    scale = [{"label": "better", "margin": 1.0}, {"label": "unsure", "margin": 0.0}]
    project = factory.project(k=2, strength_scale=scale)
    factory.items(project, [{"id": "a", "prompt": "q", "responses": ["x", "y"]}], tmp_path)
    page = client.get(f"/admin/projects/{project.id}").text
    assert all("disabled" not in _control(page, name) for name in LOCKED)
    assert 'id="locked-why"' not in page

    annotate(
        client,
        factory.user(),
        project,
        lambda t: {"ranking": [r["id"] for r in t["responses"]], "strength": 0},
    )
    page = client.get(f"/admin/projects/{project.id}").text
    for name in LOCKED:
        assert 'disabled aria-describedby="locked-why"' in _control(page, name), name
    why = re.search(r'<p class="muted small" id="locked-why">([^<]+)</p>', page).group(1)
    assert why.startswith("K, the rating scale and the preference strength are fixed")
    assert "the project has labels" in why
    for name in ("overlap", "lease_seconds", "name"):
        assert "disabled" not in _control(page, name)

    # what a browser sends: every field but the disabled ones; the rest saves
    form = {"csrf_token": token, "name": "renamed", "overlap": "3", "lease_seconds": "600"}
    form |= {"instructions": "", "criteria": "", "questions": ""}
    saved = client.post(f"/admin/projects/{project.id}", data=form)
    assert saved.status_code == 200 and "Settings saved." in saved.text
    stored = client.get(f"/api/v1/projects/{project.id}", headers={}).json()
    assert (stored["name"], stored["overlap"], stored["k"]) == ("renamed", 3, 2)
    assert stored["strength_scale"] == scale
    # a hurried client that sends a locked field anyway is still refused
    refused = client.post(f"/admin/projects/{project.id}", data=form | {"k": "3"})
    assert refused.status_code == 422 and "k cannot change" in refused.text


def _label_everything(client, user, project) -> None:  # type: ignore[no-untyped-def]
    url = f"/api/v1/projects/{project.id}/tasks/next"
    while (task := client.get(url, headers=user.headers)).status_code == 200 and task.json():
        task = task.json()
        ranking = {"ranking": [r["id"] for r in task["responses"]]}
        answer = f"/api/v1/assignments/{task['assignment_id']}/annotations"
        assert client.post(answer, json=ranking, headers=user.headers).status_code == 201


def _cards(page: str) -> list[str]:
    """The external id of each annotation's prompt, in page order."""
    return re.findall(r'<h3>Prompt <span class="muted small">([^<]*)</span>', page)


def test_annotations_filter_takes_a_prompts_external_id_or_row_id(
    client, factory, session, tmp_path
) -> None:
    from app.projects.models import Prompt

    labeler = factory.user()
    first, second = factory.project(name="first", k=2), factory.project(name="second", k=2)
    items = [{"id": i, "prompt": f"q {i}", "responses": ["x", "y"]} for i in ("alpha", "b-2")]
    factory.items(first, items, tmp_path)
    factory.items(second, items[:1], tmp_path)
    for project in (first, second):
        _label_everything(client, labeler, project)
    login(client, factory.user("admin"))

    both = client.get("/admin/annotations?prompt_id=alpha")
    assert both.status_code == 200 and _cards(both.text) == ["alpha", "alpha"]
    assert "names 2 prompts" in both.text
    one = client.get(f"/admin/annotations?project_id={first.id}&prompt_id=+b-2+")
    assert one.status_code == 200 and _cards(one.text) == ["b-2"]
    assert 'value="b-2"' in one.text  # the field keeps what was typed
    row = session.scalar(
        select(Prompt.id).where(Prompt.project_id == second.id, Prompt.external_id == "alpha")
    )
    by_row = client.get(f"/admin/annotations?prompt_id={row}")
    assert by_row.status_code == 200 and _cards(by_row.text) == ["alpha"]

    missing = client.get(f"/admin/annotations?project_id={second.id}&prompt_id=b-2")
    assert missing.status_code == 422 and _cards(missing.text) == []
    message = "no prompt in second has the id or external id &#39;b-2&#39;"
    assert f'<span class="field-error" id="prompt-error" role="alert">{message}</span>' in (
        missing.text
    )
    too_long = client.get("/admin/annotations", params={"prompt_id": "x" * 201})
    assert too_long.status_code == 422
