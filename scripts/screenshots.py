"""Seed the demo in a temporary SQLite database, serve it, and save PNGs of the main pages.

make screenshots     # writes docs/screenshots/*.png
"""

import json
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.browser.live import CHROMIUM, CHROMIUM_ARGS, live_server, rlhf  # noqa: E402

OUT = ROOT / "docs" / "screenshots"
LABELER = ("ada@example.com", "labeler-demo-pass")
ADMIN = ("admin@example.com", "admin-demo-pass")


def login(page: Page, base: str, email: str, password: str) -> None:
    page.goto(f"{base}/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    with page.expect_navigation():
        page.click("button[type=submit]")


def open_project(page: Page, base: str, name: str) -> None:
    page.goto(f"{base}/")
    page.locator(".project-card", has_text=name).locator("a.button").click()
    page.wait_for_selector("#task")


def submit_and_wait(page: Page) -> None:
    with page.expect_navigation():
        page.keyboard.press("Enter")
    page.wait_for_selector("#task")


def shoot(page: Page, name: str) -> None:
    page.mouse.move(0, 0)
    page.screenshot(path=OUT / f"{name}.png")
    print(f"saved docs/screenshots/{name}.png")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rlhf-shots-") as tmp:
        url = f"sqlite:///{tmp}/demo.db"
        rlhf(url, "db", "upgrade")
        rlhf(url, "demo")
        with live_server(url, Path(tmp) / "server.log") as base, sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
            )
            page = browser.new_page(viewport={"width": 1440, "height": 960})
            login(page, base, *LABELER)
            shoot(page, "home")

            open_project(page, base, "rank answers")
            for keys in ("2", "1", "4", "3"), ("1", "3", "2", "4"):  # two rankings for the chart
                for key in keys:
                    page.keyboard.press(key)
                submit_and_wait(page)
            page.keyboard.press("3")
            page.keyboard.press("1")
            page.locator("input[data-flag][value=hallucination]").nth(1).check()
            shoot(page, "ranking")

            open_project(page, base, "rate answers")
            for key in ("4", "1"):
                page.keyboard.press(key)
            submit_and_wait(page)
            page.keyboard.press("5")
            shoot(page, "rating")

            open_project(page, base, "write answers")
            for _ in range(3):  # a conversation prompt makes the better picture
                if page.locator(".prompt .message").count() > 1:
                    break
                page.click("#skip-button")
                with page.expect_navigation():
                    page.click("#skip-confirm")
            page.fill("textarea[data-turn='0']", "Here is a gentle way to start:\n\n1. ...")
            page.click("#add-turn")
            page.fill("textarea[data-turn='1']", "Thanks! And what should I cook first?")
            page.fill("textarea[data-turn='2']", "Start with a simple tomato pasta: …")
            shoot(page, "demonstration")

            page.context.clear_cookies()
            login(page, base, *ADMIN)
            page.goto(f"{base}/admin")
            shoot(page, "admin-dashboard")
            page.goto(f"{base}/admin/annotations")
            shoot(page, "admin-annotations")
            admin_pages(page, base, url)
            browser.close()


def admin_pages(page: Page, base: str, url: str) -> None:
    """Prompts, leaderboard, snapshots, and a short reward-model run with its lineage."""
    page.goto(f"{base}/admin")
    page.get_by_role("link", name="Demo · rank answers").click()
    project = page.url.rstrip("/").rsplit("/", 1)[1]
    page.goto(f"{base}/admin/projects/{project}/prompts")
    shoot(page, "admin-prompts")
    page.goto(f"{base}/admin/projects/{project}/leaderboard")
    shoot(page, "admin-leaderboard")
    page.goto(f"{base}/admin/projects/{project}/snapshots")
    page.select_option("select[name=kind]", "rankings")
    with page.expect_navigation():
        page.get_by_role("button", name="Make snapshot").click()
    shoot(page, "admin-snapshots")
    snapshot = json.loads(rlhf(url, "snapshots", project, "--kind", "rankings", "--json"))[0]
    started = rlhf(
        url, "runs", "start", "--kind", "rm", "--snapshot", str(snapshot["id"]),
        "--model", "tiny-encoder", "--set", "max_steps=20", "--json",
    )  # fmt: skip
    run = json.loads(started)["id"]
    rlhf(url, "worker", "--once")
    page.goto(f"{base}/admin/runs/{run}")
    page.wait_for_selector("#chart-loss path.line")
    page.wait_for_timeout(500)
    shoot(page, "admin-run")
    page.goto(f"{base}/admin/runs")
    shoot(page, "admin-runs")
    model = json.loads(rlhf(url, "runs", "show", str(run), "--json"))["output_model_id"]
    page.goto(f"{base}/admin/models/{model}")
    shoot(page, "admin-lineage")


if __name__ == "__main__":
    main()
