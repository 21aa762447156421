"""Faults an operator meets: each one fails or retries one run, never two trainers or a dead worker.

Real worker and trainer subprocesses on tiny models; the stale limit is 3 s (see conftest).
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from app.db import get_engine, get_sessionmaker
from app.runs import registry, service
from app.runs.models import RegisteredModel
from app.runs.worker import Worker
from tests.runs.test_worker import _queue, _reload, _steps, _wait
from tests.trainer.trainer_testdata import group


def _trainers(run_dir: Path) -> list[int]:
    """Pids of live trainer processes started for this run directory."""
    marker = str(run_dir / "config.json").encode()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in cmdline and state != "Z":
            found.append(int(proc.name))
    return found


def _worker_process(log_path: Path) -> subprocess.Popen[bytes]:
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "app", "worker", "--poll", "0.2"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def _metric_steps(run_dir: Path) -> list[int]:
    lines = (run_dir / "output" / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line)["step"] for line in lines]


def _models_of(run_id: int) -> int:
    with get_sessionmaker()() as s:
        return s.scalar(select(func.count()).where(RegisteredModel.run_id == run_id)) or 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_killed_worker_takes_its_trainer_and_the_run_finishes_once(
    session, sft_snapshot, tiny_models, artifacts
) -> None:
    steps = 60
    run = _queue(session, sft_snapshot, tiny_models["causal-lm"], max_steps=steps, save_every=20)
    run_dir = artifacts / "runs" / str(run.id)
    log_path = artifacts.parent / "worker.log"
    first = _worker_process(log_path)
    try:
        _wait(
            lambda: any((run_dir / "output/checkpoints").glob("*/trainer_state.json")), timeout=120
        )
        assert len(_trainers(run_dir)) == 1
        first.kill()  # kill -9: no signal handler, no cleanup
        first.wait()
        # The trainer dies with its worker: none is left by the time the run goes stale.
        _wait(lambda: not _trainers(run_dir), timeout=3)
        assert _reload(run.id).state in ("running", "stale")
        second = _worker_process(log_path)
        try:
            seen: list[int] = []
            while _reload(run.id).status != "succeeded":
                assert second.poll() is None, log_path.read_text()[-3000:]
                seen.append(len(_trainers(run_dir)))
                time.sleep(0.2)
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(timeout=60)
    except AssertionError:
        raise AssertionError(log_path.read_text()[-3000:]) from None
    finally:
        first.kill()
    assert max(seen) == 1  # never two trainers on the run
    done = _reload(run.id)
    assert done.attempt == 2
    assert _metric_steps(run_dir) == list(range(1, steps + 1))
    assert _steps(run.id) == list(range(1, steps + 1))
    assert _models_of(run.id) == 1
    assert "resumed from" in (run_dir / "train.log").read_text()


def _nan_copy(model: Path, tmp_path: Path) -> Path:
    """A copy of `model` whose output layer is NaN: its loss is NaN from the first step."""
    import shutil

    from safetensors.torch import load_file, save_file

    out = tmp_path / "nan-lm"
    shutil.copytree(model, out)
    weights = load_file(out / "model.safetensors")
    weights["lm_head.weight"].fill_(float("nan"))
    save_file(weights, out / "model.safetensors", metadata={"format": "pt"})
    return out


def test_a_nan_loss_and_a_registration_conflict_fail_their_runs_and_the_worker_goes_on(
    session, sft_snapshot, tiny_models, artifacts, tmp_path
) -> None:
    model = tiny_models["causal-lm"]
    # No config within bounds diverges for sure: a checkpoint with a NaN output layer does.
    diverging = _queue(
        session, sft_snapshot, _nan_copy(model, tmp_path), max_steps=30, nan_patience=2
    )
    clashing = _queue(session, sft_snapshot, model, max_steps=2)
    registry.register_model(
        session=session, name=f"run-{clashing.id}-sft", kind="policy", path=str(model)
    )
    session.commit()
    healthy = _queue(session, sft_snapshot, model, max_steps=2)
    worker = Worker(poll_seconds=0.2)
    assert [worker.run_once() for _ in range(3)] == [diverging.id, clashing.id, healthy.id]

    failed = _reload(diverging.id)
    assert failed.status == "failed" and failed.exit_code == 3
    first_line = failed.error.splitlines()[0]
    assert first_line.startswith("loss became NaN at step "), failed.error
    first_nan = int(first_line.rsplit(" ", 1)[1])
    # nan_patience=2: two more NaN steps were allowed, then the run stopped
    assert _steps(diverging.id) == list(range(1, first_nan + 3))
    rows = service.metrics(session=session, run_id=diverging.id, after=first_nan - 1)
    assert rows[0].values["loss"] is None and "loss" in rows[0].values["non_finite"]
    assert _models_of(diverging.id) == 0

    conflict = _reload(clashing.id)
    assert conflict.status == "failed"
    assert conflict.error.startswith("the worker could not record the outcome: Conflict: ")
    assert f"a model named 'run-{clashing.id}-sft' is registered already" in conflict.error
    assert "done:" in conflict.error  # the log tail came along

    assert _reload(healthy.id).status == "succeeded"
    assert _models_of(healthy.id) == 1


def test_a_sigtermed_trainer_is_retried_and_resumes_from_its_checkpoint(
    session, backend, sft_snapshot, tiny_models, artifacts
) -> None:
    if backend != "sqlite":
        pytest.skip("the database plays no part here; the killed-worker test covers retries there")
    steps = 200  # long enough that the SIGTERM lands inside the loop on a fast machine
    run = _queue(
        session, sft_snapshot, tiny_models["causal-lm"], max_steps=steps, save_every=100_000
    )
    worker = Worker(poll_seconds=0.2)
    thread = threading.Thread(target=worker.run_once, daemon=True)
    thread.start()
    _wait(lambda: _steps(run.id))
    assert worker.process is not None
    os.kill(worker.process.pid, signal.SIGTERM)  # e.g. a node drained under the trainer
    thread.join(timeout=120)
    retried = _reload(run.id)
    assert retried.status == "queued" and retried.exit_code == 75, retried.error
    assert "will be retried" in retried.error and retried.retry_at is not None
    interrupted_at = max(_steps(run.id))
    assert interrupted_at < steps

    _wait(lambda: worker.run_once() == run.id, timeout=30)  # after the backoff
    done = _reload(run.id)
    assert done.status == "succeeded" and done.attempt == 2, done.error
    log = (Path(done.run_dir) / "train.log").read_text()
    assert f"at step {interrupted_at}" in log.split("--- attempt 2")[1]  # resumed there
    assert _metric_steps(Path(done.run_dir)) == list(range(1, steps + 1))
    assert _steps(run.id) == list(range(1, steps + 1))


def test_the_worker_survives_its_database_connection_being_terminated(
    session, backend, sft_snapshot, tiny_models, artifacts
) -> None:
    if backend != "postgresql":
        pytest.skip("pg_terminate_backend is PostgreSQL's")
    run = _queue(session, sft_snapshot, tiny_models["causal-lm"], max_steps=40, save_every=20)
    log_path = artifacts.parent / "worker.log"
    worker = _worker_process(log_path)

    def terminate_others() -> int:
        killed = session.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).scalar_one()
        session.commit()
        get_engine().dispose()  # this process's pool held some of them too
        return int(killed)

    try:
        _wait(lambda: _steps(run.id), timeout=120)
        assert terminate_others() >= 1  # mid-run
        _wait(lambda: _reload(run.id).status not in ("queued", "running"), timeout=180)
        assert _reload(run.id).status == "succeeded", _reload(run.id).error
        assert _steps(run.id) == list(range(1, 41))
        time.sleep(1)
        assert terminate_others() >= 1  # while idle
        after = _queue(session, sft_snapshot, tiny_models["causal-lm"], max_steps=2)
        _wait(lambda: _reload(after.id).status == "succeeded", timeout=120)
        assert worker.poll() is None
    except AssertionError:
        raise AssertionError(log_path.read_text()[-3000:]) from None
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
    assert "lost the database" in log_path.read_text()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_stopping_a_trainer_takes_its_launchers_children(artifacts) -> None:
    """What `RLHF_TRAINER_LAUNCHER=accelerate` needs: the launcher's children die with it."""
    worker = Worker()
    launcher = subprocess.Popen(
        ["sh", "-c", "sleep 300 & sleep 300 & wait"], start_new_session=True
    )
    worker.process = launcher
    _wait(lambda: len(group(launcher.pid)) == 3, timeout=30)
    worker._stop_trainer()
    _wait(lambda: not group(launcher.pid), timeout=10)
