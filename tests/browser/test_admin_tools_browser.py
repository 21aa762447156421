"""Admin tools in a real browser: the Prompts page, readable charts, the new-project form;
and the labeler's slot previews and demonstration character counter."""

import pytest

from tests.browser import world
from tests.browser.conftest import login, open_task
from tests.helpers import ranking_items, row_id

pytestmark = pytest.mark.browser


def test_prompts_page_filters_releases_and_retires_in_bulk(page, live) -> None:
    from app.labeling import service as labeling

    admin, ada = live.user("admin"), live.user()
    project = live.project(ranking_items(3, k=2), k=2)
    with live.session() as session:
        held = labeling.next_task(session=session, project=project, user=ada)
    login(page, admin)
    page.goto(f"/admin/projects/{project.id}")
    page.get_by_role("link", name="Prompts", exact=True).click()
    assert page.locator("tbody tr[id^=prompt-]").count() == 3
    page.select_option("select[name=status]", "in-progress")
    page.get_by_role("button", name="Filter").click()
    rows = page.locator("tbody tr[id^=prompt-]")
    assert rows.count() == 1 and ada.email in rows.first.inner_text()
    rows.first.get_by_role("button", name="Release").click()
    page.get_by_text("Lease released").wait_for()
    assert "status=in-progress" in page.url  # the filter is kept
    assert page.locator("tbody tr[id^=prompt-]").count() == 0
    page.select_option("select[name=status]", "unlabeled")
    page.get_by_role("button", name="Filter").click()
    assert page.locator("#matching").inner_text() == "3"
    page.locator("#bulk").get_by_role("button", name="Retire…").click()
    page.get_by_role("button", name="Retire 3 prompts").click()
    page.get_by_text("Retired (no longer served; labels kept): 3 prompt(s).").wait_for()
    log = page.locator("#action-log tbody tr")
    assert log.count() == 4 and admin.email in log.first.inner_text()
    [released] = live.assignments(project.id)
    assert released.id == row_id(
        "assignment", held.assignment_id
    ) and released.expires_at <= released.created_at.now(released.expires_at.tzinfo)
    with live.session() as session:
        assert labeling.next_task(session=session, project=project, user=live.user()) is None


def test_a_bulk_action_asks_with_its_count_and_restore_undoes_a_retire(page, live) -> None:
    from app.labeling import service as labeling

    admin = live.user("admin")
    project = live.project(ranking_items(4, k=2), k=2)
    login(page, admin)
    page.goto(f"/admin/projects/{project.id}/prompts")
    page.fill("input[name=q]", "question")
    page.get_by_role("button", name="Filter").click()
    page.locator("#bulk").get_by_role("button", name="Retire…").click()
    question = page.locator("#confirm-question")
    assert question.inner_text() == "Retire 4 prompts matching search: 'question'?"
    with live.session() as session:  # asking changed nothing
        assert labeling.next_task(session=session, project=project, user=live.user()) is not None
    page.get_by_role("link", name="Cancel").click()
    assert "q=question" in page.url and page.locator("#matching").inner_text() == "4"
    with live.session() as session:
        assert labeling.next_task(session=session, project=project, user=live.user()) is not None

    page.locator("#bulk").get_by_role("button", name="Retire…").click()
    page.get_by_role("button", name="Retire 4 prompts").click()
    page.get_by_text("Retired (no longer served; labels kept): 4 prompt(s).").wait_for()
    assert (
        page.locator("#action-log").get_by_text("every prompt matching search: 'question'").count()
        == 4
    )
    page.select_option("select[name=status]", "retired")
    page.get_by_role("button", name="Filter").click()
    bulk = page.locator("#bulk")
    assert bulk.get_by_role("button", name="Retire…").count() == 0
    assert page.locator("tbody tr[id^=prompt-]").first.get_by_role("button").all_inner_texts() == [
        "Restore"
    ]
    bulk.get_by_role("button", name="Restore…").click()
    page.get_by_role("button", name="Restore 4 prompts").click()
    page.get_by_text("Restored (served again): 4 prompt(s).").wait_for()
    with live.session() as session:
        assert labeling.next_task(session=session, project=project, user=live.user()) is not None


