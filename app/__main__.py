"""`python -m app …` is the `rlhf` command."""

from app.cli import main

main()
