"""One trainer writes to an output directory: a stale attempt stops without writing."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.trainer.trainer_testdata import sft_records, write_jsonl
from trainer import ATTEMPT_ENV, ATTEMPT_FILE, EXIT_FENCED, SUPERVISOR_ENV, fencing
from trainer.fencing import Fence, Fenced

REPO = Path(__file__).resolve().parents[2]


def test_a_newer_attempt_or_a_gone_supervisor_fences_a_trainer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    supervisor = tmp_path / "worker.lock"
    held = os.open(supervisor, os.O_RDWR | os.O_CREAT)
    fcntl.flock(held, fcntl.LOCK_EX)
    monkeypatch.setenv(ATTEMPT_ENV, "1")
    monkeypatch.setenv(SUPERVISOR_ENV, str(supervisor))
    (tmp_path / ATTEMPT_FILE).write_text("1")
    fence = Fence(tmp_path)
    fence.check()  # the current attempt, its worker alive

    (tmp_path / ATTEMPT_FILE).write_text("2")
    with pytest.raises(Fenced, match="attempt 1 is stale"):
        fence.check()
    (tmp_path / ATTEMPT_FILE).write_text("1")
    os.close(held)  # the worker died
    with pytest.raises(Fenced, match="the worker that started this trainer is gone"):
        fence.check()


def test_a_second_trainer_waits_for_the_output_lock_then_gives_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ATTEMPT_ENV, raising=False)
    monkeypatch.delenv(SUPERVISOR_ENV, raising=False)
    monkeypatch.setattr(fencing, "LOCK_WAIT_SECONDS", 0.5)
    other = os.open(tmp_path / fencing.LOCK_FILE, os.O_RDWR | os.O_CREAT)
    fcntl.flock(other, fcntl.LOCK_EX)  # another trainer holds the directory
    with pytest.raises(Fenced, match="another trainer holds"):
        Fence(tmp_path).lock()
    os.close(other)
    Fence(tmp_path).lock()  # free again: taken


def test_a_stale_trainer_stops_without_writing(tmp_path: Path, causal_lm: str) -> None:
    data = write_jsonl(tmp_path / "sft.jsonl", sft_records(40))
    out = tmp_path / "out"
    out.mkdir()
    (out / ATTEMPT_FILE).write_text("1")
    cmd = [sys.executable, "-m", "trainer", "sft", "--model", causal_lm, "--train-file", data]
    cmd += ["--output-dir", str(out), "--max-steps", "100000", "--batch-size", "2"]
    cmd += ["--set", "save_every=2"]
    env = os.environ | {ATTEMPT_ENV: "1"}
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    metrics = out / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while not (metrics.exists() and len(metrics.read_text().splitlines()) >= 2):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    (out / ATTEMPT_FILE).write_text("2")  # a newer attempt took the run
    log, _ = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_FENCED, log.decode()
    assert b"attempt 1 is stale" in log
    assert not (out / "summary.json").exists() and not (out / "config.json").exists()
