"""One trainer writes to an output directory at a time: fencing off stale attempts.

The main process holds an exclusive `flock` on output_dir/trainer.lock. Under a supervisor (the
worker) the process also knows its attempt (env TRAINER_ATTEMPT, the newest attempt is in
output_dir/attempt) and a lock file the supervisor holds while it lives (env
TRAINER_SUPERVISOR_LOCK): when a newer attempt starts or the supervisor dies, the trainer exits
(EXIT_FENCED) without writing anything more. Every write of `runtime.Run` checks the fence first.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from pathlib import Path

from trainer import ATTEMPT_ENV, ATTEMPT_FILE, EXIT_FENCED, SUPERVISOR_ENV
from trainer.reporting import log

LOCK_FILE = "trainer.lock"
WATCH_SECONDS = 1.0
"""How often a supervised trainer checks that it is still the current attempt."""
LOCK_WAIT_SECONDS = 60.0
"""How long a trainer waits for another one to release the output directory."""


class Fenced(RuntimeError):
    """This trainer is no longer the run's current attempt; it must not write anything."""


_HELD: dict[str, int] = {}
"""Output-dir locks this process holds (a second Run in the same process reuses its lock)."""


def _lock_is_free(path: str) -> bool:
    """Whether nobody holds an exclusive flock on `path` (a missing file counts as free)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


class Fence:
    """Whether this process may still write to its output directory (see the module doc)."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.token = os.environ.get(ATTEMPT_ENV)
        self.supervisor = os.environ.get(SUPERVISOR_ENV)

    def stale(self) -> str | None:
        """Why this process must stop writing, or None while it is the current attempt."""
        if self.token is not None:
            try:
                current = (self.out / ATTEMPT_FILE).read_text().strip()
            except OSError:
                current = "?"
            if current != self.token:
                return f"attempt {self.token} is stale (the run is at attempt {current})"
        if self.supervisor and _lock_is_free(self.supervisor):
            return "the worker that started this trainer is gone"
        return None

    def check(self) -> None:
        """Raise Fenced when this process is stale."""
        if reason := self.stale():
            raise Fenced(f"{reason}: stopping without writing")

    def start_watching(self) -> None:
        """Under a supervisor, exit at once (EXIT_FENCED) when this process goes stale."""
        if self.token is None and not self.supervisor:
            return
        self.check()

        def watch() -> None:
            while True:
                time.sleep(WATCH_SECONDS)
                if reason := self.stale():
                    log(f"{reason}: stopping without writing")
                    os._exit(EXIT_FENCED)

        threading.Thread(target=watch, name="fence", daemon=True).start()

    def lock(self) -> None:
        """Hold an exclusive flock on output_dir/trainer.lock, waiting for a previous holder."""
        path = str((self.out / LOCK_FILE).resolve())
        if path in _HELD:
            return
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                self.check()
                if time.monotonic() > deadline:
                    os.close(fd)
                    raise Fenced(f"another trainer holds {path}") from None
                time.sleep(0.2)
        _HELD[path] = fd
