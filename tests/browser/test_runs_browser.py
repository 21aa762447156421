"""An admin starts a training run from the dashboard and watches its chart fill in."""

import re
import subprocess
import sys

import pytest

from tests.browser.conftest import login
from tests.browser.live import server_env

pytestmark = pytest.mark.browser


def test_admin_starts_a_run_and_sees_the_chart_update(page, live, monkeypatch) -> None:
    from app.config import get_settings
    from app.datasets import service as datasets_service
    from app.datasets.schemas import SnapshotCreate
    from app.labeling import service as labeling_service
    from app.labeling.schemas import AnnotationIn
    from trainer.tiny import build_tiny_causal_lm

    artifacts = live.tmp / "artifacts"
    monkeypatch.setenv("RLHF_ARTIFACTS_DIR", str(artifacts))
    get_settings.cache_clear()
    model = build_tiny_causal_lm(live.tmp / "tiny-lm")
    admin, labeler = live.user("admin"), live.user("labeler")
    project = live.project(
        [{"id": f"p{i}", "prompt": f"greet {i}"} for i in range(12)], kind="demonstration", k=1
    )
    with live.session() as session:
        while task := labeling_service.next_task(session=session, project=project, user=labeler):
            labeling_service.submit(
                session=session,
                assignment_id=task.assignment_id,
                user=labeler,
                body=AnnotationIn(demonstration="Hello!"),
            )
        snapshot, _ = datasets_service.create_snapshot(
            session=session, project=project, data=SnapshotCreate(kind="sft")
        )

    login(page, admin)
    page.click("text=Runs")
    page.click("text=+ Start a run")
    page.select_option("select[name=snapshot_id]", str(snapshot.id))
    page.select_option("select[name=kind]", "sft")
    page.fill("input[name=model]", str(model))
    page.fill("input[name=max_steps]", "12")
    page.fill("input[name=batch_size]", "4")
    page.get_by_role("button", name="Train").click()
    page.wait_for_url(re.compile(r"/admin/runs/\d+$"))
    assert page.locator("#status").inner_text() == "queued"
    assert page.locator("#charts figure").count() == 0

    env = server_env(str(live.engine.url)) | {"RLHF_ARTIFACTS_DIR": str(artifacts)}
    worker = subprocess.Popen(
        [sys.executable, "-m", "app", "worker", "--once"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # no reload: the page polls and draws the metrics as they arrive
        page.locator("#chart-loss").wait_for(timeout=90_000)
        page.get_by_text("succeeded").first.wait_for(timeout=90_000)
    finally:
        worker.wait(timeout=120)
    assert page.locator("#chart-loss figcaption").inner_text().startswith("loss · ")
    assert page.locator("#step").inner_text() == "12"
    assert page.locator("#chart-loss path.line").get_attribute("d").count("L") >= 1
