"""Admin pages a new admin meets in their first hour: no dead ends, no misleading numbers."""

import re

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
