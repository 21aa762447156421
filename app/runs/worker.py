"""`rlhf worker`: claims queued runs and runs the trainer as a subprocess.

Per run: freeze the snapshot's files into the run directory, write the trainer config, launch
`python -m trainer KIND --config config.json` (or `accelerate launch -m trainer …`), copy new
lines of metrics.jsonl into the database, heart-beat, pass a cancel on as SIGTERM, and record
the outcome. A trainer that crashes or is killed fails its run; the worker lives on.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from app.config import get_settings
from app.db import get_sessionmaker
from app.runs import generation, service
from app.runs.models import RunKind, RunStatus, TrainingRun
from trainer import EXIT_PREEMPTED

LOG_TAIL_LINES = 40


def log_tail(run_dir: str | Path | None, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of a run's train.log."""
    if not run_dir:
        return ""
    path = Path(run_dir) / "train.log"
    if not path.is_file():
        return ""
    with open(path, "rb") as f:
        f.seek(max(0, path.stat().st_size - 64_000))
        return "\n".join(f.read().decode("utf-8", "replace").splitlines()[-lines:])


def _describe_exit(code: int) -> str:
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else "?"
        hint = " (out of memory?)" if -code == signal.SIGKILL else ""
        return f"the trainer was killed by signal {-code} {name}{hint}"
    return f"the trainer exited with status {code}"


