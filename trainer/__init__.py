"""rlhf-studio's trainer: SFT, reward model, PPO and DPO on Hugging Face models.

A library plus the CLI `python -m trainer sft|rm|ppo|dpo|generate|judge --config run.json`. It
knows files, configs and a metrics file; it never imports the web app (`app`).
"""

EXIT_OK = 0
"""The run finished: the final model and summary.json are in the output directory."""

EXIT_PREEMPTED = 75
"""SIGTERM arrived: a checkpoint was saved; start the same command again to resume (EX_TEMPFAIL)."""

EXIT_USAGE = 2
"""Bad command line, config or data file; the message on stderr says what and where."""

EXIT_DIVERGED = 3
"""The loss stayed NaN/inf for more than `nan_patience` steps; stderr says at which step."""

EXIT_FENCED = 4
"""A newer attempt owns the output directory (or its supervisor is gone): stopped unwritten."""

EXIT_UNAVAILABLE = 69
"""A service the run needs (a judge's endpoint) kept failing after its retries; stderr names the
cause. What was done is kept: start the same command again to continue (EX_UNAVAILABLE)."""

# How a supervisor (the worker) fences a run directory; see trainer/fencing.py.
ATTEMPT_ENV = "TRAINER_ATTEMPT"
"""Environment: this process's attempt number; output_dir/ATTEMPT_FILE holds the newest one."""
ATTEMPT_FILE = "attempt"
PREEMPTED_FILE = "preempted"
"""output_dir/PREEMPTED_FILE holds the attempt number of a run stopped by SIGTERM after its
checkpoint: a launcher (accelerate) does not pass the ranks' exit code 75 through."""
SUPERVISOR_ENV = "TRAINER_SUPERVISOR_LOCK"
"""Environment: a file the supervisor holds an exclusive flock on for as long as it lives."""
