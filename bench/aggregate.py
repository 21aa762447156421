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
SNAPSHOT_RESULTS = Path(__file__).parent / "results" / "snapshot_export.json"


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
def build_annotations(url: str, rows: int, labelers: int = 3, k: int = 4) -> int:
    """Fill a migrated database with one ranking project of `rows` annotations (bulk Core
    inserts): rows / labelers prompts with k responses each; returns the project id."""
    from sqlalchemy import create_engine, insert

    from app.auth.models import User
    from app.base import utcnow
    from app.labeling.models import Annotation
    from app.projects.models import Project, Prompt, Response

    rng = random.Random(0)
    now = utcnow()
    prompts = -(-rows // labelers)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            insert(User),
            [
                {"id": u, "email": f"bench{u}@example.com", "role": "labeler", "created_at": now}
                for u in range(1, labelers + 1)
            ],
        )
        project_id = conn.execute(
            insert(Project).values(name="bench", kind="ranking", k=k, created_at=now)
        ).inserted_primary_key[0]
        annotation_id = 0
        for first in range(0, prompts, 20_000):
            ids = range(first + 1, min(first + 20_000, prompts) + 1)
            conn.execute(
                insert(Prompt),
                [
                    {
                        "id": p,
                        "project_id": project_id,
                        "external_id": f"p{p}",
                        "messages": [{"role": "user", "content": f"question {p}?"}],
                        "meta": {},
                        "created_at": now,
                    }
                    for p in ids
                ],
            )
            conn.execute(
                insert(Response),
                [
                    {
                        "id": (p - 1) * k + j + 1,
                        "prompt_id": p,
                        "position": j,
                        "text": f"answer {j} to question {p}",
                        "model": f"model-{j}",
                        "meta": {},
                    }
                    for p in ids
                    for j in range(k)
                ],
            )
            batch = []
            for p in ids:
                for user in range(1, labelers + 1):
                    if annotation_id >= rows:
                        break
                    annotation_id += 1
                    ranking = [(p - 1) * k + j + 1 for j in range(k)]
                    rng.shuffle(ranking)
                    batch.append(
                        {
                            "id": annotation_id,
                            "project_id": project_id,
                            "prompt_id": p,
                            "user_id": user,
                            "kind": "ranking",
                            "payload": {"ranking": ranking},
                            "flags": {},
                            "source": "labeler",
                            "created_at": now,
                        }
                    )
            conn.execute(insert(Annotation), batch)
    engine.dispose()
    return project_id


def _export_in_child(url: str, artifacts: str, project_id: int, params: dict, queue: Any) -> None:
    """Run one snapshot export in a fresh process: its time, rows and peak-memory growth."""
    import resource

    os.environ.update(RLHF_DATABASE_URL=url, RLHF_ARTIFACTS_DIR=artifacts, RLHF_DEV="1")
    from app.datasets import service
    from app.datasets.schemas import SnapshotCreate
    from app.db import get_sessionmaker
    from app.projects import service as project_service

    with get_sessionmaker()() as session:
        project = project_service.get(session=session, project_id=project_id)
        data = SnapshotCreate(**params)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.perf_counter()
        snapshot, _ = service.create_snapshot(session=session, project=project, data=data)
        seconds = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        out = snapshot.train_rows + snapshot.test_rows
    queue.put({"seconds": seconds, "rows_out": out, "rss_before_mb": before / 1024,
               "rss_peak_mb": after / 1024})  # fmt: skip


def measure_snapshot_export(
    rows: int = 1_000_000, database_url: str | None = None
) -> dict[str, Any] | None:
    """Export snapshots of a project with `rows` ranking annotations; seconds, rows/s, memory.

    Builds a fresh SQLite database (or uses an empty PostgreSQL database at `database_url`),
    then times, each in a fresh process, `rankings` by consensus (rows/labelers output rows)
    and `rankings --method all` (one output row per annotation).
    """
    import multiprocessing
    import tempfile

    from alembic import command

    from app.cli import alembic_config
    from app.config import get_settings

    def migrate(url: str) -> None:
        os.environ.update(RLHF_DATABASE_URL=url, RLHF_DEV="1")
        get_settings.cache_clear()
        command.upgrade(alembic_config(), "head")

    with tempfile.TemporaryDirectory(prefix="rlhf-bench-") as tmp:
        url = database_url or f"sqlite:///{tmp}/bench.db"
        migrate(url)
        start = time.perf_counter()
        project_id = build_annotations(url, rows)
        build_s = time.perf_counter() - start
        results: dict[str, Any] = {"rows": rows, "build_s": build_s}
        context = multiprocessing.get_context("spawn")
        for name, params in (
            ("consensus", {"kind": "rankings"}),
            ("all", {"kind": "rankings", "method": "all"}),
        ):
            queue = context.Queue()
            child = context.Process(
                target=_export_in_child, args=(url, f"{tmp}/artifacts", project_id, params, queue)
            )
            child.start()
            result = queue.get()
            child.join()
            result["annotations_per_s"] = rows / result["seconds"]
            results[name] = result
        return results


def print_snapshot_table(snapshot: dict[str, Any] | None) -> None:
    """The snapshot-export rows (target: >= 50k annotation rows/s in bounded memory)."""
    if snapshot is None:
        print("snapshot export: not measured")
        return
    n = f"{snapshot['rows']:,} ranking annotations, 3 labelers x K=4"
    print(f"\nsnapshot export ({n}); database built in {snapshot['build_s']:.1f} s")
    print(f"{'snapshot':<28} {'seconds':>8} {'rows out':>10} {'annotations/s':>14} "
          f"{'RSS before':>11} {'RSS peak':>9}")  # fmt: skip
    for name in ("consensus", "all"):
        r = snapshot[name]
        label = "rankings (ranked pairs)" if name == "consensus" else "rankings --method all"
        print(
            f"{label:<28} {r['seconds']:8.2f} {r['rows_out']:>10,} "
            f"{r['annotations_per_s']:>14,.0f} {r['rss_before_mb']:>9.0f}MB "
            f"{r['rss_peak_mb']:>7.0f}MB"
        )


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
    parser.add_argument("--snapshot-rows", type=int, default=1_000_000)
    parser.add_argument(
        "--database-url", help="empty PostgreSQL database for the snapshot export (default SQLite)"
    )
    parser.add_argument("--only", choices=("all", "algorithms", "snapshot"), default="all")
    args = parser.parse_args()
    global REPEAT
    REPEAT = args.repeat

    snapshot = None
    if args.only != "algorithms":
        snapshot = measure_snapshot_export(args.snapshot_rows, args.database_url)
    if args.only == "snapshot":
        print_snapshot_table(snapshot)
        SNAPSHOT_RESULTS.parent.mkdir(parents=True, exist_ok=True)
        SNAPSHOT_RESULTS.write_text(json.dumps({"parameters": vars(args), **snapshot}, indent=2))
        print(f"wrote {SNAPSHOT_RESULTS}")
        return

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
    print_snapshot_table(snapshot)

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
        "snapshot_export": snapshot or {"measured": False},
    }
    RESULTS.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
