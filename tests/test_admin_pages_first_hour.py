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
