"""Benchmark of the aggregation algorithms on synthetic data.

Run from the repository root:  .venv/bin/python bench/aggregate.py
Prints a table and writes bench/results/aggregate.json; each timing is the best of --repeat
(default 3) runs, the load average is recorded with it. Targets (2 CPU cores):
Bradley-Terry + 1000 bootstrap rounds over 1M comparisons among 100 models < 5 s;
consensus over 100k prompts x 3 labelers x K=4 < 10 s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from app.aggregation import (
    ELO_PER_NAT,
    Comparisons,
    bradley_terry,
    consensus_pairs,
    consensus_ranking,
    elo_ratings,
    leaderboard,
)

RESULTS = Path(__file__).parent / "results" / "aggregate.json"


REPEAT = 3


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Best wall-clock seconds of REPEAT calls (filters out noise from other processes)."""
    best, result = float("inf"), None
    for _ in range(REPEAT):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def synthetic_outcomes(
    models: int, comparisons: int, seed: int
) -> tuple[list[tuple[str, str, str]], dict[str, float]]:
    """Bradley-Terry outcomes (10% ties) between random model pairs, and the true ratings."""
    rng = np.random.default_rng(seed)
    theta = rng.normal(0.0, 0.8, models)
    names = [f"model-{i:03d}" for i in range(models)]
    a = rng.integers(0, models, comparisons)
    b = (a + rng.integers(1, models, comparisons)) % models
    p_a = 1 / (1 + np.exp(theta[b] - theta[a]))
    tie = rng.random(comparisons) < 0.1
    win = rng.random(comparisons) < (p_a - 0.05) / 0.9  # keeps a's expected score = p_a
    outcome = np.where(tie, "tie", np.where(win, "a", "b"))
    rows = list(zip([names[i] for i in a], [names[i] for i in b], outcome.tolist(), strict=True))
    truth = 1000 + ELO_PER_NAT * (theta - theta.mean())
    return rows, dict(zip(names, truth.tolist(), strict=True))


def synthetic_rankings(prompts: int, labelers: int, k: int, seed: int) -> list[list[list[int]]]:
    """For each prompt, `labelers` noisy rankings of its k responses (ids unique per prompt)."""
    rng = random.Random(seed)
    data = []
    for prompt in range(prompts):
        quality = [(prompt * k + i, rng.random()) for i in range(k)]
        data.append(
            [
                [rid for rid, q in sorted(quality, key=lambda x: -(x[1] + rng.gauss(0, 0.3)))]
                for _ in range(labelers)
            ]
        )
    return data


def check_against_choix(comparisons: Comparisons, ours: dict[str, float]) -> float | None:
    """Largest |rating difference| between our BT fit and choix's ILSR on the same win matrix."""
    try:
        import choix  # type: ignore[import-untyped]
    except ImportError:
        return None
    params = choix.ilsr_pairwise_dense(comparisons.win_matrix(), alpha=0.0, tol=1e-10)
    theirs = 1000 + ELO_PER_NAT * (params - params.mean())  # same scale, same mean anchor
    return float(max(abs(ours[m] - t) for m, t in zip(comparisons.models, theirs, strict=True)))


# --- HOOK: snapshot export ---------------------------------------------------------------------
# To be filled in by the service engineer: export a dataset snapshot of 1M annotation rows and
# return the wall-clock seconds. Returning None prints "not measured" (never a made-up number).
def measure_snapshot_export(rows: int = 1_000_000) -> float | None:
    """Seconds to export a snapshot of `rows` annotation rows; None until implemented."""
    return None


# ------------------------------------------------------------------------------------------------


def main() -> None:
    """Run all measurements, print the table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--comparisons", type=int, default=1_000_000)
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=1000)
    parser.add_argument("--prompts", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3, help="timings are the best of N runs")
    args = parser.parse_args()
    global REPEAT
    REPEAT = args.repeat

    rows, truth = synthetic_outcomes(args.models, args.comparisons, args.seed)
    encode_s, comparisons = timed(lambda: Comparisons.from_outcomes(rows))
    fit_s, board = timed(lambda: leaderboard(comparisons, rounds=args.rounds, seed=args.seed))
    elo_s, _ = timed(lambda: elo_ratings(comparisons))
    point = bradley_terry(comparisons)
    truth_error = max(abs(point[m] - truth[m]) for m in comparisons.models)
    choix_diff = check_against_choix(comparisons, point)

    data = synthetic_rankings(args.prompts, 3, 4, args.seed)
    consensus_s, results = timed(lambda: [consensus_ranking(r) for r in data])
    borda_s, _ = timed(lambda: [consensus_ranking(r, method="borda") for r in data])
    pairs_s, _ = timed(lambda: [consensus_pairs(c) for c in results])
    snapshot_s = measure_snapshot_export()

    lb = f"{args.comparisons:,} comparisons, {args.models} models"
    cs = f"{args.prompts:,} prompts x 3 labelers x K=4"
    table: list[tuple[str, float | None, str]] = [
        (f"encode outcomes ({lb})", encode_s, "s"),
        (f"BT + {args.rounds} bootstrap rounds + ranks ({lb})", fit_s, "s"),
        ("  total, encode + leaderboard (target < 5 s)", encode_s + fit_s, "s"),
        (f"online Elo ({lb})", elo_s, "s"),
        (f"consensus, ranked pairs ({cs}) (target < 10 s)", consensus_s, "s"),
        (f"consensus, Borda ({cs})", borda_s, "s"),
        (f"consensus pairs, C(4,2) per prompt ({args.prompts:,} prompts)", pairs_s, "s"),
        ("BT vs choix.ilsr_pairwise_dense, max |diff|", choix_diff, "rating pts"),
        ("BT vs true synthetic ratings, max |diff|", truth_error, "rating pts"),
        ("snapshot export, 1M annotation rows (hook)", snapshot_s, "s"),
    ]
    width = max(len(name) for name, _, _ in table)
    print(f"{'measurement':<{width}}  {'value':>12}  unit")
    for name, value, unit in table:
        if value is None:
            shown = f"{'not measured':>12}"
        else:
            shown = f"{value:12.3f}" if unit == "s" else f"{value:12.2e}"
        print(f"{name:<{width}}  {shown}  {unit}")
    if choix_diff is None:
        print("choix comparison skipped: choix is not installed (.venv/bin/pip install choix)")
    print(f"best of {REPEAT} runs; load average (1 min) now {os.getloadavg()[0]:.2f}")
    print(f"top 3: {[(r.model, round(r.rating, 1), r.rank) for r in board[:3]]}")

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_average_1m": os.getloadavg()[0],
        },
        "parameters": vars(args),
        "leaderboard": {
            "encode_s": encode_s,
            "bt_bootstrap_ranks_s": fit_s,
            "total_s": encode_s + fit_s,
            "online_elo_s": elo_s,
            "choix_max_abs_diff": choix_diff,
            "truth_max_abs_diff": truth_error,
        },
        "consensus": {"ranked_pairs_s": consensus_s, "borda_s": borda_s, "pairs_s": pairs_s},
        "snapshot_export": {"seconds": snapshot_s, "measured": snapshot_s is not None},
    }
    RESULTS.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
