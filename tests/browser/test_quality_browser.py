"""The labeler quality page in a real browser: sort, drill down, exclude and reinstate."""

import pytest

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
