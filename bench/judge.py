"""Reward-model judge throughput: `trainer.judge` ranking K=4 responses per prompt on CPU.

The judge is a MiniLM-shaped random encoder (BERT, hidden 384, 6 layers, 12 heads,
intermediate 1536, one-label head) built locally, saved and loaded with from_pretrained, as a
user's reward model is, then (`--train-rankings`, default 200) trained as a reward model with
`python -m trainer rm` on rankings of the same kind as the items, so its scores mean something.
The items are bench/common.py's rankings (8-word prompts, 12-word responses plus marker words;
more markers is better, so `best_right` is the share whose best response the judge found).
First a sweep: the job on `--sweep-prompts` prompts at each
`--batch-size` (`--repeats` interleaved runs each; the fastest counts, as a shared machine only
ever slows a run down); then the whole `--prompts` file at the fastest batch size, once per
`--precision`, each one's rankings compared with the first precision's (`same_ranking`,
`same_best`: what the faster arithmetic changes). Throughput is the judge's own
(summary.json: time in the judge, model loading and file writes excluded); `wall_s` is the
whole call. Target: ≥ 50 prompts/s.

    .venv/bin/python bench/judge.py                         # 10k prompts, K = 4
    nice -n 10 .venv/bin/python bench/judge.py --prompts 2000 --sweep-prompts 400
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import fastest, rankings, save, table, write_jsonl  # noqa: E402
from trainer.tiny import build_tiny_encoder  # noqa: E402

TARGET = 50.0
"""Prompts per second the reward-model judge should reach on CPU."""


def items_of(n: int, k: int, seed: int) -> list[dict]:
    """n items of k responses each, in the judge's input format (shuffled: best is not first)."""
    out, r = [], random.Random(seed)
    for i, rec in enumerate(rankings(n, k, seed)):
        order = r.sample(range(k), k)
        out.append(
            {
                "id": f"p{i}",
                "prompt": rec["prompt"],
                "responses": [{"id": f"r{j}", "text": rec["responses"][j]} for j in order],
            }
        )
    return out


