"""DPO and SFT on real human preferences (Anthropic HH-RLHF harmless-base): ours vs TRL.

The same k folds of the shared HH file as `hh_rm.py`. Each transcript is split at its last
"\\n\\nAssistant:": the conversation before it is the prompt (a message list, rendered by the
model's chat template on both sides), the two replies are the responses. Per fold a small random
Llama (`trainer.tiny`, hidden `--hidden`, 2 layers) is built with a byte-level BPE tokenizer
trained on that fold's training transcripts, so both trainers start from the same weights and the
held-out text never shaped the vocabulary.

  dpo  ours: trainer.dpo;  TRL: DPOTrainer.  Training-fold pairs, the starting model as the
       reference.  Held-out preference accuracy: the share of held-out pairs whose chosen reply
       has the higher implicit reward β·(log π − log π_ref), one function for both saved models.
  sft  ours: trainer.sft;  TRL: SFTTrainer.  The training folds' chosen transcripts as
       prompt + completion (the last reply), loss on completion tokens only.  Held-out loss:
       mean completion-token cross-entropy of each held-out chosen reply, one function for both.

Same folds, seeds, steps, batch, learning rate, β, cosine schedule with 3% warm-up, fp32, no
packing, max length. Both trainers cut sequences at max_length from the right (keep the start),
so conversations are first fitted to it the same way for both: the oldest turns are dropped until
the prompt leaves room for the reply (half of max_length at most), and a last user turn still too
long loses its oldest characters. Pairs whose reply is still cut are counted (`responses_cut`).

Each saved model is scored on the token sequences its own trainer trains on: the same but for
the BOS token ours puts in front (TRL's chat-template path adds none); the reference is scored on
the same sequences as the policy it is compared with.

Intervals as in `hh_rm.py`: per held-out pair (its correctness or loss averaged over seeds), a
normal 95% interval over pairs; `diff` is TRL's figure minus ours on the same pairs with its
paired interval (an interval that excludes 0 is a difference these folds can tell apart).
All pairs of one run share that run's training noise (data order), which the per-pair interval
does not see; `run_diff_ci95` is the t interval of the same difference over whole runs (fold,
seed), the one to trust when the per-pair one is narrow. Speed:
DPO pairs/s (ours: its loop plus the reference log-probs it precomputes; TRL: train_runtime),
SFT tokens/s (prompt + completion tokens, no padding, per second of training loop); the fastest
run of each counts (a shared machine only slows runs down). wall_s: all runs, scoring included.

    .venv-bench/bin/python bench/hh_dpo_sft.py                         # 5 folds, 1 seed
    .venv-bench/bin/python bench/hh_dpo_sft.py --only-folds 0 1 --tasks dpo --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import metrics_rows, save, table, trl_matched, write_jsonl  # noqa: E402
from bench.hh_rm import (  # noqa: E402
    DATA,
    TURN,
    folds,
    interval,
    per_pair,
    read_pairs,
    transcript_messages,
    versus,
)
from trainer.configs import DPOConfig, SFTConfig  # noqa: E402
from trainer.factories import load_tokenizer  # noqa: E402
from trainer.tiny import build_tiny_causal_lm  # noqa: E402

# ----------------------------------------------------------------------------- data


def conversation(pair: dict) -> tuple[list[dict], str, str] | None:
    """(prompt messages, chosen reply, rejected reply); None if the two conversations differ."""
    head, chosen = pair["chosen"].rsplit(TURN, 1)
    head_r, rejected = pair["rejected"].rsplit(TURN, 1)
    if head != head_r:
        return None
    return transcript_messages(head), chosen.strip(), rejected.strip()


def n_tokens(tok: Any, text: str) -> int:
    return len(tok(text, add_special_tokens=False)["input_ids"])


def fit_prompt(tok: Any, prompt: list[dict], replies: list[str], max_length: int) -> list[dict]:
    """The prompt with its oldest turns dropped (then the last turn's oldest characters cut)
    until it leaves room for the longest reply, or for half of max_length if that is longer."""
    from trainer.data import render_prompt

    reply = max(n_tokens(tok, r) for r in replies) + 2  # the reply's end-of-turn tokens
    budget = max_length - min(reply, max_length // 2)
    msgs = list(prompt)
    while len(msgs) > 1 and n_tokens(tok, render_prompt(tok, msgs)) + 1 > budget:
        msgs = msgs[1:]
    while n_tokens(tok, render_prompt(tok, msgs)) + 1 > budget:
        text = msgs[-1]["content"]
        msgs = msgs[:-1] + [{**msgs[-1], "content": text[len(text) // 8 + 1 :]}]
    return msgs


def records(
    tok: Any, pairs: list[dict], max_length: int, fit: bool = True
) -> tuple[list[dict], int]:
    """DPO records with fitted prompts (messages) and one-message replies; replies still cut.
    Without `fit` the prompt is the whole conversation, left to the trainer to fit."""
    from trainer.dpo import tokenize_pair

    out, cut = [], 0
    for pair in pairs:
        parts = conversation(pair)
        if parts is None:  # not in this file; kept as a guard
            continue
        prompt, chosen, rejected = parts
        if fit:
            prompt = fit_prompt(tok, prompt, [chosen, rejected], max_length)
        rec = {
            "prompt": prompt,
            "chosen": [{"role": "assistant", "content": chosen}],
            "rejected": [{"role": "assistant", "content": rejected}],
        }
        cut += any(len(s["input_ids"]) > max_length for s in tokenize_pair(tok, rec, 10**6))
        out.append(rec)
    return out, cut


def sft_record(rec: dict) -> dict:
    return {"prompt": rec["prompt"], "completion": rec["chosen"]}


# ----------------------------------------------------------------------------- scoring


@torch.no_grad()
def response_logps(model_dir: str, tok: Any, samples: list[dict]) -> tuple[torch.Tensor, ...]:
    """Per sample: summed log-prob of its response tokens and their count."""
    from transformers import AutoModelForCausalLM

    from trainer.data import collate

    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    sums, counts = [], []
    for k in range(0, len(samples), 16):
        batch = collate(samples[k : k + 16], tok.pad_token_id)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        labels = batch["labels"][:, 1:]  # (B, T-1)
        logp = torch.log_softmax(logits[:, :-1].float(), -1)  # (B, T-1, V)
        mask = labels != -100
        picked = logp.gather(-1, labels.clamp(min=0)[..., None])[..., 0] * mask  # (B, T-1)
        sums.append(picked.sum(-1))
        counts.append(mask.sum(-1))
    return torch.cat(sums), torch.cat(counts)


def without_bos(tok: Any, samples: list[dict]) -> list[dict]:
    """Samples as TRL's chat-template path builds them: no BOS token in front."""
    bos = tok.bos_token_id
    return [
        {k: v[1:] for k, v in s.items()} if bos is not None and s["input_ids"][:1] == [bos] else s
        for s in samples
    ]


def dpo_correct(model_dir: str, reference: str, recs: list[dict], args, bos: bool) -> dict:
    """Per held-out pair: chosen's implicit reward above rejected's; and the margins."""
    from trainer.dpo import tokenize_pair

    tok = load_tokenizer(reference)
    samples = [s for r in recs for s in tokenize_pair(tok, r, args.max_length)]
    samples = samples if bos else without_bos(tok, samples)
    policy = response_logps(model_dir, tok, samples)[0].view(-1, 2)
    ref = response_logps(reference, tok, samples)[0].view(-1, 2)
    rewards = args.beta * (policy - ref)  # (n, 2)
    margin = rewards[:, 0] - rewards[:, 1]
    return {"correct": (margin > 0).tolist(), "margin": margin.tolist()}


def sft_losses(model_dir: str, recs: list[dict], args, bos: bool) -> dict:
    """Per held-out chosen reply: mean completion-token loss; and the token-weighted mean."""
    from trainer.data import tokenize_sft

    tok = load_tokenizer(model_dir)
    samples = [tokenize_sft(tok, sft_record(r), args.max_length, True) for r in recs]
    samples = samples if bos else without_bos(tok, samples)
    sums, counts = response_logps(model_dir, tok, samples)
    return {
        "loss": (-sums / counts.clamp(min=1)).tolist(),
        "token_loss": float(-sums.sum() / counts.sum()),
    }


# ----------------------------------------------------------------------------- trainers


def ours_dpo(model: str, train_recs, test_recs, seed: int, args, out: Path) -> dict:
    from trainer.dpo import train

    cfg = DPOConfig(
        model=model,
        train_file=write_jsonl(out / "train.jsonl", train_recs),
        eval_fraction=0.0,
        output_dir=str(out / "model"),
        num_epochs=args.epochs,
        batch_size=args.batch,
        learning_rate=args.lr_dpo,
        beta=args.beta,
        max_length=args.max_length,
        save_every=10**9,
        seed=seed,
    )
    t0 = time.perf_counter()
    train(cfg)
    rows = metrics_rows(out / "model")
    loop_s = sum(args.batch / r["pairs_per_s"] for r in rows)
    loop_s += json.loads((out / "model" / "summary.json").read_text())["reference_s"]
    res = {"steps": len(rows), "pairs_per_s": len(rows) * args.batch / loop_s}
    res |= dpo_correct(str(out / "model"), model, test_recs, args, bos=True)
    return res | {"wall_s": time.perf_counter() - t0}


def trl_dpo(model: str, train_recs, test_recs, seed: int, args, out: Path) -> dict:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import DPOConfig as TRLDPOConfig
    from trl import DPOTrainer

    t0 = time.perf_counter()
    targs = TRLDPOConfig(
        output_dir=str(out),
        per_device_train_batch_size=args.batch,
        num_train_epochs=args.epochs,
        learning_rate=args.lr_dpo,
        beta=args.beta,
        max_length=args.max_length,
        **trl_matched(seed),
    )
    tok = load_tokenizer(model)
    trainer = DPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(model),
        args=targs,
        train_dataset=Dataset.from_list(train_recs),
        processing_class=tok,
    )
    result = trainer.train()
    trainer.save_model(str(out / "model"))
    tok.save_pretrained(str(out / "model"))
    n = len(trainer.train_dataset) * args.epochs
    res = {"steps": result.global_step, "pairs_per_s": n / result.metrics["train_runtime"]}
    res |= dpo_correct(str(out / "model"), model, test_recs, args, bos=False)
    return res | {"wall_s": time.perf_counter() - t0}


