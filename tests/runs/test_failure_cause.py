"""A failed run says why in one line, folds its log below, and offers Retry only where a retry
can get further: not for a refused config or model, nor a loss that turned NaN; yes for a lost
worker, a killed trainer, or memory that ran out."""

import re
import shutil
from datetime import timedelta
from pathlib import Path

from typer.testing import CliRunner

from app.base import utcnow
from app.cli import app as cli
from app.runs import service, worker_steps
from app.runs.worker import Worker
from tests.test_pages import login

OOM_TAIL = """[2026-01-01 10:00:00] step 3 loss 2.1
Traceback (most recent call last):
  File "/srv/trainer/sft.py", line 101, in train
    loss.backward()
torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 GiB (GPU 0; 79.1 GiB total)
Traceback (most recent call last):
  File "/srv/accelerate/launch.py", line 7, in main
subprocess.CalledProcessError: Command '['python', '-m', 'trainer']' returned exit status 1."""
NAN_TAIL = "[2026-01-01 10:00:00] step 12 loss nan\nerror: loss became NaN at step 12"
USAGE_TAIL = "error: config key 'model': model '/models/gone': no such directory"
WIDE = "x" * 5000  # a log line far wider than any page


def _failed(session, snapshot, model, tmp_path, exit_code, tail):  # type: ignore[no-untyped-def]
    """A run whose trainer exited with `exit_code` after writing `tail` to its log."""
    run = service.create_run(session=session, kind="sft", snapshot_id=snapshot.id, model=model)
    session.commit()
    worker_steps.claim_next(session=session, worker="w1")
    run_dir = tmp_path / f"run-{run.id}"
    run_dir.mkdir()
    (run_dir / "train.log").write_text(f"--- attempt 1 on w1\n{WIDE}\n{tail}\n")
    worker_steps.set_run_dir(session=session, run=run, run_dir=str(run_dir))
    run.max_attempts = 1
    session.commit()
    return worker_steps.attempt_ended(
        session=session,
        run=run,
        worker="w1",
        exit_code=exit_code,
        worker_stopping=False,
        retry_seconds=0,
    )


def _retry_form(page: str, run_id: int) -> bool:
    return f'action="/admin/runs/{run_id}/retry"' in page


def _cause_on_page(page: str) -> str:
    return re.search(r'id="failure-cause">([^<]*)</p>', page).group(1)


def test_a_known_cause_is_one_line_with_the_log_folded_and_no_retry(
    client, factory, session, sft_snapshot, policy_dir, tmp_path
) -> None:
    admin = factory.user("admin")
    login(client, admin)
    usage = _failed(session, sft_snapshot, policy_dir, tmp_path, 2, USAGE_TAIL)
    diverged = _failed(session, sft_snapshot, policy_dir, tmp_path, 3, NAN_TAIL)
    for run, cause in (
        (usage, "config key 'model': model '/models/gone': no such directory"),
        (diverged, "loss became NaN at step 12"),
    ):
        assert run.status == "failed"
        page = client.get(f"/admin/runs/{run.id}").text
        assert _cause_on_page(page) == cause.replace("'", "&#39;")
        assert not _retry_form(page, run.id)
        assert re.search(r'id="no-retry">A retry would fail the same way', page)
        folded = page.split('<details id="failure-details">', 1)[1].split("</details>", 1)[0]
        assert '<pre class="failure-log" id="failure-log">' in folded and WIDE in folded
        shown = client.get(f"/api/v1/runs/{run.id}", headers=admin.headers).json()
        assert (shown["cause"], shown["retryable"]) == (cause, False)
        refused = client.post(f"/api/v1/runs/{run.id}/retry", headers=admin.headers)
        assert refused.status_code == 409 and "a retry would repeat" in refused.json()["detail"]
        result = CliRunner().invoke(cli, ["runs", "retry", str(run.id)])
        assert result.exit_code == 2 and "a retry would repeat" in result.stderr
    # the wide log scrolls inside its own box instead of widening the page
    css = (Path(__file__).parents[2] / "static" / "css" / "app.css").read_text()
    rule = re.search(r"\.failure-log \{([^}]*)\}", css).group(1)
    assert "white-space:pre;" in rule and "overflow-x:auto" in rule and "max-width:100%" in rule
    assert "overflow-wrap:anywhere" in re.search(r"\.failure-cause \{([^}]*)\}", css).group(1)


def test_passing_causes_offer_retry_with_the_cause_in_one_line(
    client, factory, session, sft_snapshot, policy_dir, tmp_path
) -> None:
    admin = factory.user("admin")
    login(client, admin)
    oom = _failed(session, sft_snapshot, policy_dir, tmp_path, 1, OOM_TAIL)
    killed = _failed(session, sft_snapshot, policy_dir, tmp_path, -9, "step 3")
    lost = service.create_run(
        session=session, kind="sft", snapshot_id=sft_snapshot.id, model=policy_dir
    )
    session.commit()
    worker_steps.claim_next(session=session, worker="w9")
    lost.max_attempts, lost.heartbeat_at = 1, utcnow() - timedelta(seconds=120)
    session.commit()
    worker_steps.requeue_stale(session=session, stale_seconds=60)
    session.refresh(lost)
    expected = {
        oom.id: "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 GiB",
        killed.id: "the trainer was killed by signal 9 SIGKILL (out of memory?) (attempt 1 of 1",
        lost.id: "the worker w9 was lost (no heartbeat for 60 s) (attempt 1 of 1: no retries left)",
    }
    for run_id, cause in expected.items():
        shown = client.get(f"/api/v1/runs/{run_id}", headers=admin.headers).json()
        assert shown["status"] == "failed" and shown["cause"].startswith(cause), shown["cause"]
        assert "\n" not in shown["cause"] and shown["retryable"] is True
        page = client.get(f"/admin/runs/{run_id}").text
        assert _retry_form(page, run_id) and re.search(r'id="no-retry" hidden>', page)
    retried = client.post(f"/api/v1/runs/{oom.id}/retry", headers=admin.headers)
    assert retried.status_code == 200 and retried.json()["status"] == "queued"


def test_a_model_gone_before_its_run_starts_fails_with_that_line_and_no_retry(
    client, factory, session, sft_snapshot, policy_dir, tmp_path, artifacts
) -> None:
    """The real worker and trainer: the trainer refuses the model before loading anything."""
    model = tmp_path / "soon-gone"
    shutil.copytree(policy_dir, model)
    run = service.create_run(
        session=session, kind="sft", snapshot_id=sft_snapshot.id, model=str(model)
    )
    session.commit()
    shutil.rmtree(model)
    assert Worker(poll_seconds=0.2).run_once() == run.id
    session.refresh(run)
    assert (run.status, run.exit_code) == ("failed", 2)
    assert run.cause == f"config key 'model': model '{model}': no such directory"
    assert run.retryable is False
    login(client, factory.user("admin"))
    page = client.get(f"/admin/runs/{run.id}").text
    assert _cause_on_page(page) == run.cause.replace("'", "&#39;")
    assert not _retry_form(page, run.id)
