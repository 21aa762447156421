"""rlhf-studio's trainer: SFT, reward model, PPO and DPO on Hugging Face models.

A library plus the CLI `python -m trainer sft|rm|ppo|dpo --config run.json`. It knows files,
configs and a metrics file; it never imports the web app (`app`).
"""

EXIT_OK = 0
"""The run finished: the final model and summary.json are in the output directory."""

EXIT_PREEMPTED = 75
"""SIGTERM arrived: a checkpoint was saved; start the same command again to resume (EX_TEMPFAIL)."""

EXIT_USAGE = 2
"""Bad command line, config or data file; the message on stderr says what and where."""