def ours_sft(model: str, train_recs, test_recs, seed: int, args, out: Path) -> dict:
    from trainer.sft import train

    cfg = SFTConfig(
        model=model,
        train_file=write_jsonl(out / "train.jsonl", [sft_record(r) for r in train_recs]),
        eval_fraction=0.0,
        output_dir=str(out / "model"),
        num_epochs=args.epochs,
        batch_size=args.batch,
        learning_rate=args.lr_sft,
        max_length=args.max_length,
        save_every=10**9,
        seed=seed,
    )
    t0 = time.perf_counter()
    train(cfg)
    rows = metrics_rows(out / "model")
    loop_s = sum(args.batch / r["samples_per_s"] for r in rows)
    tokens = sum(r["tokens_per_s"] * args.batch / r["samples_per_s"] for r in rows)
    res = {
        "steps": len(rows),
        "tokens_per_s": tokens / loop_s,
        "train_loss": sum(r["loss"] for r in rows) / len(rows),
    }
    res |= sft_losses(str(out / "model"), test_recs, args, bos=True)
    return res | {"wall_s": time.perf_counter() - t0}


def trl_sft(model: str, train_recs, test_recs, seed: int, args, out: Path) -> dict:
    from datasets import Dataset
    from trl import SFTConfig as TRLSFTConfig
    from trl import SFTTrainer

    t0 = time.perf_counter()
    targs = TRLSFTConfig(
        output_dir=str(out),
        per_device_train_batch_size=args.batch,
        num_train_epochs=args.epochs,
        learning_rate=args.lr_sft,
        max_length=args.max_length,
        **trl_matched(seed),
        packing=False,
        completion_only_loss=True,
    )
    data = Dataset.from_list([sft_record(r) for r in train_recs])
    trainer = SFTTrainer(model=model, args=targs, train_dataset=data)
    tokens = sum(len(x) for x in trainer.train_dataset["input_ids"]) * args.epochs
    result = trainer.train()
    trainer.save_model(str(out / "model"))
    trainer.processing_class.save_pretrained(str(out / "model"))
    res = {
        "steps": result.global_step,
        "tokens_per_s": tokens / result.metrics["train_runtime"],
        "train_loss": result.training_loss,
    }
    res |= sft_losses(str(out / "model"), test_recs, args, bos=False)
    return res | {"wall_s": time.perf_counter() - t0}


