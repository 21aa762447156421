"""Why a run's attempt ended, in one line, and whether a retry can get further.

A run's `error` is that line (the cause) followed by the tail of its log. A retry is offered where
something outside the run was to blame (a lost worker, a killed trainer, memory taken by others)
and not where the same config and model would fail the same way (a refused config or data file,
a model that is not there or does not fit, a loss that turned NaN).
"""

import re
import signal

from trainer import EXIT_DIVERGED, EXIT_FENCED, EXIT_PREEMPTED, EXIT_UNAVAILABLE, EXIT_USAGE

EXCEPTION = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt)(:\s.*)?$")
"""The last line of a Python traceback: `module.SomeError: what happened`."""
RAY_PREFIX = re.compile(r"^\(\w+ pid=\d+(, ip=[^)]*)?\) ")
"""What Ray puts before each line a worker of a Ray cluster printed: `(RayTrainWorker pid=7) `."""
LAUNCHER_ERRORS = ("subprocess.CalledProcessError",)
"""Exceptions of a launcher (accelerate) that only say its child failed."""
OOM = ("out of memory", "OutOfMemoryError")
MODEL_ERRORS = (
    "is not a local folder and is not a valid model identifier",
    "does not appear to have a file named",
    "Can't load",
    "Unrecognized configuration class",
    "Unrecognized model",
)
"""What transformers says when a model cannot be loaded from what the run names."""
NO_RETRIES_LEFT = "no retries left"


def _lines(tail: str) -> list[str]:
    """The log's lines as the trainer printed them (without a Ray worker's prefix)."""
    return [RAY_PREFIX.sub("", line) for line in tail.splitlines()]


def exception_line(tail: str) -> str | None:
    """The trainer's own exception in a log tail (the last one a launcher did not raise)."""
    found = None
    for line in _lines(tail):
        line = line.strip()
        if EXCEPTION.match(line) and not line.startswith(LAUNCHER_ERRORS):
            found = line
    return found


def describe_exit(code: int, tail: str) -> str:
    """One line on how the trainer ended: its own `error:` line, or its exception's last line."""
    if code in (EXIT_DIVERGED, EXIT_USAGE, EXIT_FENCED, EXIT_UNAVAILABLE):
        said = [line[len("error: ") :] for line in _lines(tail) if line.startswith("error: ")]
        if said:
            return said[-1]
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else "?"
        hint = " (out of memory?)" if -code == signal.SIGKILL else ""
        return f"the trainer was killed by signal {-code} {name}{hint}"
    if code == EXIT_PREEMPTED:
        return "the trainer was stopped (SIGTERM) after saving a checkpoint"
    return exception_line(tail) or f"the trainer exited with status {code}"


def cause_of(error: str | None) -> str | None:
    """The one-line cause of a recorded error."""
    return error.partition("\n")[0] if error else None


def log_of(error: str | None) -> str:
    """The log tail recorded under the cause."""
    return error.partition("\n")[2] if error else ""


def retryable(status: str, exit_code: int | None, error: str | None) -> bool:
    """Whether Retry is offered: a cancelled run, or a failure a new attempt can get past."""
    if status == "cancelled":
        return True
    if status != "failed":
        return False
    cause = cause_of(error) or ""
    if exit_code in (EXIT_USAGE, EXIT_DIVERGED):
        return False  # the config, data or model was refused, or the loss diverged
    if NO_RETRIES_LEFT in cause or any(marker in cause for marker in OOM):
        return True  # a transient cause that outlasted the automatic retries; memory
    if any(marker in cause for marker in MODEL_ERRORS):
        return False
    # The worker failed on it without retrying (a transient cause is retried automatically and
    # ends "no retries left"); a trainer that crashed otherwise may have met a passing fault.
    return exit_code is not None
