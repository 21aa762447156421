"""The labeling page in a browser: it fits the window from a phone (390 px) to a laptop
(1280 px) whatever the text holds, each flag names its response, and its icons load."""

import os
from pathlib import Path

import pytest

from tests.browser.axe import violations
from tests.browser.conftest import login, open_task, submit_and_wait
from tests.helpers import ranking_items, row_id

pytestmark = pytest.mark.browser

WORD = "Pneumonoultramicroscopicsilicovolcanoconiosis" * 6
URL = "https://example.com/search?q=" + "longquery" * 50 + "&page=2"
CODE = "```python\nresult = compute(" + ", ".join(f"argument_{i}" for i in range(80)) + ")\n```"
WIDE = [
    f"One word: {WORD}. The end.",
    f"See {URL} for the details.",
    f"Run this:\n\n{CODE}\n\nand it works.",
    f"All at once: `{WORD}` {URL}\n\n{CODE}\n\n    indented = '{WORD}'",
]
PROMPT = [
    {"role": "user", "content": f"Read {URL}"},
    {"role": "assistant", "content": f"It says:\n\n{CODE}"},
    {"role": "user", "content": f"And {WORD}?"},
]
SIZES = [(390, 844), (1024, 768), (1280, 900)]
SHOTS = os.environ.get("RLHF_SCREENSHOT_DIR")
"""Set to a folder to keep a screenshot of each page at each width (to look at the layout)."""

FITS = """() => ({
    page: document.documentElement.scrollWidth,
    window: window.innerWidth,
})"""

IN_VIEW = """() => {
    const button = document.getElementById("submit-button");
    const box = button.getBoundingClientRect();
    const x = box.left + box.width / 2, y = box.top + box.height / 2;
    return {
        inside: box.left >= 0 && box.top >= 0
            && box.right <= window.innerWidth && box.bottom <= window.innerHeight,
        onTop: button.contains(document.elementFromPoint(x, y)),
    };
}"""


def _check_fits(page, what: str) -> None:  # type: ignore[no-untyped-def]
    widths = page.evaluate(FITS)
    assert widths["page"] <= widths["window"], f"{what}: the page scrolls sideways ({widths})"


def _check_submit_in_view(page, what: str) -> None:  # type: ignore[no-untyped-def]
    """Submit is on screen wherever the labeler looks at the work: at the work's top (the
    sticky action bar holds it) and at the very end of the page."""
    for where in ("document.querySelector('.work').scrollIntoView()", "window.scrollTo(0, 1e9)"):
        page.evaluate(f"() => {{ {where}; }}")
        assert page.evaluate(IN_VIEW) == {"inside": True, "onTop": True}, f"{what} ({where})"


def _shoot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.evaluate("() => window.scrollTo(0, 0)")
        page.screenshot(path=Path(SHOTS) / f"{name}-top.png")
        page.evaluate("() => document.querySelector('.work').scrollIntoView()")
        page.screenshot(path=Path(SHOTS) / f"{name}-work.png")


@pytest.fixture(scope="module")
def projects(live):  # type: ignore[no-untyped-def]
    def items(prefix: str, k: int) -> list[dict]:
        responses = [{"text": text} for text in WIDE[:k]]
        return [
            {"id": f"{prefix}{i}", "messages": PROMPT, "responses": responses} for i in range(3)
        ]

    criteria = ["hallucination", "unsafe", "off topic"]
    instructions = f"Rank them. Background: {URL}\n\n{CODE}"
    return {
        "ranking": live.project(items("r", 4), k=4, criteria=criteria, instructions=instructions),
        "rating": live.project(
            items("s", 2), kind="rating", k=2, rating_scale="0-5", criteria=criteria
        ),
        "demonstration": live.project(
            [{"id": f"d{i}", "messages": PROMPT} for i in range(3)], kind="demonstration", k=1
        ),
    }


FILL = {"ranking": ["1", "2", "3", "4"], "rating": ["5", "0"]}


@pytest.mark.parametrize(("width", "height"), SIZES)
@pytest.mark.parametrize("kind", ["ranking", "rating", "demonstration"])
def test_the_page_fits_the_window_and_submit_stays_in_view(
    page, live, projects, kind, width, height
) -> None:
    page.set_viewport_size({"width": width, "height": height})
    login(page, live.user())
    open_task(page, projects[kind])
    _check_fits(page, f"{kind} at {width} px, as it opens")
    if kind == "demonstration":
        page.fill("textarea[data-turn='0']", f"{WORD} {URL}")
        page.keyboard.press("Escape")
    for key in FILL.get(kind, []):
        page.keyboard.press(key)
    if kind == "ranking":
        assert page.locator(".slot.filled").count() == 4
    _shoot(page, f"{kind}-{width}")
    _check_fits(page, f"{kind} at {width} px, filled")
    _check_submit_in_view(page, f"{kind} at {width} px")
    page.keyboard.press("s")  # the skip panel open
    _check_fits(page, f"{kind} at {width} px, skip panel open")
    _shoot(page, f"{kind}-{width}-skip")
    page.keyboard.press("Escape")
    assert violations(page) == []


def test_each_flag_and_question_names_its_response(page, live) -> None:
    questions = [{"name": "honest", "type": "yes_no", "title": "Honest?"}]
    project = live.project(
        ranking_items(1, k=3), k=3, criteria=["hallucination", "unsafe"], questions=questions
    )
    login(page, live.user())
    shown = open_task(page, project)
    for number, response in enumerate(shown, start=1):
        box = page.get_by_role("checkbox", name=f"hallucination, response {number}", exact=True)
        assert box.get_attribute("data-response") == str(response)
        group = page.get_by_role("group", name=f"Flags for response {number}", exact=True)
        assert group.get_by_role("checkbox").count() == 2
        question = page.get_by_role(
            "group", name=f"Honest? for response {number} (required)", exact=True
        )
        assert question.get_attribute("data-response") == str(response)
    assert violations(page) == []
    # The name is the one a screen reader reads out: ticking it by name flags that response.
    page.get_by_role("checkbox", name="unsafe, response 2", exact=True).check()
    for key in ("1", "2", "3"):
        page.keyboard.press(key)
    for number in range(1, 4):
        page.get_by_role("group", name=f"Honest? for response {number} (required)").get_by_text(
            "Yes"
        ).click()
    submit_and_wait(page)
    [annotation] = live.annotations(project.id)
    assert annotation.flags == {str(row_id("response", shown[1])): ["unsafe"]}


def test_the_icons_load_and_no_request_fails(page, live) -> None:
    failed: list[str] = []
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else 0)
    project = live.project(ranking_items(1, k=2), k=2)
    login(page, live.user())
    open_task(page, project)
    page.goto("/favicon.ico")  # what a browser fetches on its own, on any page
    page.go_back()
    icons = page.eval_on_selector_all("link[rel=icon]", "links => links.map(l => l.href)")
    assert {url.removeprefix(live.base) for url in icons} == {"/favicon.ico", "/static/favicon.svg"}
    for url in icons:  # each decodes as an image in the browser
        size = page.evaluate(
            """(url) => new Promise((done) => {
                const image = new Image();
                image.onload = () => done([image.naturalWidth, image.naturalHeight]);
                image.onerror = () => done(null);
                image.src = url;
            })""",
            url,
        )
        assert size is not None and size[0] > 0 and size[1] > 0, url
    assert failed == []
