"""Progress of long imports, exports and snapshots: a callback the services call, and the
terminal bar the CLI passes them.

A service takes `progress: Progress | None` and calls it with (rows, done, total): rows
stored or written so far, and how far it is through its input in whatever unit it knows the
total of (lines of an import file, the id range of an export); `total` is 0 when unknown.
"""

import sys
import time
from collections.abc import Callable
from typing import TextIO

Progress = Callable[[int, int, int], None]
"""(rows, done, total) -> None; called often, so it must be cheap (the bar throttles itself)."""

WIDTH = 24


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    return f"{seconds // 60}:{seconds % 60:02d}"


class TerminalBar:
    """A one-line bar on stderr: label, bar, rows, rows/s, ETA; redrawn at most 10 times a
    second, and only when the stream is a terminal (`enabled` forces it on or off)."""

    def __init__(
        self,
        label: str,
        *,
        unit: str = "rows",
        enabled: bool | None = None,
        stream: TextIO | None = None,
    ) -> None:
        self.label = label
        self.unit = unit
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.started = time.monotonic()
        self.shown = 0.0
        self.drawn = False
        self.last: tuple[int, int, int] = (0, 0, 0)

    def __call__(self, rows: int, done: int, total: int) -> None:
        self.last = (rows, done, total)
        now = time.monotonic()
        if self.enabled and now - self.shown >= 0.1:
            self.shown = now
            self._draw(now)

    def line(self, now: float) -> str:
        """The bar's text at time `now`."""
        rows, done, total = self.last
        elapsed = max(now - self.started, 1e-9)
        rate = rows / elapsed
        if total > 0:
            fraction = min(max(done / total, 0.0), 1.0)
            filled = int(fraction * WIDTH)
            bar = "#" * filled + "-" * (WIDTH - filled)
            eta = _clock(elapsed * (1 - fraction) / fraction) if fraction > 0 else "?"
            where = f"[{bar}] {fraction:4.0%} "
        else:
            where, eta = "", "?"
        return f"{self.label} {where}{rows:,} {self.unit} {rate:,.0f}/s ETA {eta}"

    def _draw(self, now: float) -> None:
        self.stream.write("\r" + self.line(now) + "\033[K")
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        """Draw the last state and end the line (nothing when disabled)."""
        if self.enabled:
            self._draw(time.monotonic())
            self.stream.write("\n")
            self.stream.flush()
