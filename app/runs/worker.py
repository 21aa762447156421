"""`rlhf worker`: claims queued runs and runs the trainer as a subprocess.

Per run: freeze the snapshot's files into the run directory, write the trainer config and the
run's launch config (trainer/launch.py), launch `python -m trainer KIND --config config.json`
(a run of several processes through `torchrun`; with the `accelerate` launcher setting, a
one-process run through `accelerate launch -m trainer …`; with a Ray cluster set, a training
run through its Ray driver, `python -m trainer.ray_cluster`, which the cancel's SIGTERM reaches
as it reaches torchrun) in a process group of its own, copy
new lines of metrics.jsonl into the database, heart-beat, pass a cancel on as SIGTERM, and report
how the attempt ended; worker_steps decides what the run does next.

One trainer per run: the trainer gets a parent-death signal (Linux), watches a lock file this
worker holds while it lives (any platform, any launcher) and knows its attempt number (see
trainer/fencing.py); it stops without writing when any of them says it is stale. The worker never
dies of one run: every failure while handling a run fails or retries that run with its cause, and
a lost database connection is retried with a backoff while the trainer goes on.
"""

import contextlib
import ctypes
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session

from app.config import get_settings
from app.datasets import service as datasets_service
from app.db import get_sessionmaker
from app.runs import generation, judging, resources, service, worker_steps
from app.runs.models import RunKind, TrainingRun
from trainer import (
    ATTEMPT_ENV,
    ATTEMPT_FILE,
    EXIT_PREEMPTED,
    PREEMPTED_FILE,
    SUPERVISOR_ENV,
    launch,
)
from trainer.reporting import METRICS_FILE

T = TypeVar("T")
PROJECT_RUNS = {
    RunKind.generate: (generation.prepare, generation.ingest),
    RunKind.judge: (judging.prepare, judging.ingest),
}
"""The run kinds that work on a project instead of a snapshot: how each writes its trainer's
input (prepare) and stores what its trainer writes, while it runs and at the end (ingest)."""
PR_SET_PDEATHSIG = 1
MAX_BACKOFF_SECONDS = 30.0


def log(msg: str) -> None:
    """One timestamped line on stdout (the worker's log)."""
    print(f"[{time.strftime('%Y-%m-%d %H:%M:%S')}] worker: {msg}", flush=True)


