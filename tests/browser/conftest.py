"""Browser fixtures: one uvicorn server and one Chromium for the whole session.

Without /usr/bin/chromium the browser tests are skipped, unless RLHF_REQUIRE_BROWSER=1
(CI) turns the skip into a failure.
"""

import itertools
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from tests.browser.live import CHROMIUM, CHROMIUM_ARGS, live_server

PASSWORD = "correct-horse-battery"
_count = itertools.count(1)


def _unavailable(reason: str) -> None:
    if os.environ.get("RLHF_REQUIRE_BROWSER") == "1":
        pytest.fail(f"RLHF_REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason)


@dataclass
class Live:
    """The running server and a way to arrange and inspect its database."""

    base: str
    engine: Engine
    tmp: Path

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    def user(self, role: str = "labeler") -> Any:
        from app.auth import service

        with self.session() as session:
            user = service.create_user(
                session=session,
                email=f"{role}{next(_count)}@browser.test",
                role=role,
                password=PASSWORD,
            )
            session.commit()
            return user

    def project(self, items: list[dict], **fields: Any) -> Any:
        from app.projects import importer, service
        from app.projects.schemas import ProjectCreate

        fields.setdefault("name", f"browser project {next(_count)}")
        fields.setdefault("kind", "ranking")
        path = self.tmp / f"items-{next(_count)}.jsonl"
        path.write_text("".join(json.dumps(item) + "\n" for item in items))
        with self.session() as session:
            project = service.create(session=session, data=ProjectCreate(**fields))
            session.commit()
            importer.import_file(session=session, project=project, path=path)
            return project

    def annotations(self, project_id: int) -> list[Any]:
        from app.labeling.models import Annotation

        with self.session() as session:
            query = select(Annotation).where(Annotation.project_id == project_id)
            return list(session.scalars(query.order_by(Annotation.id)))

    def assignments(self, project_id: int) -> list[Any]:
        from app.labeling.models import Assignment

        with self.session() as session:
            query = select(Assignment).where(Assignment.project_id == project_id)
            return list(session.scalars(query.order_by(Assignment.id)))


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    from app.db import make_engine

    tmp = tmp_path_factory.mktemp("browser")
    url = f"sqlite:///{tmp / 'browser.db'}"
    with live_server(url, tmp / "server.log") as base:
        engine = make_engine(url, sqlite_immediate=False)
        yield Live(base=base, engine=engine, tmp=tmp)
        engine.dispose()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        _unavailable(f"{CHROMIUM} is not installed")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any, live: Live) -> Iterator[Any]:
    """A fresh browser context (no cookies, no localStorage) on the live server."""
    context = browser.new_context(base_url=live.base, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.dialogs = []
    page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
    yield page
    context.close()


def login(page: Any, user: Any) -> None:
    page.goto("/login")
    page.fill("input[name=email]", user.email)
    page.fill("input[name=password]", PASSWORD)
    with page.expect_navigation():
        page.click("button[type=submit]")
    assert "/login" not in page.url, "the sign-in failed"


def open_task(page: Any, project: Any) -> list[int]:
    """Open the labeling page; returns the response ids in the order shown."""
    page.goto(f"/projects/{project.id}/label")
    page.wait_for_selector("#task")
    cards = page.locator("#responses .response")
    return [int(cards.nth(i).get_attribute("data-response")) for i in range(cards.count())]


SHOWN = """() => {
    const config = document.getElementById("task-config");
    return config ? JSON.parse(config.textContent).assignment_id : null;
}"""


def submit_and_wait(page: Any, key: str = "Enter") -> None:
    """Submit with `key` and wait for the next task (swapped in) or the page that follows."""
    before = page.evaluate(SHOWN)
    page.keyboard.press(key)
    page.wait_for_function(
        """(before) => {
            const config = document.getElementById("task-config");
            if (!config) return document.readyState === "complete";
            return JSON.parse(config.textContent).assignment_id !== before;
        }""",
        arg=before,
    )
