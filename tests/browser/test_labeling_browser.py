"""Labeling in a real browser: keyboard, drag and drop, drafts, retries, untrusted text."""

from datetime import timedelta

import pytest
from sqlalchemy import select

from tests.browser.conftest import login, open_task, submit_and_wait
from tests.helpers import as_shown, public_id, ranking_items, row_id

pytestmark = pytest.mark.browser

CRITERIA = ["hallucination", "unsafe"]


def test_login_and_logout(page, live) -> None:
    labeler = live.user()
    page.goto("/")
    page.wait_for_url("**/login?next=/")
    page.fill("input[name=email]", labeler.email)
    page.fill("input[name=password]", "wrong password")
    page.click("button[type=submit]")
    assert page.get_by_role("alert").inner_text() == "Wrong email or password."
    login(page, labeler)
    assert page.locator("h1").inner_text() == "Your projects"
    page.click("text=Log out")
    page.wait_for_url("**/login")
    page.goto("/")
    assert "/login" in page.url


def test_ranking_by_keyboard_with_undo_and_flags(page, live) -> None:
    project = live.project(ranking_items(2, k=4), k=4, criteria=CRITERIA)
    login(page, live.user())
    shown = open_task(page, project)
    assert page.locator("#position").inner_text() == "0 done · 2 remaining"
    for key in ("3", "1", "2", "Backspace", "4", "2"):
        page.keyboard.press(key)
    assert page.locator(".slot.filled").count() == 4
    assert page.locator(".slot").first.inner_text().startswith("1\n3")  # slot 1 holds response 3
    page.locator(f"input[data-flag][data-response='{shown[1]}'][value=unsafe]").check()
    submit_and_wait(page)
    assert page.locator("#position").inner_text() == "1 done · 1 remaining"  # the next task
    [annotation] = live.annotations(project.id)
    assert as_shown(annotation)["ranking"] == [shown[2], shown[0], shown[3], shown[1]]
    assert annotation.flags == {str(row_id("response", shown[1])): ["unsafe"]}
    assert annotation.duration_ms is not None and annotation.duration_ms > 0


def test_submit_shows_the_next_task_in_the_same_page(page, live) -> None:
    project = live.project(ranking_items(3, k=3), k=3)
    login(page, live.user())
    open_task(page, project)
    page.evaluate("() => { window.sameDocument = true; }")
    loads = page.evaluate("() => performance.getEntriesByType('navigation').length")
    for key in ("1", "2", "3"):
        page.keyboard.press(key)
    submit_and_wait(page)
    assert page.evaluate("() => window.sameDocument") is True  # no page load
    assert page.evaluate("() => performance.getEntriesByType('navigation').length") == loads
    assert page.locator("#position").inner_text() == "1 done · 2 remaining"
    assert page.locator(".slot.filled").count() == 0
    assert page.title().startswith(project.name)
    page.keyboard.press("2")  # the keyboard drives the new task, once per key press
    assert page.locator(".slot.filled").count() == 1
    for key in ("1", "3"):
        page.keyboard.press(key)
    submit_and_wait(page)
    assert page.evaluate("() => window.sameDocument") is True
    assert page.locator("#position").inner_text() == "2 done · 1 remaining"
    annotations = live.annotations(project.id)
    assert len(annotations) == 2 and len({a.prompt_id for a in annotations}) == 2


def test_ranking_by_drag_and_drop(page, live) -> None:
    project = live.project(ranking_items(1, k=3), k=3)
    login(page, live.user())
    shown = open_task(page, project)
    cards = page.locator("#responses .response")
    slots = page.locator("#slots .slot")
    page.drag_and_drop(f"[data-response='{shown[1]}']", ".slot[data-rank='0']")
    page.drag_and_drop(f".response[data-response='{shown[2]}']", ".slot[data-rank='1']")
    page.drag_and_drop(f".response[data-response='{shown[0]}']", ".slot[data-rank='2']")
    # Reorder inside the slots: the chip in slot 3 moves to the top.
    page.drag_and_drop(".slot[data-rank='2'] .chip", ".slot[data-rank='0']")
    assert slots.count() == 3 and cards.count() == 3
    submit_and_wait(page)
    assert page.get_by_text("All done here").is_visible()
    [annotation] = live.annotations(project.id)
    assert as_shown(annotation)["ranking"] == [shown[0], shown[1], shown[2]]


