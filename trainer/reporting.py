"""What a trainer reports, and the format the runs worker reads back: metric rows and log lines.

A run writes two streams: metrics.jsonl (one strict-JSON row per step, see `sanitise`) and a
human-readable log on stderr (`log`). The worker copies the metric rows into the database and
sanitises them with the same function, so a row means the same in the file and in the app.
Imports neither torch nor the web app.
"""

from __future__ import annotations

import json
import math
import sys
import time
from typing import Any

METRICS_FILE = "metrics.jsonl"


def log(msg: str) -> None:
    """Append one timestamped line to stderr (the run's human-readable log)."""
    print(f"[{time.strftime('%Y-%m-%d %H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def sanitise(row: dict[str, Any]) -> dict[str, Any]:
    """A metric row as strict JSON: NaN/inf floats become null and their keys are listed under
    `non_finite` (after the keys a row already listed there, so sanitising twice keeps both)."""
    bad = [k for k, v in row.items() if isinstance(v, float) and not math.isfinite(v)]
    if not bad:
        return row
    named = [*row.get("non_finite", []), *bad] if isinstance(row.get("non_finite"), list) else bad
    return {k: (None if k in bad else v) for k, v in row.items()} | {"non_finite": named}


def rounded(values: dict[str, Any]) -> dict[str, Any]:
    """Floats rounded to 6 decimals (metric rows and summaries stay short)."""
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in values.items()}


def step_of(line: str) -> float:
    """The step of one complete metrics line; inf for a torn or foreign line."""
    if not line.endswith("\n"):
        return math.inf
    try:
        row = json.loads(line)
    except ValueError:
        return math.inf
    step = row.get("step") if isinstance(row, dict) else None
    return step if isinstance(step, int) else math.inf