TRAINERS = {
    "dpo": [("ours", ours_dpo), ("TRL DPOTrainer", trl_dpo)],
    "sft": [("ours", ours_sft), ("TRL SFTTrainer", trl_sft)],
}


# ----------------------------------------------------------------------------- statistics


def summarise(task: str, name: str, runs: list[dict], base: list[dict] | None) -> dict:
    """The held-out figure ± 95% over pairs (per pair averaged over seeds), and vs `base`."""
    key = "correct" if task == "dpo" else "loss"
    mine = per_pair(runs, key)
    values = list(mine.values())
    speed = "pairs_per_s" if task == "dpo" else "tokens_per_s"
    row = {
        "task": task,
        "trainer": name,
        "runs": len(runs),
        "held_out": len(mine),
        "steps": runs[0]["steps"],
        "accuracy" if task == "dpo" else "loss": sum(values) / len(values),
        "ci95": interval(values),
        speed: max(r[speed] for r in runs),
        "wall_s": sum(r["wall_s"] for r in runs),
    }
    if task == "dpo":
        margins = [m for r in runs for m in r["margin"]]
        row["reward_margin"] = sum(margins) / len(margins)
    else:
        row["token_loss"] = sum(r["token_loss"] for r in runs) / len(runs)
        row["train_loss"] = sum(r["train_loss"] for r in runs) / len(runs)
    if base is not None:
        row |= versus(runs, base, key)
    return row