@pytest.mark.parametrize(
    ("scale", "keys", "expected"),
    [("thumbs", ["u", "d"], [1, -1]), ("0-5", ["5", "0"], [5, 0])],
)
def test_rating_by_keys(page, live, scale, keys, expected) -> None:
    project = live.project(ranking_items(1, k=2), kind="rating", k=2, rating_scale=scale)
    login(page, live.user())
    shown = open_task(page, project)
    page.keyboard.press("Enter")  # nothing scored yet: refused with a message, nothing sent
    assert "Score every response first (2 left)" in page.locator("#status").inner_text()
    for key in keys:
        page.keyboard.press(key)
    submit_and_wait(page)
    [annotation] = live.annotations(project.id)
    assert as_shown(annotation)["scores"] == {
        str(r): v for r, v in zip(shown, expected, strict=True)
    }


def test_multi_turn_demonstration(page, live) -> None:
    project = live.project([{"id": "d1", "prompt": "Plan my week"}], kind="demonstration", k=1)
    login(page, live.user())
    open_task(page, project)
    page.fill("textarea[data-turn='0']", "What matters most this week?")
    page.click("#add-turn")
    page.fill("textarea[data-turn='1']", "Finishing my thesis chapter.")
    page.fill("textarea[data-turn='2']", "Then block two mornings for it.")
    submit_and_wait(page, "Control+Enter")
    [annotation] = live.annotations(project.id)
    assert as_shown(annotation)["demonstration"] == [
        {"role": "assistant", "content": "What matters most this week?"},
        {"role": "user", "content": "Finishing my thesis chapter."},
        {"role": "assistant", "content": "Then block two mornings for it."},
    ]


def test_skip_with_a_reason(page, live) -> None:
    project = live.project(ranking_items(2, k=2), k=2)
    login(page, live.user())
    open_task(page, project)
    page.keyboard.press("s")
    assert page.locator("#skip-panel").is_visible()
    page.keyboard.press("2")
    submit_and_wait(page)
    skipped = live.assignments(project.id)[0]
    assert skipped.status == "skipped"
    assert skipped.skip_reason == "The prompt is broken or unclear"
    assert page.locator("#position").inner_text() == "0 done · 1 remaining"  # a skip is not done


def test_draft_survives_a_reload_and_is_cleared_on_submit(page, live) -> None:
    project = live.project([{"id": "d1", "prompt": "hello"}], kind="demonstration", k=1)
    login(page, live.user())
    open_task(page, project)
    page.fill("textarea[data-turn='0']", "A careful answer")
    page.reload()
    assert page.locator("textarea[data-turn='0']").input_value() == "A careful answer"
    key = f"rlhf-draft-{public_id('assignment', live.assignments(project.id)[0].id)}"
    assert page.evaluate(f"localStorage.getItem('{key}') !== null")
    submit_and_wait(page, "Control+Enter")
    assert page.evaluate(f"localStorage.getItem('{key}')") is None


def test_a_retried_submit_stores_one_annotation(page, live) -> None:
    """The first answer is lost on the way back; the retry replays it under the same key."""
    project = live.project(ranking_items(2, k=2), k=2)
    login(page, live.user())
    open_task(page, project)
    keys: list[str] = []

    def lose_the_first_answer(route) -> None:  # type: ignore[no-untyped-def]
        keys.append(route.request.headers["idempotency-key"])
        if len(keys) == 1:
            route.fetch()  # the server stores it …
            route.abort()  # … but the browser never hears back
        else:
            route.continue_()

    page.route("**/annotations*", lose_the_first_answer)
    page.keyboard.press("1")
    page.keyboard.press("2")
    page.keyboard.press("Enter")
    page.locator("#status").get_by_text("Could not reach the server").wait_for()
    page.dblclick("#submit-button")
    page.wait_for_selector("#position >> text=1 done · 1 remaining")
    assert len(set(keys)) == 1 and len(keys) >= 2
    assert len(live.annotations(project.id)) == 1