class Worker:
    """Claims and runs training runs one at a time."""

    def __init__(
        self, name: str | None = None, poll_seconds: float = 1.0, heartbeat_seconds: float = 5.0
    ) -> None:
        settings = get_settings()
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.poll_seconds = poll_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self.stale_seconds = settings.run_stale_seconds
        self.launcher = settings.trainer_launcher
        self.artifacts = Path(settings.artifacts_dir).resolve()
        self.stopping = threading.Event()
        self.process: subprocess.Popen[bytes] | None = None

    # -------------------------------------------------------------- loop

    def run_forever(self) -> None:
        """Claim and run until stopped (SIGTERM / SIGINT → the current run is checkpointed)."""
        while not self.stopping.is_set():
            if self.run_once() is None:
                self.stopping.wait(self.poll_seconds)

    def run_once(self) -> int | None:
        """Requeue stale runs, then claim one queued run and see it through; its id or None."""
        with get_sessionmaker()() as session:
            service.requeue_stale(session=session, stale_seconds=self.stale_seconds)
            run = service.claim_next(session=session, worker=self.name)
            if run is None:
                return None
            self._execute(session, run)
            return run.id

    # -------------------------------------------------------------- one run

    def _prepare(self, session: Any, run: TrainingRun) -> Path:
        from app.datasets import service as datasets_service

        run_dir = self.artifacts / "runs" / str(run.id)
        if run.kind == RunKind.generate:
            generation.prepare(session=session, run=run, run_dir=run_dir)
            run.run_dir = str(run_dir)
            session.commit()
            return run_dir
        data = run_dir / "data"
        data.mkdir(parents=True, exist_ok=True)
        snapshot = datasets_service.get_snapshot(session=session, snapshot_id=run.snapshot_id)
        files = datasets_service.snapshot_files(snapshot=snapshot)
        config: dict[str, Any] = dict(run.config)
        for split in ("train", "test"):
            source = files[f"{split}.jsonl"]
            frozen = data / f"{split}.jsonl"
            if not frozen.exists():
                shutil.copyfile(source, frozen)
            if frozen.stat().st_size:
                config["train_file" if split == "train" else "eval_file"] = str(frozen)
            elif split == "test":  # evaluate on the snapshot's test rows or not at all
                config.setdefault("eval_fraction", 0.0)
        config["model"] = run.base_model
        config["output_dir"] = str(run_dir / "output")
        if run.reward_model:
            config["reward_model"] = run.reward_model
        (run_dir / "config.json").write_text(json.dumps(config, indent=2))
        run.run_dir = str(run_dir)
        session.commit()
        return run_dir

    def _command(self, run: TrainingRun, run_dir: Path) -> list[str]:
        args = ["-m", "trainer", run.kind, "--config", str(run_dir / "config.json")]
        if self.launcher == "accelerate":
            return [sys.executable, "-m", "accelerate.commands.launch", *args[1:]]
        return [sys.executable, *args]

    def _execute(self, session: Any, run: TrainingRun) -> None:
        try:
            run_dir = self._prepare(session, run)
        except Exception as exc:  # noqa: BLE001 — any failure to set up fails the run
            service.finish_run(
                session=session,
                run=run,
                status=RunStatus.failed,
                error=f"could not prepare the run: {exc}",
            )
            return
        with open(run_dir / "train.log", "ab") as log:
            log.write(f"--- attempt {run.attempt} on {self.name}\n".encode())
            log.flush()
            env = os.environ | {"PYTHONUNBUFFERED": "1"}
            self.process = subprocess.Popen(
                self._command(run, run_dir),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=run_dir,
                start_new_session=True,
            )
            try:
                code = self._watch(session, run, run_dir)
            finally:
                if self.process.poll() is None:
                    self.process.kill()
                    self.process.wait()
        self._tail_metrics(session, run, run_dir)
        self._record_outcome(session, run, code)

    def _watch(self, session: Any, run: TrainingRun, run_dir: Path) -> int | None:
        """Wait for the trainer; None if the run was taken from this worker."""
        assert self.process is not None
        last_beat = time.monotonic()
        signalled = False
        while (code := self.process.poll()) is None:
            time.sleep(min(self.poll_seconds, 0.5))
            self._tail_metrics(session, run, run_dir)
            if time.monotonic() - last_beat >= self.heartbeat_seconds:
                last_beat = time.monotonic()
                if not service.heartbeat(session=session, run=run, worker=self.name):
                    self.process.kill()
                    return None
            stop = self.stopping.is_set() or service.cancel_requested(
                session=session, run_id=run.id
            )
            if stop and not signalled:
                self.process.send_signal(signal.SIGTERM)
                signalled = True
        return code

    def _tail_metrics(self, session: Any, run: TrainingRun, run_dir: Path) -> None:
        if run.kind == RunKind.generate:  # samples go into the project as they come
            generation.ingest(session=session, run=run, run_dir=run_dir)
        path = run_dir / "output" / "metrics.jsonl"
        if not path.is_file() or path.stat().st_size <= run.metrics_offset:
            return
        with open(path, "rb") as f:
            f.seek(run.metrics_offset)
            chunk = f.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]
        rows = []
        for line in complete.decode("utf-8", "replace").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict) and isinstance(row.get("step"), int):
                rows.append(row)
        service.record_metrics(
            session=session, run=run, rows=rows, offset=run.metrics_offset + len(complete)
        )

    def _record_outcome(self, session: Any, run: TrainingRun, code: int | None) -> None:
        session.refresh(run)
        if code is None or run.status != RunStatus.running or run.worker != self.name:
            return  # requeued or finished elsewhere meanwhile
        if run.cancel_requested:
            service.finish_run(session=session, run=run, status=RunStatus.cancelled, exit_code=code)
        elif code == 0:
            service.finish_run(session=session, run=run, status=RunStatus.succeeded, exit_code=0)
        elif code == EXIT_PREEMPTED and self.stopping.is_set():
            run.status, run.worker = RunStatus.queued, None  # resumes from its checkpoint
            session.commit()
        else:
            tail = log_tail(run.run_dir)
            service.finish_run(
                session=session,
                run=run,
                status=RunStatus.failed,
                exit_code=code,
                error=f"{_describe_exit(code)}\n{tail}",
            )


def main(poll_seconds: float = 1.0, once: bool = False) -> None:
    """Run a worker in the foreground; SIGTERM/SIGINT stop it after checkpointing."""
    worker = Worker(poll_seconds=poll_seconds)

    def stop(signum: int, _frame: Any) -> None:
        worker.stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"worker {worker.name} waiting for runs", flush=True)
    if once:
        worker.run_once()
    else:
        worker.run_forever()
