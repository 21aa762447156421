"""From a policy's page an admin starts the next round; the worker generates its candidates;
a labeler ranks them blind; the registry leaderboard rates the two versions."""

import re
import subprocess
import sys

import pytest
from sqlalchemy import select

from app.projects.models import Project
from tests.browser.conftest import login, open_task, submit_and_wait
from tests.browser.live import server_env

pytestmark = pytest.mark.browser


def test_next_round_from_the_model_page_to_the_leaderboard(page, live, monkeypatch) -> None:
    from app.config import get_settings
    from app.runs import registry
    from trainer.tiny import build_tiny_causal_lm

    artifacts = live.tmp / "artifacts"
    monkeypatch.setenv("RLHF_ARTIFACTS_DIR", str(artifacts))
    get_settings.cache_clear()
    base_dir = build_tiny_causal_lm(live.tmp / "gen-base")
    new_dir = build_tiny_causal_lm(live.tmp / "gen-new", hidden_size=48)
    admin, labeler = live.user("admin"), live.user("labeler")
    source = live.project([{"id": f"q{i}", "prompt": f"tell me about {i} cats"} for i in range(3)])
    with live.session() as session:
        base = registry.register_model(
            session=session, name="browser-base", kind="policy", path=str(base_dir)
        )
        new = registry.register_model(
            session=session,
            name="browser-new",
            kind="policy",
            path=str(new_dir),
            base_model_id=base.id,
        )
        session.commit()

    login(page, admin)
    page.goto(f"/admin/models/{new.id}")
    form = page.locator("#next-round")
    assert form.locator(f"input[name=compare_with][value='{base.id}']").is_checked()
    form.locator("input[name=name]").fill("browser round")
    form.locator("select[name=source]").select_option(f"project:{source.id}")
    form.locator("input[name=max_new_tokens]").fill("8")
    form.get_by_role("button", name="Create the round and generate").click()
    page.wait_for_url(re.compile(r"/admin/runs/\d+"))
    assert page.locator("#status").inner_text() == "queued"

    env = server_env(str(live.engine.url)) | {"RLHF_ARTIFACTS_DIR": str(artifacts)}
    worker = subprocess.Popen(
        [sys.executable, "-m", "app", "worker", "--once"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        page.get_by_text("succeeded").first.wait_for(timeout=120_000)
    finally:
        worker.wait(timeout=120)
    page.reload()
    assert page.locator("#generated").inner_text().startswith("6 of 6")

    # A labeler ranks the three prompts, blind: no model name anywhere on the page.
    with live.session() as session:
        round_project = session.scalar(select(Project).where(Project.name == "browser round"))
    page.context.clear_cookies()
    login(page, labeler)
    for _ in range(3):
        shown = open_task(page, round_project)
        assert len(shown) == 2
        assert "browser-new" not in page.content() and "browser-base" not in page.content()
        page.keyboard.press("1")
        page.keyboard.press("2")
        submit_and_wait(page)
    assert page.get_by_text("All done here").is_visible()

    page.context.clear_cookies()
    login(page, admin)
    page.goto("/admin/models")
    page.get_by_role("link", name="Human preference leaderboard").click()
    rows = page.locator("#registry-leaderboard tbody tr")
    assert rows.count() == 2
    text = page.locator("#registry-leaderboard").inner_text()
    assert "of 3 against browser-base" in text