def test_an_expired_lease_says_so_and_keeps_the_text(page, live) -> None:
    from app.labeling import service
    from app.labeling.models import Assignment
    from app.projects import service as project_service

    project = live.project([{"id": "d1", "prompt": "hi"}], kind="demonstration", k=1)
    login(page, live.user())
    open_task(page, project)
    page.fill("textarea[data-turn='0']", "Words I must not lose")
    other = live.user()
    with live.session() as session:  # the lease runs out and another labeler takes the prompt
        lease = session.scalars(select(Assignment).where(Assignment.project_id == project.id)).one()
        lease.expires_at -= timedelta(hours=2)
        session.commit()
        fresh = project_service.get(session=session, project_id=project.id)
        assert service.next_task(session=session, project=fresh, user=other) is not None
    page.keyboard.press("Control+Enter")
    status = page.locator("#status")
    status.get_by_text("expired").wait_for()
    assert "lease" in status.inner_text() and page.locator("#status-next").is_visible()
    assert page.locator("textarea[data-turn='0']").input_value() == "Words I must not lose"
    assert live.annotations(project.id) == []


def test_a_lease_an_admin_released_says_so_and_keeps_the_text(page, live) -> None:
    from app.labeling.models import Assignment
    from app.projects import service as project_service
    from app.prompts import service as prompts_service

    project = live.project([{"id": "d1", "prompt": "hi"}], kind="demonstration", k=1)
    login(page, live.user())
    open_task(page, project)
    page.fill("textarea[data-turn='0']", "Words I must not lose")
    admin = live.user("admin")
    with live.session() as session:  # the admin takes the prompt back; its slot stays free
        lease = session.scalars(select(Assignment).where(Assignment.project_id == project.id)).one()
        fresh = project_service.get(session=session, project_id=project.id)
        prompts_service.release_lease(
            session=session, project=fresh, assignment_id=lease.id, by=admin
        )
        session.commit()
    page.keyboard.press("Control+Enter")
    status = page.locator("#status")
    status.get_by_text("released by an admin").wait_for()
    assert "not stored" in status.inner_text() and page.locator("#status-next").is_visible()
    assert page.locator("textarea[data-turn='0']").input_value() == "Words I must not lose"
    assert live.annotations(project.id) == []


PAYLOADS = [
    "<script>window.__pwned = 1</script>",
    '<img src=x onerror="window.__pwned = 1; alert(1)">',
    "**bold** and\n\n```python\nprint('<b>code</b>')\n```",
]


def test_untrusted_text_renders_inert(page, live) -> None:
    item = {
        "id": "xss",
        "prompt": PAYLOADS[1] + " <svg onload=alert(2)>",
        "responses": [{"text": text} for text in PAYLOADS],
    }
    project = live.project([item], k=3, instructions="<script>alert(3)</script> *be careful*")
    login(page, live.user())
    open_task(page, project)
    for key in ("1", "2", "3"):  # the slots show excerpts of the responses too
        page.keyboard.press(key)
    assert page.evaluate("window.__pwned") is None
    assert page.dialogs == []
    active = "main img, main svg:not(.chart), main script:not(#task-config), main iframe"
    assert page.locator(active).count() == 0
    assert page.get_by_text("<script>window.__pwned = 1</script>").count() >= 1
    assert page.locator(".md strong", has_text="bold").count() == 1
    assert page.locator(".md pre code").inner_text() == "print('<b>code</b>')\n"
    submit_and_wait(page)
    assert page.evaluate("window.__pwned") is None and page.dialogs == []


def _open_leases(live, project) -> int:  # type: ignore[no-untyped-def]
    from app.base import utcnow

    now = utcnow()
    return sum(
        1 for a in live.assignments(project.id) if a.status == "leased" and a.expires_at > now
    )


def test_the_next_task_is_held_ready_and_given_back_when_the_page_is_left(page, live) -> None:
    import time

    project = live.project(ranking_items(3, k=2), k=2)
    login(page, live.user())
    open_task(page, project)
    deadline = time.monotonic() + 10
    while _open_leases(live, project) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _open_leases(live, project) == 2  # the current task and the one held ready
    page.keyboard.press("1")
    page.keyboard.press("2")
    submit_and_wait(page)  # the held task shows, and the page holds the one after it
    assert page.locator("#position").inner_text().startswith("1 done")
    while _open_leases(live, project) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _open_leases(live, project) == 2
    page.goto("/")  # leaving the page gives the held task back
    while _open_leases(live, project) > 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _open_leases(live, project) == 1
