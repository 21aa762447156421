"""How far an import started from the admin page has got, for the page to poll.

The page names its import with a random id; the import writes its progress (prompts stored,
lines read, lines in the file) to a small JSON file under the artifacts folder, a few times a
second, so that any worker process of the server can answer the poll. Files older than a day
are removed when a new import starts.
"""

import json
import os
import re
import time
from pathlib import Path
from typing import Any

from app.config import get_settings

ID = re.compile(r"[0-9a-f]{32}")
EVERY = 0.25
"""Seconds between writes."""
KEEP = 24 * 3600


def _folder() -> Path:
    return get_settings().artifacts_dir / "import-progress"


def valid(progress_id: str) -> bool:
    """Whether `progress_id` is an id the page makes (32 hex digits)."""
    return ID.fullmatch(progress_id) is not None


class ImportProgress:
    """A `Progress` that writes the import's state for the page's poll."""

    def __init__(self, progress_id: str) -> None:
        if not valid(progress_id):
            raise ValueError("a progress id is 32 hex digits")
        folder = _folder()
        folder.mkdir(parents=True, exist_ok=True)
        now = time.time()
        for old in folder.glob("*.json"):
            if now - old.stat().st_mtime > KEEP:
                old.unlink(missing_ok=True)
        self.path = folder / f"{progress_id}.json"
        self.written = 0.0
        self._write({"rows": 0, "done": 0, "total": 0, "finished": False})

    def _write(self, state: dict[str, Any]) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self.path)
        self.written = time.monotonic()

    def __call__(self, rows: int, done: int, total: int) -> None:
        if time.monotonic() - self.written >= EVERY:
            self._write({"rows": rows, "done": done, "total": total, "finished": False})

    def finish(self, rows: int, ok: bool) -> None:
        """The import ended (stored `rows` prompts, or failed and stored nothing)."""
        self._write({"rows": rows if ok else 0, "done": 1, "total": 1, "finished": True})


def read(progress_id: str) -> dict[str, Any] | None:
    """The state an import last wrote, or None (unknown id, or not started yet)."""
    if not valid(progress_id):
        return None
    try:
        return json.loads((_folder() / f"{progress_id}.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