# ----------------------------------------------------------------------------- main


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", default=DATA, help="HH pairs (.jsonl.gz); env RLHF_HH_DATA")
    p.add_argument("--tasks", nargs="+", default=["dpo", "sft"], choices=TRAINERS)
    p.add_argument("--skip-trl", action="store_true")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--only-folds", type=int, nargs="+", help="run these folds only")
    p.add_argument("--seeds", type=int, default=1, help="seeds per fold (42, 43, …)")
    p.add_argument("--limit", type=int, default=0, help="use the first N pairs (0: all)")
    p.add_argument("--hidden", type=int, default=64, help="hidden size of the random Llama")
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--batch", type=int, default=8, help="pairs (DPO) or examples (SFT) per step")
    p.add_argument("--lr-dpo", type=float, default=1e-3)
    p.add_argument("--lr-sft", type=float, default=1e-3)
    p.add_argument("--beta", type=float, default=0.1)
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument(
        "--no-fit",
        action="store_true",
        help="give the trainers whole conversations as prompts (each fits them itself)",
    )
    p.add_argument("--name", default="hh_dpo_sft", help="bench/results/<name>.json")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    t_start = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="bench-hh-lm-"))
    pairs = read_pairs(args.data)
    if args.limit:
        pairs = pairs[: args.limit]
    print(f"data: {args.data} ({len(pairs)} pairs)", flush=True)
    runs: dict[tuple[str, str], list[dict]] = {}
    cut: dict[int, int] = {}
    splits = folds(len(pairs), args.folds)
    for f in args.only_folds if args.only_folds is not None else range(args.folds):
        held = set(splits[f])
        train_pairs = [x for i, x in enumerate(pairs) if i not in held]
        corpus = [t for x in train_pairs for t in (x["chosen"], x["rejected"])]
        model_dir = work / f"f{f}-model"
        model = str(build_tiny_causal_lm(model_dir, hidden_size=args.hidden, corpus=corpus))
        tok = load_tokenizer(model)
        train_recs, cut_train = records(tok, train_pairs, args.max_length, not args.no_fit)
        test_pairs = [pairs[i] for i in splits[f]]
        test_recs, cut[f] = records(tok, test_pairs, args.max_length, not args.no_fit)
        print(
            f"fold {f}: {len(train_recs)} training pairs ({cut_train} with a reply cut), "
            f"{len(test_recs)} held out ({cut[f]} cut)",
            flush=True,
        )
        for seed in range(42, 42 + args.seeds):
            for task in args.tasks:
                for name, fn in TRAINERS[task][: 1 if args.skip_trl else 2]:
                    out = work / f"f{f}-s{seed}-{task}-{name.split()[0]}"
                    res = fn(model, train_recs, test_recs, seed, args, out)
                    res |= {"fold": f, "seed": seed, "test": splits[f]}
                    runs.setdefault((task, name), []).append(res)
                    key = "correct" if task == "dpo" else "loss"
                    figure = sum(map(float, res[key])) / len(res[key])
                    print(
                        f"fold {f} seed {seed} {task} {name}: {key} {figure:.3f}, "
                        f"{res.get('pairs_per_s', res.get('tokens_per_s')):.1f}/s, "
                        f"{res['wall_s']:.0f} s",
                        flush=True,
                    )

    rows = []
    for task in args.tasks:
        first = TRAINERS[task][0][0]
        for name, _ in TRAINERS[task][: 1 if args.skip_trl else 2]:
            base = None if name == first else runs[(task, first)]
            rows.append(summarise(task, name, runs[(task, name)], base))
    for task in args.tasks:
        figure = ["accuracy", "ci95", "diff", "diff_ci95", "run_diff_ci95", "reward_margin"]
        figure += ["pairs_per_s"]
        if task == "sft":
            figure = ["loss", "ci95", "diff", "diff_ci95", "run_diff_ci95", "token_loss"]
            figure += ["train_loss"]
            figure += ["tokens_per_s"]
        cols = ["trainer", "runs", "held_out", "steps", *figure, "wall_s"]
        print(f"\n{task}:\n" + table([r for r in rows if r["task"] == task], cols))
    payload = {
        "args": vars(args),
        "held_out_replies_cut": cut,
        "results": rows,
        "runs": {f"{t}/{n}": rs for (t, n), rs in runs.items()},
        "wall_s": time.perf_counter() - t_start,
    }
    print(f"results: {save(args.name, payload)}")
    print(f"load average at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
