"""DPO: our trainer vs TRL's DPOTrainer on the same random Llama, pairs and settings.

Pairs where the chosen response has more marker words than the rejected one (the same synthetic
preference as the RM bench). Same β, learning rate, batch size, epochs, cosine schedule, fp32,
no activation checkpointing. Quality: on held-out pairs, preference accuracy (implicit reward
β·(log π − log π_ref) higher for the chosen response) and mean reward margin, both computed by
one function from each saved model and the shared reference. Speed: pairs per second of
training: ours counts its loop plus the reference log-probs it precomputes before the loop (TRL
computes them inside its steps); TRL's is its `train_runtime`. Each trainer runs `--repeats`
times, interleaved, and the fastest run of each counts.

    python bench/train_dpo.py
    python bench/train_dpo.py --pairs 128 --skip-trl
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import fastest, metrics_rows, rankings, save, table, trl_matched, write_jsonl  # noqa: E402
from trainer.configs import DPOConfig  # noqa: E402
from trainer.tiny import build_tiny_causal_lm  # noqa: E402


def pairs(n: int, seed: int) -> list[dict]:
    """{"prompt", "chosen", "rejected"}: the best and worst of a synthetic ranking."""
    return [
        {"prompt": r["prompt"], "chosen": r["responses"][0], "rejected": r["responses"][-1]}
        for r in rankings(n, 3, seed=seed, words=8)
    ]


@torch.no_grad()
def preference(model_dir: str, reference: str, recs: list[dict], args) -> dict[str, float]:
    """Held-out preference accuracy and mean reward margin of a saved policy."""
    from transformers import AutoModelForCausalLM

    from trainer.dpo import sequence_logps, tokenize_pair
    from trainer.factories import load_tokenizer

    tok = load_tokenizer(reference)
    samples = [s for r in recs for s in tokenize_pair(tok, r, args.max_length)]
    logps = []
    for d in (model_dir, reference):
        model = AutoModelForCausalLM.from_pretrained(d).eval()
        logps.append(sequence_logps(model, samples, tok.pad_token_id, "cpu").view(-1, 2))
    rewards = args.beta * (logps[0] - logps[1])  # (n, 2)
    margin = rewards[:, 0] - rewards[:, 1]
    return {"accuracy": float((margin > 0).float().mean()), "reward_margin": float(margin.mean())}


def run_ours(model: str, data: str, args, out: Path) -> dict:
    """trainer.dpo; pairs/s from the loop's step times."""
    from trainer.dpo import train

    cfg = DPOConfig(
        model=model,
        train_file=data,
        eval_fraction=0.0,
        output_dir=str(out),
        num_epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        beta=args.beta,
        max_length=args.max_length,
        save_every=10**9,
    )
    t0 = time.perf_counter()
    train(cfg)
    wall = time.perf_counter() - t0
    rows = metrics_rows(out)
    loop_s = sum(args.batch_size / r["pairs_per_s"] for r in rows)
    loop_s += json.loads((out / "summary.json").read_text())["reference_s"]
    return {
        "trainer": "ours",
        "steps": len(rows),
        "pairs_per_s": len(rows) * args.batch_size / loop_s,
        "wall_s": wall,
    }


def run_trl(model: str, recs: list[dict], args, out: Path) -> dict:
    """TRL's DPOTrainer with matching settings (reference = the starting model)."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import DPOConfig as TRLDPOConfig
    from trl import DPOTrainer

    from trainer.factories import load_tokenizer

    targs = TRLDPOConfig(
        output_dir=str(out),
        per_device_train_batch_size=args.batch_size,
        num_train_epochs=args.epochs,
        learning_rate=args.lr,
        beta=args.beta,
        max_length=args.max_length,
        **trl_matched(42),
    )
    tok = load_tokenizer(model)
    trainer = DPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(model),
        args=targs,
        train_dataset=Dataset.from_list(recs),
        processing_class=tok,
    )
    t0 = time.perf_counter()
    result = trainer.train()
    wall = time.perf_counter() - t0
    trainer.save_model(str(out))
    tok.save_pretrained(str(out))
    n = len(recs) * args.epochs
    return {
        "trainer": "TRL DPOTrainer",
        "steps": result.global_step,
        "pairs_per_s": n / result.metrics["train_runtime"],
        "wall_s": wall,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--pairs", type=int, default=256)
    p.add_argument("--held-out", type=int, default=128)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--beta", type=float, default=0.1)
    p.add_argument("--repeats", type=int, default=2, help="runs per trainer; the fastest counts")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--skip-trl", action="store_true")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    work = Path(tempfile.mkdtemp(prefix="bench-dpo-"))
    model = str(build_tiny_causal_lm(work / "model", hidden_size=args.hidden))
    recs, held = pairs(args.pairs, seed=1), pairs(args.held_out, seed=2)
    data = write_jsonl(work / "train.jsonl", recs)
    cols = ["trainer", "steps", "pairs_per_s", "wall_s", "accuracy", "reward_margin"]
    ours, trl = [], []
    for rep in range(args.repeats):  # interleaved, so a busy spell hits both sides
        out = work / f"r{rep}"
        ours.append(run_ours(model, data, args, out / "ours"))
        ours[-1] |= preference(str(out / "ours"), model, held, args)
        print(table(ours[-1:], cols), flush=True)
        if not args.skip_trl:
            trl.append(run_trl(model, recs, args, out / "trl"))
            trl[-1] |= preference(str(out / "trl"), model, held, args)
            print(table(trl[-1:], cols), flush=True)
    results = [fastest(ours, "pairs_per_s")] + ([fastest(trl, "pairs_per_s")] if trl else [])
    if len(results) == 2:
        results[0]["speedup_vs_trl"] = results[0]["pairs_per_s"] / results[1]["pairs_per_s"]
        # Back-to-back ratios of each repeat: the spread says how much the load moved them.
        results[0]["speedup_per_repeat"] = [
            round(a["pairs_per_s"] / b["pairs_per_s"], 3) for a, b in zip(ours, trl, strict=True)
        ]
    print(table(results, cols + (["speedup_vs_trl"] if len(results) == 2 else [])))
    print(f"results: {save('train_dpo', {'args': vars(args), 'results': results})}")
    print(f"load average at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
