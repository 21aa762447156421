"""Ties and preference strength on the labeling page, keyboard only."""

import pytest

from app.projects.strength import DEFAULT_STRENGTH_SCALE
from tests.browser.conftest import login, open_task, submit_and_wait
from tests.helpers import as_shown, ranking_items

pytestmark = pytest.mark.browser


def test_tie_two_responses_by_keyboard(page, live) -> None:
    project = live.project(ranking_items(2, k=4), k=4)
    login(page, live.user())
    shown = open_task(page, project)
    assert "tie with the one above" in page.locator(".keys").inner_text()
    for key in ("3", "1", "="):  # response 1 shares the place of response 3
        page.keyboard.press(key)
    slots = page.locator("#slots .slot")
    assert "tied" in (slots.nth(1).get_attribute("class") or "")
    assert [slots.nth(i).locator(".slot-number").inner_text() for i in range(2)] == ["1", "1"]
    badges = page.locator("[data-rank-badge]")
    assert badges.nth(2).inner_text() == "#1 (tie)" and badges.nth(0).inner_text() == "#1 (tie)"
    assert slots.nth(1).locator(".tie-toggle").get_attribute("aria-pressed") == "true"
    page.keyboard.press("=")  # untie …
    assert "tied" not in (slots.nth(1).get_attribute("class") or "")
    assert badges.nth(0).inner_text() == "#2"
    page.keyboard.press("=")  # … and tie again
    for key in ("2", "4"):
        page.keyboard.press(key)
    assert [slots.nth(i).locator(".slot-number").inner_text() for i in range(4)] == [
        "1", "1", "3", "4"
    ]  # fmt: skip
    submit_and_wait(page)
    [annotation] = live.annotations(project.id)
    assert as_shown(annotation) == {"ranking": [[shown[2], shown[0]], shown[1], shown[3]]}


def test_a_tie_survives_a_reload_and_undo_removes_it(page, live) -> None:
    project = live.project(ranking_items(1, k=3), k=3)
    login(page, live.user())
    shown = open_task(page, project)
    for key in ("2", "3", "="):
        page.keyboard.press(key)
    page.reload()
    page.wait_for_selector("#task")
    assert "tied" in (page.locator("#slots .slot").nth(1).get_attribute("class") or "")
    page.keyboard.press("Backspace")  # the tied one goes, with its tie
    page.keyboard.press("1")
    assert "tied" not in (page.locator("#slots .slot").nth(1).get_attribute("class") or "")
    page.keyboard.press("=")
    submit_and_wait(page)  # the last response is placed below the tie
    [annotation] = live.annotations(project.id)
    assert as_shown(annotation) == {"ranking": [[shown[1], shown[0]], shown[2]]}


def test_strength_by_keyboard(page, live) -> None:
    project = live.project(ranking_items(2, k=2), k=2, strength_scale=DEFAULT_STRENGTH_SCALE)
    login(page, live.user())
    shown = open_task(page, project)
    assert "how much better" in page.locator(".keys").inner_text()
    legend = page.locator("#strength legend").inner_text()
    assert legend == "How much better is your first choice?"
    labels = page.locator("#strength label")
    assert [" ".join(labels.nth(i).inner_text().split()) for i in range(4)] == [
        "A much better", "B better", "C slightly better", "D negligibly better / unsure"
    ]  # fmt: skip
    page.keyboard.press("2")
    page.keyboard.press("Enter")  # no strength yet: refused on the page, nothing sent
    assert "Say how much better your first choice is (A…D)" in page.locator("#status").inner_text()
    page.keyboard.press("c")
    assert page.locator("#strength input[value='1']").is_checked()
    page.keyboard.press("b")
    assert page.locator("#strength input[value='2']").is_checked()
    submit_and_wait(page)
    [annotation] = live.annotations(project.id)
    assert as_shown(annotation) == {"ranking": [shown[1], shown[0]], "strength": 2}
    # A tie takes no strength.
    shown = open_task(page, project)
    for key in ("1", "2", "="):
        page.keyboard.press(key)
    submit_and_wait(page)
    second = [a for a in live.annotations(project.id) if a.id != annotation.id]
    assert as_shown(second[0]) == {"ranking": [[shown[0], shown[1]]]}