def run_job(
    model: str, items_file: str, out: Path, batch_size: int, precision: str, threads: int
) -> dict:
    """`python -m trainer judge --config run.json` (a process of its own, as a user starts it:
    accelerate fixes the precision once per process); its throughput from summary.json."""
    out.mkdir(parents=True)
    config = {
        "model": model,
        "train_file": items_file,
        "output_dir": str(out),
        "batch_size": batch_size,
        "mixed_precision": precision,
    }
    (out / "run.json").write_text(json.dumps(config))
    env = {**os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    cmd = [sys.executable, "-m", "trainer", "judge", "--config", str(out / "run.json")]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - t0
    run = json.loads((out / "summary.json").read_text())["this_run"]
    return {
        "batch_size": batch_size,
        "precision": precision,
        "prompts": run["items"],
        "seconds": run["seconds"],
        "prompts_per_s": run["items"] / run["seconds"],
        "wall_s": wall,
    }


def train_judge(model: str, root: Path, n: int, k: int, seed: int, threads: int) -> str:
    """A reward model trained as a user trains one (`python -m trainer rm --config`), on `n`
    rankings where more marker words is better: a judge whose scores mean something, so that
    what bf16 changes is measured against real margins, not a random model's."""
    out = root / "trained"
    out.mkdir()
    config = {
        "model": model,
        "train_file": write_jsonl(root / "train.jsonl", rankings(n, k, seed + 1)),
        "output_dir": str(out),
        "num_epochs": 1,
        "batch_size": 8,
        "learning_rate": 3e-4,
        "max_length": 64,
        "eval_fraction": 0.0,
    }
    (out / "run.json").write_text(json.dumps(config))
    env = {**os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    cmd = [sys.executable, "-m", "trainer", "rm", "--config", str(out / "run.json")]
    subprocess.run(cmd, check=True, capture_output=True, env=env, cwd=ROOT)
    return str(out)


def rankings_of(path: Path) -> dict[str, list]:
    """Item id -> the judge's ranking (response ids, best first) from a judgments.jsonl."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {str(row["id"]): row["ranking"] for row in rows}


def agreement(ranked: dict[str, list], reference: dict[str, list]) -> dict[str, float]:
    """Share of items ranked exactly alike, and with the same best response, as `reference`."""
    ids = [i for i in reference if i in ranked]
    same = sum(ranked[i] == reference[i] for i in ids)
    top = sum(ranked[i][:1] == reference[i][:1] for i in ids)
    n = max(len(ids), 1)
    # items_of keeps each response's best-first index in its id: "r0" is the best.
    right = sum(ranked[i][:1] == ["r0"] for i in ids)
    return {"same_ranking": same / n, "same_best": top / n, "best_right": right / n}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--prompts", type=int, default=10_000)
    p.add_argument("--k", type=int, default=4, help="responses per prompt")
    p.add_argument("--sweep-prompts", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=2, help="runs per batch size in the sweep")
    p.add_argument("--batch-size", type=int, nargs="+", default=[8, 16, 32, 64, 128])
    p.add_argument("--precision", nargs="+", default=["no", "bf16"], help="no | bf16 | fp16")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--train-rankings",
        type=int,
        default=200,
        help="rankings the judge is trained on first (0: judge with the random model)",
    )
    args = p.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = str(
            build_tiny_encoder(
                root / "minilm", hidden_size=384, layers=6, heads=12, intermediate_size=1536
            )
        )
        if args.train_rankings:
            t0 = time.perf_counter()
            model = train_judge(model, root, args.train_rankings, args.k, args.seed, args.threads)
            took = time.perf_counter() - t0
            print(f"judge trained on {args.train_rankings} rankings in {took:.0f} s", flush=True)
        items = items_of(args.prompts, args.k, args.seed)
        full = write_jsonl(root / "items.jsonl", items)
        sweep = write_jsonl(root / "sweep.jsonl", items[: args.sweep_prompts])
        # 1. The batch size, at full precision: interleaved repeats, the fastest of each counts.
        runs: dict[int, list[dict]] = {bs: [] for bs in args.batch_size}
        for rep in range(args.repeats):
            for bs in args.batch_size:
                out = root / f"sweep-{bs}-{rep}"
                runs[bs].append(run_job(model, sweep, out, bs, "no", args.threads))
        rows += [{"phase": "sweep", **fastest(runs[bs], "prompts_per_s")} for bs in runs]
        best = max(rows, key=lambda r: r["prompts_per_s"])
        # 2. Every prompt at that batch size, once per precision; each precision's rankings
        # against the first's (fp32 by default): what the faster arithmetic changes.
        reference: dict[str, list] | None = None
        for precision in args.precision:
            out = root / f"full-{precision}"
            got = run_job(model, full, out, best["batch_size"], precision, args.threads)
            ranked = rankings_of(out / "judgments.jsonl")
            reference = reference or ranked
            rows.append({"phase": "full", **got, **agreement(ranked, reference)})
    for r in rows:
        r["responses_per_s"] = r["prompts_per_s"] * args.k
    columns = ["phase", "batch_size", "precision", "prompts", "seconds"]
    print(
        table(
            rows,
            [
                *columns,
                "prompts_per_s",
                "responses_per_s",
                "same_ranking",
                "same_best",
                "best_right",
                "wall_s",
            ],
        )
    )
    full_rows = [r for r in rows if r["phase"] == "full"]
    print(f"\nfastest batch size: {best['batch_size']}; every prompt, target ≥ {TARGET:g}/s:")
    for r in full_rows:
        verdict = "met" if r["prompts_per_s"] >= TARGET else "missed"
        print(f"  {r['precision']}: {r['prompts_per_s']:.1f} prompts/s, {verdict}")
    path = save(
        "judge",
        {
            "args": vars(args),
            "device": "cuda" if torch.cuda.is_available() else "cpu",
            "threads": args.threads or torch.get_num_threads(),
            "model": "BERT hidden 384, 6 layers, 12 heads, intermediate 1536, random init"
            + (f", trained on {args.train_rankings} rankings" if args.train_rankings else ""),
            "best_batch_size": best["batch_size"],
            "target_prompts_per_s": TARGET,
            "rows": rows,
        },
    )
    print(f"\nwritten: {path}")


if __name__ == "__main__":
    main()
