"""Admin pages in a real browser: access, creating a project, importing with errors."""

import json

import pytest

from tests.browser.conftest import login
from tests.helpers import ranking_items

pytestmark = pytest.mark.browser


def test_a_labeler_cannot_open_admin_pages(page, live) -> None:
    login(page, live.user())
    assert page.get_by_role("link", name="Dashboard").count() == 0
    for path in ("/admin", "/admin/users", "/admin/annotations", "/admin/projects/new"):
        assert page.goto(path).status == 403


def test_anonymous_admin_pages_redirect_to_login(page, live) -> None:
    page.goto("/admin/users")
    assert page.url.endswith("/login?next=/admin/users")


def test_admin_creates_a_project_and_sees_the_bad_line_of_an_upload(page, live) -> None:
    login(page, live.user("admin"))
    page.click("text=Dashboard")
    page.click("text=+ New project")
    page.fill("input[name=name]", "Browser-made project")
    page.select_option("select[name=kind]", "ranking")
    page.fill("input[name=k]", "2")
    page.fill("input[name=criteria]", "hallucination, unsafe")
    page.click("text=Create project")
    page.get_by_text("Project created.").wait_for()

    good, bad = ranking_items(3, k=2), {"id": "x", "prompt": "only one", "responses": ["a"]}
    lines = [json.dumps(good[0]), json.dumps(bad), "{not json", json.dumps(good[1])]
    upload = {"name": "items.jsonl", "mimeType": "application/json"}
    page.set_input_files("input[type=file]", {**upload, "buffer": "\n".join(lines).encode()})
    page.click("#import button[type=submit]")
    errors = page.locator("table.import-errors tbody tr")
    errors.first.wait_for()
    assert errors.nth(0).locator("td").nth(0).inner_text() == "2"
    assert errors.nth(1).locator("td").nth(0).inner_text() == "3"
    assert "Nothing was imported" in page.get_by_role("alert").inner_text()

    fixed = "\n".join(json.dumps(item) for item in good).encode()
    page.set_input_files("input[type=file]", {**upload, "buffer": fixed})
    page.click("#import button[type=submit]")
    page.get_by_text("Imported 3 prompts").wait_for()
