"""The rows a project run's trainer appends (a generate run's samples, a judge run's verdicts),
read by the worker while the trainer runs, and what it has stored of them.

`<run dir>/<progress file>` holds {"offset": bytes of the rows file already stored, …} plus what
each kind adds ("planned", "stored"); it is replaced whole, never torn. `new_lines` gives the
complete lines past the offset (a torn last line waits for its end); a rows file shorter than the
offset is a new file and is read from its start, which is safe because both kinds store each row
at most once (samples on (prompt, model, sample index), verdicts on (run, prompt)).
"""

import json
from pathlib import Path
from typing import Any


def read_progress(run_dir: str | Path | None, name: str) -> dict[str, Any]:
    """The progress file `name` of a run directory ({} before the first write)."""
    if not run_dir:
        return {}
    path = Path(run_dir) / name
    return json.loads(path.read_text()) if path.is_file() else {}


def write_progress(run_dir: Path, name: str, progress: dict[str, Any]) -> None:
    """Replace the progress file whole (a crash leaves the old one or the new one)."""
    tmp = run_dir / (name + ".tmp")
    tmp.write_text(json.dumps(progress))
    tmp.replace(run_dir / name)


def new_lines(path: Path, offset: int) -> tuple[list[str], int]:
    """The complete lines of `path` past `offset`, and the offset after them."""
    if not path.is_file():
        return [], offset
    size = path.stat().st_size
    if size < offset:  # a new file
        offset = 0
    if size == offset:
        return [], offset
    with open(path, "rb") as f:
        f.seek(offset)
        chunk = f.read()
    complete = chunk[: chunk.rfind(b"\n") + 1]
    return complete.decode("utf-8", "replace").splitlines(), offset + len(complete)