def test_run_charts_keep_long_ticks_inside_and_show_exact_values_on_hover(page, live) -> None:
    built = world.build(live)
    login(page, built.admin)
    page.goto(f"/admin/runs/{built.run_id}")
    chart = page.locator("#chart-tokens_per_s svg")
    chart.wait_for()
    box = chart.bounding_box()
    ticks = chart.locator("text.tick")
    assert ticks.count() >= 3
    for i in range(ticks.count()):
        tick = ticks.nth(i).bounding_box()
        assert (
            tick["x"] >= box["x"] - 0.5
            and tick["x"] + tick["width"] <= box["x"] + box["width"] + 0.5
        )
    labels = [ticks.nth(i).text_content() for i in range(ticks.count())]
    assert any(label.endswith("M") for label in labels), labels  # 123.5M, not 123456789.1
    # noise in the 5th decimal: a padded range with few distinct, short ticks
    loss_ticks = page.locator("#chart-loss svg text.tick").all_text_contents()
    numbers = [t for t in loss_ticks if not t.startswith("step")]
    assert all(len(t) <= 6 for t in numbers), numbers
    grad = page.locator("#chart-grad_norm svg text.tick").all_text_contents()
    assert any("e-" in t for t in grad), grad
    overlay = page.locator("#chart-loss svg rect.overlay")
    area = overlay.bounding_box()
    page.mouse.move(area["x"] + area["width"] - 1, area["y"] + area["height"] / 2)
    readout = page.locator("#chart-loss svg text.readout")
    assert readout.text_content() == "step 20: 0.69302"
    page.mouse.move(area["x"] + 1, area["y"] + 5)
    assert readout.text_content() == "step 1: 0.69301"


def test_new_project_form_shows_only_the_settings_of_the_kind(page, live) -> None:
    login(page, live.user("admin"))
    page.goto("/admin/projects/new")
    scale = page.get_by_label("Rating scale")
    k = page.get_by_label("Responses per task (K)")
    page.select_option("#project-kind", "ranking")
    assert k.is_visible() and not scale.is_visible()
    page.select_option("#project-kind", "demonstration")
    assert not k.is_visible() and not page.get_by_label("Criteria flags").is_visible()
    page.select_option("#project-kind", "rating")
    assert k.is_visible() and scale.is_visible()


def test_slot_previews_are_plain_text_and_long_demonstrations_count_characters(page, live) -> None:
    from app.labeling.validation import MAX_DEMONSTRATION

    item = {
        "id": "md",
        "prompt": "Show code",
        "responses": ["**Bold** answer with `code`", "# Title\n\nplain words"],
    }
    ranking = live.project([item], k=2)
    demonstration = live.project([{"id": "d", "prompt": "hi"}], kind="demonstration", k=1)
    login(page, live.user())
    shown = open_task(page, ranking)
    page.keyboard.press("1")
    preview = page.locator(".slot.filled .chip-text").first.inner_text()
    in_import_order = row_id("response", shown[0]) < row_id("response", shown[1])
    first = "Bold answer with code" if in_import_order else "Title plain words"
    assert preview == f"Response 1 — {first}"

    page.goto(f"/projects/{demonstration.id}/label")
    counter = page.locator(".char-count").first
    assert counter.inner_text() == f"0 / {MAX_DEMONSTRATION:,} characters"
    page.fill("textarea[data-turn='0']", "x" * (MAX_DEMONSTRATION + 5))
    assert "5 over the limit" in counter.inner_text()
    assert "over" in counter.get_attribute("class")
    page.keyboard.press("Control+Enter")
    status = page.locator("#status")
    status.get_by_text("the limit is").wait_for()
    assert live.annotations(demonstration.id) == []