def is_db_outage(exc: BaseException) -> bool:
    """Whether `exc` means the database is unreachable for now (worth a retry), not a bad row."""
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def _die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn that makes the child receive SIGKILL when the worker dies (Linux only).

    The signal follows the thread that started the child, so the worker starts and waits for
    its trainer from one thread.
    """
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL))

    return preexec


def _launcher_code(code: int, run: TrainingRun, run_dir: Path) -> int:
    """The trainer's own exit code: 75 (preempted) when this attempt's ranks saved a checkpoint
    after SIGTERM, whatever a launcher in between (accelerate exits 1) made of it."""
    if code in (0, EXIT_PREEMPTED):
        return code
    marker = run_dir / "output" / PREEMPTED_FILE
    with contextlib.suppress(OSError):
        if marker.read_text().strip() == str(run.attempt):
            return EXIT_PREEMPTED
    return code


class Worker:
    """Claims and runs training runs one at a time."""

    def __init__(
        self,
        name: str | None = None,
        poll_seconds: float = 1.0,
        heartbeat_seconds: float | None = None,
    ) -> None:
        settings = get_settings()
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.poll_seconds = poll_seconds
        self.heartbeat_seconds = heartbeat_seconds or settings.worker_heartbeat_seconds
        self.stale_seconds = settings.run_stale_seconds
        self.retry_seconds = settings.run_retry_seconds
        self.launcher = settings.trainer_launcher
        self.ray_address = settings.ray_address
        self.resources = resources.measure(self.ray_address)
        self.artifacts = Path(settings.artifacts_dir).resolve()
        self.stopping = threading.Event()
        self.process: subprocess.Popen[bytes] | None = None
        self.stage = ""
        self._last_alive = -float("inf")
        self._metrics_file: tuple[int, int] | None = None

    # -------------------------------------------------------------- loop

    def run_forever(self) -> None:
        """Claim and run until stopped (SIGTERM / SIGINT → the current run is checkpointed)."""
        delay = self.poll_seconds
        while not self.stopping.is_set():
            try:
                claimed = self.run_once()
                delay = self.poll_seconds
            except Exception as exc:  # noqa: BLE001 — the worker outlives any one failure
                what = "the database is unreachable" if is_db_outage(exc) else "unexpected error"
                log(f"{what} ({type(exc).__name__}: {exc}); retrying in {delay:g} s")
                self.stopping.wait(delay)
                delay = min(delay * 2, MAX_BACKOFF_SECONDS)
                continue
            if claimed is None:
                self.stopping.wait(self.poll_seconds)
        try:
            with get_sessionmaker()() as session:
                worker_steps.worker_gone(session=session, worker=self.name)
        except Exception as exc:  # noqa: BLE001 — its row goes stale by itself
            log(f"could not sign off ({type(exc).__name__})")

    def run_once(self) -> int | None:
        """Requeue stale runs, then claim one queued run and see it through; its id or None."""
        with get_sessionmaker()() as session:
            self._alive(session, None)
            worker_steps.requeue_stale(
                session=session, stale_seconds=self.stale_seconds, retry_seconds=self.retry_seconds
            )
            run = worker_steps.claim_next(session=session, worker=self.name)
            if run is None:
                return None
            run_id = run.id
            self._handle(session, run)
            return run_id

    def _alive(self, session: Session, run_id: int | None, force: bool = False) -> None:
        if force or time.monotonic() - self._last_alive >= self.heartbeat_seconds:
            worker_steps.worker_alive(
                session=session, worker=self.name, run_id=run_id, resources=self.resources
            )
            self._last_alive = time.monotonic()

    # -------------------------------------------------------------- one run

    def _handle(self, session: Session, run: TrainingRun) -> None:
        """See one claimed run through; whatever goes wrong ends or retries this run only."""
        run_id = run.id
        try:
            self._alive(session, run_id, force=True)
            self._train(session, run)
        except Exception as exc:  # noqa: BLE001 — one run's failure is that run's
            self._stop_trainer()
            log(f"run {run_id}: could not {self.stage}\n{traceback.format_exc()}")
            _rollback(session)
            cause = f"the worker could not {self.stage}: {type(exc).__name__}: {exc}"
            retry = is_db_outage(exc)
            self._db(
                session,
                lambda: worker_steps.attempt_failed(
                    session=session,
                    run=service.get_run(session=session, run_id=run_id),
                    worker=self.name,
                    cause=cause,
                    retry=retry,
                    retry_seconds=self.retry_seconds,
                ),
            )
        finally:
            self.process = None

    def _train(self, session: Session, run: TrainingRun) -> None:
        """Prepare, launch and watch the trainer, then report how the attempt ended."""
        self.stage = "prepare the run"
        run_dir = self._db(session, lambda: self._prepare(session, run))
        self.stage = "start the trainer"
        with open(run_dir / "train.log", "ab") as log_file, _Supervision(run_dir) as lock:
            log_file.write(f"--- attempt {run.attempt} on {self.name}\n".encode())
            log_file.flush()
            env = os.environ | {
                "PYTHONUNBUFFERED": "1",
                ATTEMPT_ENV: str(run.attempt),
                SUPERVISOR_ENV: str(lock),
            }
            self.process = subprocess.Popen(
                self._command(run, run_dir),
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=run_dir,
                start_new_session=True,  # own process group: a kill takes a launcher's children
                preexec_fn=_die_with_parent(),  # noqa: PLW1509 — one prctl call, nothing else
            )
            try:
                self.stage = "watch the trainer"
                code = self._watch(session, run, run_dir)
            finally:
                self._stop_trainer()
        self.stage = "store the metrics"
        self._db(session, lambda: self._tail_metrics(session, run, run_dir))
        if code is None:
            return  # the run was taken from this worker meanwhile
        code = _launcher_code(code, run, run_dir)
        self.stage = "record the outcome"
        self._db(
            session,
            lambda: worker_steps.attempt_ended(
                session=session,
                run=run,
                worker=self.name,
                exit_code=code,
                worker_stopping=self.stopping.is_set(),
                retry_seconds=self.retry_seconds,
            ),
        )

    def _prepare(self, session: Session, run: TrainingRun) -> Path:
        run_dir = self.artifacts / "runs" / str(run.id)
        self._metrics_file = None
        if run.kind in PROJECT_RUNS:
            PROJECT_RUNS[RunKind(run.kind)][0](session=session, run=run, run_dir=run_dir)
        else:
            self._prepare_training(session, run, run_dir)
        # The newest attempt number fences off any older trainer still writing here.
        (run_dir / "output").mkdir(parents=True, exist_ok=True)
        (run_dir / "output" / ATTEMPT_FILE).write_text(str(run.attempt))
        worker_steps.set_run_dir(session=session, run=run, run_dir=str(run_dir))
        return run_dir

    def _prepare_training(self, session: Session, run: TrainingRun, run_dir: Path) -> None:
        """Freeze the snapshot's files into the run directory and write the trainer config."""
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
        launch.write_launch_files(run_dir, config)

    def _command(self, run: TrainingRun, run_dir: Path) -> list[str]:
        """A training run on a Ray cluster when one is set (generation and judging stay here:
        this worker stores what they write as they go); else a run of several processes starts
        through torchrun (trainer/launch.py), one process as the `trainer_launcher` setting
        says."""
        config_path = run_dir / "config.json"
        if self.ray_address and run.kind not in PROJECT_RUNS:
            return launch.ray_command(run.kind, config_path, self.ray_address)
        processes = launch.plan(dict(run.config))["processes"]
        if processes > 1:
            return launch.command(run.kind, config_path, processes)
        args = ["-m", "trainer", run.kind, "--config", str(config_path)]
        if self.launcher == "accelerate":
            return [sys.executable, "-m", "accelerate.commands.launch", *args[1:]]
        return [sys.executable, *args]

    def _watch(self, session: Session, run: TrainingRun, run_dir: Path) -> int | None:
        """Wait for the trainer; None if the run was taken from this worker."""
        assert self.process is not None
        run_id = run.id
        last_beat = time.monotonic()
        signalled = False
        outage_since: float | None = None
        while (code := self.process.poll()) is None:
            time.sleep(min(self.poll_seconds, 0.5))
            try:
                self._tail_metrics(session, run, run_dir)
                if time.monotonic() - last_beat >= self.heartbeat_seconds:
                    if not worker_steps.heartbeat(session=session, run=run, worker=self.name):
                        log(f"run {run_id} was taken from this worker; stopping its trainer")
                        self._stop_trainer()
                        return None
                    self._alive(session, run_id, force=True)
                    last_beat = time.monotonic()
                stop = self.stopping.is_set() or worker_steps.cancel_requested(
                    session=session, run_id=run_id
                )
            except Exception as exc:
                if not is_db_outage(exc):
                    raise
                _rollback(session)
                if outage_since is None:
                    outage_since = time.monotonic()
                    log(f"run {run_id}: lost the database ({type(exc).__name__}); reconnecting")
                time.sleep(min(time.monotonic() - outage_since, MAX_BACKOFF_SECONDS / 6))
                continue
            if outage_since is not None:
                log(f"run {run_id}: the database is back")
                outage_since = None
            if stop and not signalled:
                self._signal(signal.SIGTERM)
                signalled = True
        return code

    def _signal(self, sig: int) -> None:
        """Send `sig` to the trainer's whole process group (a launcher and its children)."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)

    def _stop_trainer(self) -> None:
        """Kill whatever is left of the trainer's process group and reap the trainer."""
        if self.process is None:
            return
        self._signal(signal.SIGKILL)
        self.process.wait()

    def _tail_metrics(self, session: Session, run: TrainingRun, run_dir: Path) -> None:
        if run.kind in PROJECT_RUNS:  # samples and verdicts go into the project as they come
            PROJECT_RUNS[RunKind(run.kind)][1](session=session, run=run, run_dir=run_dir)
        path = run_dir / "output" / METRICS_FILE
        try:
            stat = path.stat()
        except FileNotFoundError:
            return
        offset = run.metrics_offset
        new_file = (stat.st_dev, stat.st_ino) != self._metrics_file
        if new_file:  # this attempt's first look, or a resumed trainer rewrote it
            self._metrics_file = (stat.st_dev, stat.st_ino)
            offset = 0
        elif stat.st_size <= offset:
            return
        with open(path, "rb") as f:
            f.seek(offset)
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
        worker_steps.record_metrics(
            session=session, run=run, rows=rows, offset=offset + len(complete), whole=offset == 0
        )

    def _db(self, session: Session, action: Callable[[], T]) -> T:
        """Run `action`; while the database is unreachable, roll back and retry with a backoff."""
        delay = 0.5
        while True:
            try:
                return action()
            except Exception as exc:
                if not is_db_outage(exc) or self.stopping.is_set():
                    raise
                _rollback(session)
                log(f"database unreachable ({type(exc).__name__}); retrying in {delay:g} s")
                time.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF_SECONDS)


def _rollback(session: Session) -> None:
    try:
        session.rollback()
    except Exception as exc:  # noqa: BLE001 — a dead connection is discarded by the pool
        log(f"rollback failed ({type(exc).__name__})")


class _Supervision:
    """An exclusive flock on run_dir/worker.lock for as long as this worker runs the attempt.

    The trainer polls the lock: once it is free, the worker that started it is gone.
    """

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / "worker.lock"
        self.fd = -1

    def __enter__(self) -> Path:
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self.path

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)


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
