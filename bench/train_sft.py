"""SFT throughput: our trainer vs TRL's SFTTrainer on the same random Llama and the same data.

Conversational prompt/completion records go through the same chat template on both sides;
loss on completion tokens only, fp32, no activation checkpointing, no packing, same batch size
and schedule. Throughput = tokens (prompt + completion, no padding) per second of training loop;
quality = completion-token loss on held-out records, scored identically for both saved models.
Each trainer runs `--repeats` times, interleaved, and the fastest run of each counts.

    .venv-bench/bin/python bench/train_sft.py
    .venv-bench/bin/python bench/train_sft.py --examples 128 --hidden 128 --skip-trl
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import fastest, metrics_rows, save, sentence, table, trl_matched, write_jsonl  # noqa: E402
from trainer.configs import SFTConfig  # noqa: E402
from trainer.sft import train  # noqa: E402
from trainer.tiny import build_tiny_causal_lm  # noqa: E402


def records(n: int, seed: int) -> list[dict]:
    """Conversational prompt/completion pairs of ~20 and ~30 words."""
    r = random.Random(seed)
    return [
        {
            "prompt": [{"role": "user", "content": sentence(r, 20)}],
            "completion": [{"role": "assistant", "content": sentence(r, 30)}],
        }
        for _ in range(n)
    ]


@torch.no_grad()
def held_out_loss(model_dir: str, recs: list[dict], max_length: int) -> float:
    """Mean completion-token loss on held-out records, scored the same way for both trainers."""
    from transformers import AutoModelForCausalLM

    from trainer.data import collate, tokenize_sft
    from trainer.factories import load_tokenizer

    tok = load_tokenizer(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    total = count = 0.0
    samples = [tokenize_sft(tok, r, max_length, True) for r in recs]
    for k in range(0, len(samples), 16):
        batch = collate(samples[k : k + 16], tok.pad_token_id)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        labels = batch["labels"][:, 1:]
        loss = torch.nn.functional.cross_entropy(
            logits[:, :-1].flatten(0, 1).float(),
            labels.flatten(),
            ignore_index=-100,
            reduction="sum",
        )
        total, count = total + float(loss), count + int((labels != -100).sum())
    return total / count


def run_ours(model: str, data: str, args, out: Path) -> dict:
    """trainer.sft; tokens/s from the loop's step times."""
    cfg = SFTConfig(
        model=model,
        train_file=data,
        eval_fraction=0.0,
        output_dir=str(out),
        num_epochs=args.epochs,
        batch_size=args.batch_size,
        max_length=args.max_length,
        learning_rate=args.lr,
        save_every=10**9,
    )
    t0 = time.perf_counter()
    train(cfg)
    wall = time.perf_counter() - t0
    rows = metrics_rows(out)
    loop_s = sum(args.batch_size / r["samples_per_s"] for r in rows)
    tokens = sum(r["tokens_per_s"] * args.batch_size / r["samples_per_s"] for r in rows)
    return {
        "trainer": "ours",
        "steps": len(rows),
        "tokens": int(tokens),
        "tokens_per_s": tokens / loop_s,
        "wall_s": wall,
        "mean_loss": sum(r["loss"] for r in rows) / len(rows),
        "held_out_loss": held_out_loss(str(out), args.held_out_recs, args.max_length),
    }


def run_trl(model: str, recs: list[dict], args, out: Path) -> dict:
    """TRL's SFTTrainer with matching settings; tokens counted from its tokenised dataset."""
    from datasets import Dataset
    from trl import SFTConfig as TRLSFTConfig
    from trl import SFTTrainer

    targs = TRLSFTConfig(
        output_dir=str(out),
        per_device_train_batch_size=args.batch_size,
        num_train_epochs=args.epochs,
        learning_rate=args.lr,
        max_length=args.max_length,
        **trl_matched(42),
        packing=False,
        completion_only_loss=True,
    )
    trainer = SFTTrainer(model=model, args=targs, train_dataset=Dataset.from_list(recs))
    tokens = sum(len(x) for x in trainer.train_dataset["input_ids"]) * args.epochs
    t0 = time.perf_counter()
    result = trainer.train()
    wall = time.perf_counter() - t0
    trainer.save_model(str(out))
    trainer.processing_class.save_pretrained(str(out))
    return {
        "trainer": "TRL SFTTrainer",
        "steps": result.global_step,
        "tokens": int(tokens),
        "tokens_per_s": tokens / result.metrics["train_runtime"],
        "wall_s": wall,
        "mean_loss": result.training_loss,
        "held_out_loss": held_out_loss(str(out), args.held_out_recs, args.max_length),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--examples", type=int, default=1024)
    p.add_argument("--hidden", type=int, default=256, help="hidden size of the random Llama")
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--held-out", type=int, default=128, help="held-out records for the loss")
    p.add_argument("--repeats", type=int, default=2, help="runs per trainer; the fastest counts")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--skip-trl", action="store_true")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    work = Path(tempfile.mkdtemp(prefix="bench-sft-"))
    model = str(build_tiny_causal_lm(work / "model", hidden_size=args.hidden))
    recs = records(args.examples, seed=0)
    args.held_out_recs = records(args.held_out, seed=1)
    data = write_jsonl(work / "train.jsonl", recs)
    cols = ["trainer", "steps", "tokens", "tokens_per_s", "wall_s", "mean_loss", "held_out_loss"]
    ours, trl = [], []
    for rep in range(args.repeats):  # interleaved, so a busy spell hits both sides
        ours.append(run_ours(model, data, args, work / f"r{rep}" / "ours"))
        print(table(ours[-1:], cols), flush=True)
        if not args.skip_trl:
            trl.append(run_trl(model, recs, args, work / f"r{rep}" / "trl"))
            print(table(trl[-1:], cols), flush=True)
    results = [fastest(ours, "tokens_per_s")] + ([fastest(trl, "tokens_per_s")] if trl else [])
    if trl:
        results[0]["speedup_vs_trl"] = results[0]["tokens_per_s"] / results[1]["tokens_per_s"]
        results[0]["speedup_per_repeat"] = [
            round(a["tokens_per_s"] / b["tokens_per_s"], 3) for a, b in zip(ours, trl, strict=True)
        ]
    print(table(results, cols + (["speedup_vs_trl"] if not args.skip_trl else [])))
    del args.held_out_recs
    path = save("train_sft", {"model_hidden": args.hidden, "args": vars(args), "results": results})
    print(f"results: {path}")
    print(f"load average at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
