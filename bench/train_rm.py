"""Reward-model throughput and accuracy: our K-wise trainer vs TRL's RewardTrainer on pairs.

Both train on the same rankings for the same number of epochs with the same number of sequences
per optimizer step (ours: 32/K rankings; TRL: 16 pairs). TRL gets the K(K−1)/2 pairs of each
ranking (the usual expansion), with the exact texts our trainer scores. Throughput counts
rankings per second of training loop; accuracy is pairwise accuracy over all pairs of held-out
rankings, measured the same way for both. Each trainer runs `--repeats` times, interleaved, and
its fastest run counts: on a shared machine neighbours only ever slow a run down.

    .venv-bench/bin/python bench/train_rm.py                   # MiniLM backbone if installed
    .venv-bench/bin/python bench/train_rm.py --backbone tiny --train-rankings 64
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import metrics_rows, minilm_path, rankings, save, table, write_jsonl  # noqa: E402
from trainer.configs import RewardConfig  # noqa: E402
from trainer.data import render_prompt  # noqa: E402
from trainer.factories import load_tokenizer  # noqa: E402
from trainer.reward import RewardModel, train  # noqa: E402
from trainer.tiny import build_tiny_encoder  # noqa: E402


@torch.no_grad()
def pairwise_accuracy(model_dir: str, records: list[dict], max_length: int) -> float:
    """Share of all C(K,2) held-out pairs that the model orders correctly.

    Both sides are scored by the product's RewardModel: the model's own head and recorded pooling
    (TRL's model has none recorded, so it is read through its classification head as TRL does).
    """
    rm = RewardModel(model_dir, max_length=max_length)
    correct = total = 0
    for rec in records:
        r = rm.score_responses([rec["prompt"]] * len(rec["responses"]), rec["responses"])
        for i, j in itertools.combinations(range(len(r)), 2):
            correct += int(r[i] > r[j])
            total += 1
    return correct / total


def demo_rankings() -> list[dict]:
    """The demo's 30 hand-written prompts, responses ranked by the quality of their writer."""
    order = ["studio-large-v2", "studio-base-v1", "studio-small-v1", "studio-tiny-v0"]
    path = Path(__file__).resolve().parents[1] / "app" / "demo_data" / "ranking.jsonl"
    out = []
    for line in path.read_text().splitlines():
        row = json.loads(line)
        text = {r["model"]: r["text"] for r in row["responses"]}
        out.append({"prompt": row["prompt"], "responses": [text[m] for m in order]})
    return out


def run_ours(backbone: str, train_file: str, eval_recs: list, k: int, args, out: Path) -> dict:
    """Train with trainer.reward; throughput from the loop's step times."""
    cfg = RewardConfig(
        model=backbone,
        train_file=train_file,
        eval_fraction=0.0,
        output_dir=str(out),
        num_epochs=args.epochs,
        batch_size=max(1, args.seqs_per_step // k),
        learning_rate=args.lr,
        max_length=args.max_length,
        save_every=10**9,
        normalize=False,
        warmup_ratio=0.1,
        pooling=args.pooling,
    )
    t0 = time.perf_counter()
    train(cfg)
    wall = time.perf_counter() - t0
    rows = metrics_rows(out)
    loop_s = sum(cfg.batch_size / r["rankings_per_s"] for r in rows)
    n = len(rows) * cfg.batch_size
    return {
        "trainer": "ours (K-wise)",
        "K": k,
        "steps": len(rows),
        "forward_seqs": n * k,
        "rankings_per_s": n / loop_s,
        "wall_s": wall,
        "accuracy": pairwise_accuracy(str(out), eval_recs, args.max_length),
    }


def run_trl(backbone: str, train_recs: list, eval_recs: list, k: int, args, out: Path) -> dict:
    """Train TRL's RewardTrainer on the expanded pairs (same texts as ours)."""
    from datasets import Dataset
    from trl import RewardConfig as TRLRewardConfig
    from trl import RewardTrainer

    tok = load_tokenizer(backbone)
    pairs = []
    for rec in train_recs:
        head = render_prompt(tok, rec["prompt"])
        for i, j in itertools.combinations(range(k), 2):  # i is ranked above j
            pairs.append(
                {"chosen": head + rec["responses"][i], "rejected": head + rec["responses"][j]}
            )
    targs = TRLRewardConfig(
        output_dir=str(out),
        per_device_train_batch_size=max(1, args.seqs_per_step // 2),
        num_train_epochs=args.epochs,
        learning_rate=args.lr,
        max_length=args.max_length,
        warmup_steps=0.1,  # transformers 5: a float < 1 is a ratio
        lr_scheduler_type="cosine",
        report_to="none",
        save_strategy="no",
        logging_steps=10**6,
        use_cpu=not torch.cuda.is_available(),
        seed=42,
        # Same numerics as ours: fp32, no activation checkpointing (TRL defaults to both on).
        bf16=False,
        gradient_checkpointing=False,
        # TRL appends an EOS text to every response and fails on tokenizers without one (BERT
        # style): give it the SEP token then (one extra token per sequence on TRL's side).
        eos_token=tok.eos_token or tok.sep_token,
    )
    trainer = RewardTrainer(
        model=backbone, args=targs, train_dataset=Dataset.from_list(pairs), processing_class=tok
    )
    t0 = time.perf_counter()
    result = trainer.train()
    wall = time.perf_counter() - t0
    trainer.save_model(str(out))
    tok.save_pretrained(str(out))
    return {
        "trainer": "TRL RewardTrainer (pairs)",
        "K": k,
        "steps": result.global_step,
        "forward_seqs": 2 * len(pairs) * int(args.epochs),
        "rankings_per_s": len(train_recs) * args.epochs / result.metrics["train_runtime"],
        "wall_s": wall,
        "accuracy": pairwise_accuracy(str(out), eval_recs, args.max_length),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--backbone", default="auto", help="auto | minilm | tiny | a model directory")
    p.add_argument("--k", type=int, nargs="+", default=[4, 8])
    p.add_argument("--train-rankings", type=int, default=32)
    p.add_argument("--eval-rankings", type=int, default=64)
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--seqs-per-step", type=int, default=32, help="sequences per optimizer step")
    p.add_argument("--repeats", type=int, default=2, help="runs per trainer; the fastest counts")
    p.add_argument("--max-length", type=int, default=128, help="TRL drops longer pairs")
    p.add_argument("--pooling", default="auto", help="ours: auto | last | cls | mean")
    p.add_argument(
        "--data",
        default="synthetic",
        help="synthetic (marker words) | demo (the demo's 30 written rankings, by model quality;"
        " the first --train-rankings train, the rest are held out)",
    )
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--skip-trl", action="store_true")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    work = Path(tempfile.mkdtemp(prefix="bench-rm-"))
    backbone = args.backbone
    if backbone in ("auto", "minilm"):
        backbone = minilm_path() or ("tiny" if args.backbone == "auto" else sys.exit("no MiniLM"))
    if backbone == "tiny":
        backbone = str(build_tiny_encoder(work / "tiny-encoder"))
    print(f"backbone: {backbone}", flush=True)

    def best(runs: list[dict]) -> dict:
        """The fastest of the repeats (a shared machine only ever slows a run down)."""
        top = max(runs, key=lambda x: x["rankings_per_s"])
        return {**top, "repeats_rankings_per_s": [x["rankings_per_s"] for x in runs]}

    results = []
    if args.data == "demo":  # real text: K is that of the demo's rankings
        args.k = [4]
    for k in args.k:
        if args.data == "demo":
            recs = demo_rankings()
            train_recs, eval_recs = recs[: args.train_rankings], recs[args.train_rankings :]
        else:
            train_recs = rankings(args.train_rankings, k, seed=1)
            eval_recs = rankings(args.eval_rankings, k, seed=2)
        train_file = write_jsonl(work / f"k{k}" / "train.jsonl", train_recs)
        ours_runs, trl_runs = [], []
        for rep in range(args.repeats):  # interleaved, so a busy spell hits both sides
            out = work / f"k{k}" / f"r{rep}"
            ours_runs.append(run_ours(backbone, train_file, eval_recs, k, args, out / "ours"))
            print(table(ours_runs[-1:], list(ours_runs[-1])), flush=True)
            if not args.skip_trl:
                trl_runs.append(run_trl(backbone, train_recs, eval_recs, k, args, out / "trl"))
                print(table(trl_runs[-1:], list(trl_runs[-1])), flush=True)
        results.append(best(ours_runs))
        if trl_runs:
            results.append(best(trl_runs))
            speedup = results[-2]["rankings_per_s"] / results[-1]["rankings_per_s"]
            results[-2]["speedup_vs_trl"] = speedup
    cols = ["trainer", "K", "steps", "forward_seqs", "rankings_per_s", "wall_s", "accuracy"]
    cols += ["speedup_vs_trl"] if not args.skip_trl else []
    print(table(results, cols))
    path = save("train_rm", {"backbone": backbone, "args": vars(args), "results": results})
    print(f"results: {path}")
    print(f"load average at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
