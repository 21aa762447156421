"""Suggestions on the labeling page: `prefilled` starts the widget from the judge's answer
(the labeler may change it), `shown` shows it beside an answer that starts empty."""

import pytest

from tests.browser.axe import violations
from tests.browser.conftest import login, open_task, submit_and_wait
from tests.helpers import as_shown, prompts_of, ranking_items
from tests.quality import judges

pytestmark = pytest.mark.browser


def _judged(live, payload_of, **fields):  # type: ignore[no-untyped-def]
    """A one-prompt project whose prompt a judge labeled (`payload_of(response ids)`)."""
    project = live.project(ranking_items(1, k=fields.pop("k", 3)), k=3, **fields)
    with live.session() as session:
        judge = judges.judge_user(session, f"tiny-{project.id}")
        ((prompt_id, rids),) = prompts_of(session, project)
        judges.add_label(session, project, judge, prompt_id, rids, payload_of(rids))
    return project, rids


def test_prefilled_starts_the_ranking_from_the_suggestion(page, live) -> None:
    project, rids = _judged(
        live, lambda r: {"ranking": [r[2], [r[0], r[1]]]}, suggestions="prefilled"
    )
    login(page, live.user())
    shown = open_task(page, project)
    suggested = page.evaluate(
        "() => JSON.parse(document.getElementById('task-config').textContent).suggestion"
    )
    assert suggested["mode"] == "prefilled"
    assert page.locator("#suggestion").is_visible()
    assert violations(page) == []
    assert page.locator(".slot.filled").count() == 3  # started from the suggestion
    assert page.locator(".slot.tied").count() == 1
    # the labeler changes it: the last slot is undone and placed again, untied
    page.keyboard.press("Backspace")
    last = suggested["ranking"][1][1]
    page.keyboard.press(str(shown.index(last) + 1))
    submit_and_wait(page)
    [annotation] = _mine(live, project)
    first = suggested["ranking"][0]
    assert as_shown(annotation)["ranking"] == [first, suggested["ranking"][1][0], last]


def test_prefilled_ratings_start_from_the_suggestion(page, live) -> None:
    project, rids = _judged(
        live,
        lambda r: {"scores": {str(r[0]): 5, str(r[1]): 2, str(r[2]): 0}},
        kind="rating",
        rating_scale="0-5",
        suggestions="prefilled",
    )
    login(page, live.user())
    open_task(page, project)
    suggested = page.evaluate(
        "() => JSON.parse(document.getElementById('task-config').textContent).suggestion"
    )
    assert page.locator(".response.scored").count() == 3
    for rid, value in suggested["scores"].items():
        button = page.locator(f".response[data-response='{rid}'] [data-score='{value}']")
        assert button.get_attribute("aria-pressed") == "true"
    submit_and_wait(page)  # submit is unchanged: the prefilled scores are the answer
    [annotation] = _mine(live, project)
    assert as_shown(annotation)["scores"] == suggested["scores"]


def test_shown_displays_the_suggestion_and_leaves_the_answer_empty(page, live) -> None:
    project, rids = _judged(live, lambda r: {"ranking": [r[1], r[0], r[2]]}, suggestions="shown")
    login(page, live.user())
    shown = open_task(page, project)
    card = page.locator("#suggestion")
    assert card.is_visible() and card.get_attribute("data-mode") == "shown"
    assert violations(page) == []
    numbers = [shown.index(r) + 1 for r in _public([rids[1], rids[0], rids[2]])]
    items = page.locator("#suggested-ranking li")
    assert [items.nth(i).inner_text() for i in range(3)] == [f"Response {n}" for n in numbers]
    assert page.locator(".slot.filled").count() == 0  # the answer is the labeler's own
    for key in ("3", "2", "1"):
        page.keyboard.press(key)
    submit_and_wait(page)
    [annotation] = _mine(live, project)
    assert as_shown(annotation)["ranking"] == [shown[2], shown[1], shown[0]]
    page_text = page.content()
    assert "judge" not in page_text and "tiny" not in page_text


def _public(rids):  # type: ignore[no-untyped-def]
    from tests.helpers import public_id

    return [public_id("response", r) for r in rids]


def _mine(live, project):  # type: ignore[no-untyped-def]
    """The labeler's annotations (the judge's is there too)."""
    return [a for a in live.annotations(project.id) if a.source == "labeler"]
