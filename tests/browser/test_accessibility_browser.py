"""An axe-core audit of every page, as a labeler and as an admin: no violations."""

import pytest

from tests.browser import world
from tests.browser.axe import violations
from tests.browser.conftest import login

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def built(live):  # type: ignore[no-untyped-def]
    return world.build(live)


def _audit(page, paths: list[str]) -> dict[str, list[str]]:  # type: ignore[no-untyped-def]
    found = {}
    for path in paths:
        page.goto(path)
        page.wait_for_load_state("networkidle")
        if problems := violations(page):
            found[path] = problems
    return found


def test_labeler_pages_have_no_violations(page, live, built) -> None:
    page.goto("/login")
    assert violations(page) == []
    login(page, built.labeler)
    pages = ["/"] + [
        f"/projects/{p.id}/label" for p in (built.ranking, built.rating, built.demonstration)
    ]
    assert _audit(page, pages) == {}
    for project in (built.ranking, built.rating, built.demonstration):
        page.goto(f"/projects/{project.id}/label")
        assert page.locator("h1").count() == 1
    # a ranking with its slots filled, and the skip panel open
    page.goto(f"/projects/{built.ranking.id}/label")
    for key in ("1", "2"):
        page.keyboard.press(key)
    page.keyboard.press("s")
    assert violations(page) == []


def test_admin_pages_have_no_violations(page, live, built) -> None:
    login(page, built.admin)
    r = built.ranking.id
    pages = [
        "/admin",
        "/admin/projects/new",
        f"/admin/projects/{r}",
        f"/admin/projects/{r}/prompts",
        f"/admin/projects/{r}/leaderboard",
        f"/admin/projects/{r}/snapshots",
        f"/admin/projects/{built.rating.id}",
        "/admin/annotations",
        "/admin/users",
        "/admin/snapshots",
        "/admin/runs",
        "/admin/runs/new",
        "/admin/runs/judge",
        f"/admin/runs/judge?project={r}",
        f"/admin/runs/{built.run_id}",
        "/admin/models",
        f"/admin/models/{built.model_id}",
        "/admin/quality",
        f"/admin/projects/{r}/quality",
        f"/admin/projects/{r}/quality/labelers/{built.other.id}",
        "/no-such-page",
        f"/admin/projects/{r}/prompts?status=retired",
        f"/admin/snapshots/{built.snapshot_id}",
    ]
    assert _audit(page, pages) == {}
    # a bulk action's confirmation (a page a form post answers)
    page.goto(f"/admin/projects/{r}/prompts")
    page.locator("#bulk").get_by_role("button", name="Retire…").click()
    page.locator("#confirm-question").wait_for()
    assert violations(page) == []
