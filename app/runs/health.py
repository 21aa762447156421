"""What a run's numbers say about it: a loss that never moved, and whether it was evaluated."""

import math
from typing import Any

from sqlalchemy.orm import Session

from app.runs import service
from app.runs.models import TrainingRun

WARMUP_FRACTION = 0.2
"""Share of a run's steps (max_steps) after which an unmoved loss is reported."""
MIN_STEPS = 5
"""No verdict on fewer recorded steps than this (or 10 when max_steps is not set)."""
FLAT_TOLERANCE = 0.01
"""A loss is flat while its recent mean is within this share of its first value."""


def loss_flat_warning(losses: list[float], max_steps: int | None) -> str | None:
    """The warning for a loss that has not moved from its first value after the warm-up."""
    n = len(losses)
    wanted = max(MIN_STEPS, math.ceil(WARMUP_FRACTION * max_steps)) if max_steps else 2 * MIN_STEPS
    if n < wanted:
        return None
    start = losses[0]
    recent = losses[-max(3, n // 4) :]
    if abs(sum(recent) / len(recent) - start) > max(FLAT_TOLERANCE * abs(start), 2e-3):
        return None
    if abs(start - math.log(2)) < 0.01:  # a pairwise loss that still cannot tell the pair apart
        return (
            f"loss flat at ln 2 ({start:.4f}) for {n} steps — learning rate too low "
            "or labels inconsistent?"
        )
    return f"loss flat at {start:.4g} for {n} steps — learning rate too low?"


def warnings(*, session: Session, run: TrainingRun) -> list[str]:
    """Warnings about a run's training so far (empty when nothing looks wrong)."""
    rows = service.metrics(session=session, run_id=run.id)
    losses = [
        float(r.values["loss"]) for r in rows if isinstance(r.values.get("loss"), int | float)
    ]
    try:
        max_steps = int(run.config.get("max_steps", -1))
    except (TypeError, ValueError):
        max_steps = -1
    flat = loss_flat_warning(losses, max_steps if max_steps > 0 else None)
    return [flat] if flat else []


def evaluation(summary: dict[str, Any]) -> dict[str, Any]:
    """The held-out metrics of a finished run's summary ({} when nothing was held out)."""
    return {k: v for k, v in summary.items() if k.startswith("eval_")}


def distribution(config: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
    """How a run is spread over processes: its strategy and world size (from the summary of a
    finished run, else from its config) and, once it ended, each rank's peak memory in MiB."""
    try:
        planned = int(config.get("processes", 1)) * int(config.get("machines", 1))
    except (TypeError, ValueError):
        planned = 1
    out: dict[str, Any] = {
        "strategy": summary.get("strategy", config.get("strategy", "ddp")),
        "world_size": summary.get("world_size", planned),
    }
    if summary.get("peak_memory_mb"):
        out["peak_memory_mb"] = summary["peak_memory_mb"]
    return out
