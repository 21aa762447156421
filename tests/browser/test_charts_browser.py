"""Charts a new admin can read: ticks of at least 11 px however wide the page, a y axis from 0
for metrics that cannot be negative (and not for those that can), an α chart with an axis."""

from datetime import timedelta

import pytest

from tests.browser.axe import violations
from tests.browser.conftest import login
from tests.helpers import ranking_items

pytestmark = pytest.mark.browser

# The rendered size of every chart text (its font size times the SVG's scale on screen).
TEXT_SIZES = """(selector) => [...document.querySelectorAll(selector)].map((t) => ({
    text: t.textContent,
    px: parseFloat(getComputedStyle(t).fontSize) * t.getScreenCTM().a,
}))"""


def _run(live, kind: str, values) -> int:  # type: ignore[no-untyped-def]
    """A finished run of `kind` whose metric rows are values(step) for steps 1…12."""
    from app.base import utcnow
    from app.runs.models import RunMetric, TrainingRun

    with live.session() as session:
        start = utcnow() - timedelta(minutes=5)
        run = TrainingRun(
            kind=kind,
            status="succeeded",
            base_model="/models/base",
            attempt=1,
            started_at=start,
            finished_at=start + timedelta(minutes=2),
        )
        session.add(run)
        session.flush()
        session.add_all(RunMetric(run_id=run.id, step=s, values=values(s)) for s in range(1, 13))
        session.commit()
        return run.id


def _lowest_tick(page, metric: str) -> float:  # type: ignore[no-untyped-def]
    ticks = page.locator(f"#chart-{metric} svg text.tick").all_text_contents()
    return min(float(t) for t in ticks if not t.startswith("step"))


def _small_texts(page, selector: str) -> list[dict]:  # type: ignore[no-untyped-def]
    texts = page.evaluate(TEXT_SIZES, selector)
    assert texts, f"no chart text matches {selector}"
    return [t for t in texts if t["px"] < 11 - 1e-6]


def test_run_charts_start_at_zero_only_for_metrics_that_cannot_be_negative(page, live) -> None:
    rm = _run(
        live,
        "rm",
        lambda s: {
            "loss": 0.6 + s * 1e-3,
            "accuracy": 0.8 + s * 1e-3,
            "reward_margin": 0.5 + s / 100,
        },
    )
    ppo = _run(live, "ppo", lambda s: {"loss": 0.5 + s / 100, "kl": 0.2 + s / 100})
    login(page, live.user("admin"))
    page.goto(f"/admin/runs/{rm}")
    page.locator("#chart-reward_margin").wait_for()
    assert _lowest_tick(page, "loss") == 0 and _lowest_tick(page, "accuracy") == 0
    assert _lowest_tick(page, "reward_margin") >= 0.4  # can be negative: zoomed on its values
    assert violations(page) == []
    page.goto(f"/admin/runs/{ppo}")
    page.locator("#chart-kl").wait_for()
    assert _lowest_tick(page, "loss") >= 0.4  # PPO's loss has a policy-gradient term
    assert _lowest_tick(page, "kl") >= 0.1  # a sampled estimate: can be negative


@pytest.mark.parametrize("width", [1280, 760])
def test_chart_ticks_are_at_least_11_px_on_every_chart(page, live, width) -> None:
    from tests.quality import sim

    project = live.project(ranking_items(6, k=3), k=3, overlap=2)
    with live.session() as session:
        sim.work(session, project, sim.crew(session, ["careful"] * 2, prefix=f"w{width}-"))
    run = _run(live, "sft", lambda s: {"loss": 2.0 / s, "tokens_per_s": 123456.5 + s})
    page.set_viewport_size({"width": width, "height": 900})
    login(page, live.user("admin"))
    page.goto(f"/admin/runs/{run}")
    page.locator("#chart-tokens_per_s").wait_for()
    assert _small_texts(page, "#charts svg text") == []
    for path in ("/admin", f"/admin/projects/{project.id}"):
        page.goto(path)
        assert _small_texts(page, "svg.chart text") == [], path
    page.goto(f"/admin/projects/{project.id}/quality")
    assert _small_texts(page, ".alpha-chart text") == []
    ticks = page.locator(".alpha-chart .y-labels text.tick").all_text_contents()
    assert ticks[0] == "0" and ticks[-1] == "1"
    page.get_by_text("a line needs two").wait_for()  # every label was stored today
    assert violations(page) == []
    # the run's charts follow a narrower window, and keep their ticks' size
    page.goto(f"/admin/runs/{run}")
    page.locator("#chart-loss").wait_for()
    page.set_viewport_size({"width": 420, "height": 900})
    page.wait_for_function(  # every chart redrawn for the new width, not only the first
        "() => [...document.querySelectorAll('#charts svg')]"
        ".every(svg => svg.viewBox.baseVal.width <= 420)"
    )
    assert _small_texts(page, "#charts svg text") == []
