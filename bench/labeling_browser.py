"""Enter → next task visible, in Chromium, on the demo (SQLite, one labeler).

Starts the app the way the README does (`rlhf db upgrade`, `rlhf demo`, `rlhf serve`) on a
fresh SQLite file, signs in as a demo labeler, and on the demo ranking project ranks each task
by keyboard and presses Enter; the time from the key press to the next task's responses being
on screen is one sample: p50/p90 as the driver sees it (its key press and polling included),
and page_p50/page_p90 inside the page (the keydown event's time to the first frame painted
with the next task); request_p50 is the submit request's part of it (resource timing).
Prints a table and writes bench/results/labeling_browser.json.

    .venv/bin/python bench/labeling_browser.py --tasks 30
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import save, table  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
SHOWN = "() => JSON.parse(document.getElementById('task-config').textContent).assignment_id"
# In the page: the Enter keydown's timestamp, and the first frame painted after the next
# task's responses are in the document (what the labeler sees, without the driver's latency).
WATCH = """(before) => new Promise((resolve) => {
    let pressed = null;
    window.addEventListener("keydown", (e) => {
        if (e.key === "Enter" && pressed === null) pressed = e.timeStamp;
    }, { capture: true, once: true });
    const shown = () => {
        const c = document.getElementById("task-config");
        return c && JSON.parse(c.textContent).assignment_id !== before
            && document.querySelector("#responses .response");
    };
    const poll = () => {
        if (pressed !== null && shown()) {
            requestAnimationFrame((painted) => resolve(painted - pressed));
        } else {
            requestAnimationFrame(poll);
        }
    };
    requestAnimationFrame(poll);
    window.__shown = null;
}).then((ms) => { window.__shown = ms; })"""
# The submit's request, from the browser's resource timing: start to the last byte received.
FETCH = """() => {
    const e = performance.getEntriesByType("resource")
        .filter((e) => e.name.includes("/annotations")).pop();
    performance.clearResourceTimings();
    return e ? e.responseEnd - e.startTime : 0;
}"""


def rlhf(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", "from app.cli import main; main()", *args], env=env
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=30)
    parser.add_argument("--port", type=int, default=8117)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    env = os.environ | {
        "RLHF_DEV": "1",
        "RLHF_DATABASE_URL": f"sqlite:///{tmp / 'demo.db'}",
        "RLHF_ARTIFACTS_DIR": str(tmp / "artifacts"),
    }
    if rlhf(env, "db", "upgrade").wait() != 0:
        raise SystemExit("rlhf db upgrade failed")
    seeded = json.loads(
        subprocess.run(
            [sys.executable, "-c", "from app.cli import main; main()", "demo", "--json"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    project = next(p for p in seeded["projects"] if p["kind"] == "ranking")
    labeler = next(u for u in seeded["users"] if u["role"] == "labeler")
    server = rlhf(env, "serve", "--port", str(args.port))
    base = f"http://127.0.0.1:{args.port}"
    samples: list[float] = []
    in_page: list[float] = []
    fetches: list[float] = []
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"{base}/login", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        from playwright.sync_api import sync_playwright

        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
            )
            page = browser.new_page(base_url=base)
            page.goto("/login")
            page.fill("input[name=email]", labeler["email"])
            page.fill("input[name=password]", labeler["password"])
            page.click("button[type=submit]")
            page.wait_for_url("**/")
            page.goto(f"/projects/{project['id']}/label")
            for _ in range(args.tasks):
                if page.locator("#task-config").count() == 0:
                    break  # all done
                before = page.evaluate(SHOWN)
                for i in range(page.locator("#responses .response").count()):
                    page.keyboard.press(str(i + 1))
                page.evaluate(f"() => {{ ({WATCH})({before}); }}")
                started = time.perf_counter()
                page.keyboard.press("Enter")
                page.wait_for_function(
                    """(before) => {
                        const c = document.getElementById("task-config");
                        if (!c) return document.readyState === "complete";  // all done
                        return JSON.parse(c.textContent).assignment_id !== before
                            && document.querySelector("#responses .response");
                    }""",
                    arg=before,
                    polling="raf",
                )
                if page.locator("#task-config").count() == 0:
                    break  # the last task led to the "all done" page: not a sample
                samples.append((time.perf_counter() - started) * 1000)
                page.wait_for_function("() => window.__shown !== null")
                in_page.append(page.evaluate("() => window.__shown"))
                fetches.append(page.evaluate(FETCH))
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=15)
    samples.sort()
    in_page.sort()
    row = {
        "tasks": len(samples),
        "p50_ms": statistics.median(samples),
        "p90_ms": samples[int(0.9 * (len(samples) - 1))],
        "max_ms": samples[-1],
        "page_p50_ms": round(statistics.median(in_page), 1),
        "page_p90_ms": round(in_page[int(0.9 * (len(in_page) - 1))], 1),
        "request_p50_ms": round(statistics.median(fetches), 1),
    }
    print(table([row], list(row)))
    machine = {
        "cpus": os.cpu_count(),
        "load": os.getloadavg()[0],
        "python": platform.python_version(),
    }
    result = {"result": row, "samples_ms": samples, "page_samples_ms": in_page, **machine}
    print("written to", save("labeling_browser", result))


if __name__ == "__main__":
    main()
