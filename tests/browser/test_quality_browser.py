"""The labeler quality page in a real browser: sort, drill down, exclude and reinstate; an
imported annotator excluded from the project page."""

import json
import secrets

import pytest

from tests.browser.axe import violations
from tests.browser.conftest import login
from tests.quality import sim

pytestmark = pytest.mark.browser


def test_admin_sorts_drills_down_excludes_and_reinstates(page, live) -> None:
    project = live.project(sim.items(24, gold=4), k=4, overlap=3, gold_rate=0.2)
    with live.session() as session:
        crew = sim.crew(session, ["careful"] * 3 + ["first"], prefix=f"b{project.id}-")
        sim.work(session, project, crew, seed=10)
    biased = crew[-1][0].email
    login(page, live.user("admin"))
    page.click("text=Dashboard")
    page.click(f"a[href='/admin/projects/{project.id}/quality']")
    table = page.locator("#labelers")
    table.wait_for()
    assert page.locator("#alpha").inner_text() != "–"
    rows = page.locator("#labelers tbody tr")
    assert biased in rows.first.inner_text()  # least reliable first by default
    page.click("#labelers th >> text=Reliability")  # now descending
    page.wait_for_url("**desc=true")
    assert biased in rows.last.inner_text()
    page.click("#labelers th >> text=Reliability")
    page.wait_for_url("**desc=false")
    first = rows.first
    assert biased in first.inner_text() and "position-bias" in first.inner_text().lower()

    first.locator(f"text={biased}").click()
    page.get_by_text("Labels next to the consensus").wait_for()
    assert "ranked the first shown response first" in page.locator("#flags").inner_text()
    assert page.locator("#labels tbody tr").count() >= 5
    page.click("button:has-text('Exclude')")
    page.get_by_text("stop counting toward overlap").wait_for()  # asked first, with the effect
    page.click(f"button:has-text('Exclude {biased}')")
    row = page.locator(f"#labelers tbody tr:has-text('{biased}')")
    assert "excluded" in row.inner_text().lower()
    assert "position-bias" in page.locator("#exclusions").inner_text()
    row.locator("button:has-text('Reinstate')").click()
    row = page.locator(f"#labelers tbody tr:has-text('{biased}')")
    assert "excluded" not in row.inner_text().lower()
    assert row.locator("button:has-text('Exclude')").count() == 1


def test_an_imported_annotator_is_listed_on_the_project_page_and_excluded(page, live) -> None:
    from app.projects import importer, service
    from app.projects.schemas import ProjectCreate
    from tests.imports.test_source_annotators import _tasks

    path = live.tmp / f"label-studio-{secrets.token_hex(4)}.json"
    path.write_text(json.dumps(_tasks(8)))
    with live.session() as session:
        name = f"imported annotators {path.stem}"
        data = ProjectCreate(name=name, kind="ranking", k=2, overlap=3)
        project = service.create(session=session, data=data)
        session.commit()
        importer.import_file(session=session, project=project, path=path)
    login(page, live.user("admin"))
    page.goto(f"/admin/projects/{project.id}")
    row = page.locator("#sources tbody tr", has_text="labelstudio:3")
    assert "imported from label studio · cannot sign in" in row.inner_text().lower()
    assert violations(page) == []

    row.get_by_role("button", name="Exclude").click()
    page.get_by_text("stop counting toward overlap").wait_for()  # asked first, with the effect
    page.get_by_role("button", name="Exclude labelstudio:3").click()
    page.wait_for_url(f"**/admin/projects/{project.id}/quality")
    quality_row = page.locator("#labelers tbody tr", has_text="labelstudio:3")
    assert {"excluded", "imported"} <= set(quality_row.inner_text().lower().split())

    page.goto(f"/admin/projects/{project.id}")
    row = page.locator("#sources tbody tr", has_text="labelstudio:3")
    assert "excluded" in row.inner_text().lower()
    row.get_by_role("button", name="Reinstate").click()
    page.wait_for_url(f"**/admin/projects/{project.id}/quality")
    quality_row = page.locator("#labelers tbody tr", has_text="labelstudio:3")
    assert "excluded" not in quality_row.inner_text().lower()
