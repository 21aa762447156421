"""A project's extra questions in a real browser, answered with the keyboard only."""

import pytest

from tests.browser.axe import violations
from tests.browser.conftest import login, open_task, submit_and_wait
from tests.helpers import as_shown, ranking_items

pytestmark = pytest.mark.browser

QUESTIONS = [
    {
        "name": "helpfulness",
        "type": "likert",
        "title": "How helpful?",
        "min": 1,
        "max": 5,
        "labels": {"1": "useless", "5": "perfect"},
    },
    {"name": "honest", "type": "yes_no", "title": "Honest?"},
    {"name": "issues", "type": "multi_label", "title": "Issues", "options": ["rude", "long"]},
    {"name": "tone", "type": "single_choice", "title": "Tone", "options": ["formal", "casual"]},
    {"name": "why", "type": "text", "title": "Why?", "required": True},
]


def tab_to(page, selector: str, most: int = 60) -> None:  # type: ignore[no-untyped-def]
    """Press Tab until the focused element matches `selector` (it must be reachable)."""
    for _ in range(most):
        if page.evaluate("(s) => document.activeElement.matches(s)", selector):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached {selector}")


def test_every_question_type_by_keyboard_only(page, live) -> None:
    project = live.project(ranking_items(2, k=2), k=2, questions=QUESTIONS)
    login(page, live.user())
    shown = open_task(page, project)
    a, b = (str(i) for i in shown)
    assert violations(page) == []
    assert "Tab" in page.locator(".question-keys").inner_text()  # the keys are on screen
    page.keyboard.press("2")
    page.keyboard.press("1")  # the ranking: response 2 above response 1
    page.keyboard.press("Enter")  # refused: the required questions are open
    assert "Answer “How helpful?” for every response first." in page.locator("#status").inner_text()
    assert live.annotations(project.id) == []
    # The refusal put the focus on the open question: digits pick a point there, and keep
    # their meaning for the ranking everywhere else.
    likert_a = f"fieldset[data-question=helpfulness][data-response='{a}']"
    assert page.evaluate(
        "(s) => document.querySelector(s).contains(document.activeElement)", likert_a
    )
    page.keyboard.press("4")
    tab_to(page, f"fieldset[data-question=honest][data-response='{a}'] input")
    page.keyboard.press("y")
    tab_to(page, f"fieldset[data-question=issues][data-response='{a}'] input[value=long]")
    page.keyboard.press("Space")
    tab_to(page, f"fieldset[data-question=helpfulness][data-response='{b}'] input")
    page.keyboard.press("ArrowRight")  # a radio group: arrows choose (1 → 2)
    tab_to(page, f"fieldset[data-question=honest][data-response='{b}'] input")
    page.keyboard.press("n")
    tab_to(page, "fieldset[data-question=tone] input")
    page.keyboard.press("ArrowDown")
    tab_to(page, "fieldset[data-question=why] textarea")
    page.keyboard.type("Response 2 is clearer; S and 1 are text here")
    assert page.locator(".slot.filled").count() == 2  # typing did not touch the ranking
    submit_and_wait(page, "Control+Enter")
    [annotation] = live.annotations(project.id)
    assert as_shown(annotation)["ranking"] == [shown[1], shown[0]]
    assert as_shown(annotation)["answers"] == {
        "helpfulness": {a: 4, b: 2},
        "honest": {a: True, b: False},
        "issues": {a: ["long"], b: []},
        "tone": "casual",
        "why": "Response 2 is clearer; S and 1 are text here",
    }


def test_answers_survive_a_reload_and_the_page_passes_axe(page, live) -> None:
    project = live.project(ranking_items(1, k=2), k=2, kind="rating", questions=QUESTIONS)
    login(page, live.user())
    shown = open_task(page, project)
    assert violations(page) == []
    page.keyboard.press("u")
    page.keyboard.press("d")
    tab_to(page, f"fieldset[data-question=helpfulness][data-response='{shown[0]}'] input")
    page.keyboard.press("5")
    tab_to(page, "fieldset[data-question=why] textarea")
    page.keyboard.type("kept across a reload")
    page.wait_for_timeout(100)
    page.reload()
    page.wait_for_selector("#task")
    checked = f"fieldset[data-question=helpfulness][data-response='{shown[0]}'] input:checked"
    assert page.locator(checked).get_attribute("value") == "5"
    assert (
        page.locator("fieldset[data-question=why] textarea").input_value() == "kept across a reload"
    )
    # In a question the arrows belong to the radio group (↑ from the first point wraps to the
    # last), not to the rating page, whose ↑ would make the response above current.
    tab_to(page, f"fieldset[data-question=helpfulness][data-response='{shown[1]}'] input")
    page.keyboard.press("ArrowUp")
    checked = f"fieldset[data-question=helpfulness][data-response='{shown[1]}'] input:checked"
    assert page.locator(checked).get_attribute("value") == "5"
    assert page.locator(".response.current").get_attribute("data-response") == str(shown[1])
