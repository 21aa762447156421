"""Admin pages in a real browser: access, creating a project, importing with errors, importing
another tool's export with its labeling config."""

import json
import secrets

import pytest
from sqlalchemy import select

from tests.browser.conftest import login
from tests.helpers import ranking_items
from tests.imports.common import FIXTURES

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


def test_an_import_shows_its_progress_and_answers_without_a_page_load(page, live) -> None:
    login(page, live.user("admin"))
    project = live.project(ranking_items(1, k=2, prefix="first"), k=2)
    page.goto(f"/admin/projects/{project.id}")
    page.evaluate(
        """() => {
        window.stillHere = true;
        window.progressSeen = [];
        const box = document.querySelector("#import .import-progress [role=status]");
        new MutationObserver(() => window.progressSeen.push(box.textContent))
            .observe(box, {childList: true, characterData: true, subtree: true});
    }"""
    )
    lines = "".join(json.dumps(x) + "\n" for x in ranking_items(3000, k=2, prefix="big"))
    upload = {"name": "big.jsonl", "mimeType": "application/json", "buffer": lines.encode()}
    page.set_input_files("#import input[type=file]", upload)
    page.click("#import button[type=submit]")
    page.get_by_text("Imported 3000 prompts").wait_for(timeout=60_000)
    assert page.evaluate("window.stillHere") is True  # no page load
    seen = page.evaluate("window.progressSeen")
    assert any(text.startswith("Upload") for text in seen), seen
    assert page.locator(".stats .stat b").first.inner_text() == "3001"


def test_a_label_studio_export_imports_with_its_labeling_config(page, live) -> None:
    from app.projects import service
    from app.projects.models import Prompt, Response
    from app.projects.schemas import ProjectCreate

    with live.session() as session:
        name = f"from label studio {secrets.token_hex(4)}"
        data = ProjectCreate(name=name, kind="ranking", k=2)
        project = service.create(session=session, data=data)
        session.commit()
    login(page, live.user("admin"))
    page.goto(f"/admin/projects/{project.id}")
    export = (FIXTURES / "labelstudio_pairwise.json").read_bytes()
    page.set_input_files(
        "#import input[name=file]",
        {"name": "export.json", "mimeType": "application/json", "buffer": export},
    )
    page.select_option("#import select[name=format]", "labelstudio")
    xml = {"name": "config.xml", "mimeType": "text/xml"}
    page.set_input_files("#import input[name=label_config]", {**xml, "buffer": b"<View><Text"})
    page.click("#import button[type=submit]")
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert alert.inner_text().startswith("label_config: the label config is not valid XML")
    assert page.locator("#import input[name=label_config]").get_attribute("aria-invalid") == "true"
    assert page.locator("#import select[name=format]").input_value() == "labelstudio"
    assert page.locator(".stats .stat b").first.inner_text() == "0"

    config = (FIXTURES / "labelstudio_pairwise.xml").read_bytes()
    page.set_input_files(
        "#import input[name=file]",
        {"name": "export.json", "mimeType": "application/json", "buffer": export},
    )
    page.set_input_files("#import input[name=label_config]", {**xml, "buffer": config})
    page.click("#import button[type=submit]")
    page.get_by_text("Imported 3 prompts").wait_for()
    assert page.get_by_role("alert").count() == 0
    with live.session() as session:
        prompt = session.scalar(
            select(Prompt.id).where(Prompt.project_id == project.id, Prompt.external_id == "101")
        )
        texts = session.scalars(
            select(Response.text).where(Response.prompt_id == prompt).order_by(Response.position)
        )
        # Left and right as the config names them (the data lists them the other way round).
        assert next(iter(texts)) == "Autumn is a season that comes after summer."
