"""Reward model: InstructGPT's K-wise ranking loss (and plain pairs), then reward normalisation.

For a prompt with K ranked responses every response is scored ONCE per step, and
-log σ(r_better − r_worse) is averaged over all C(K,2) pairs as one batch element: K forward
passes instead of the K(K−1) of a trainer that expands rankings into pairs.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from transformers import AutoModelForSequenceClassification

from trainer import EXIT_OK, EXIT_PREEMPTED
from trainer.configs import RewardConfig
from trainer.data import (
    Record,
    detect_format,
    pad,
    render_prompt,
    render_response,
    train_eval_split,
)
from trainer.runtime import (
    Run,
    load_tokenizer,
    make_optimizer,
    maybe_lora,
    step_micro_batches,
    total_steps,
)

NORMALIZATION_FILE = "reward_normalization.json"


def kwise_loss(
    scores: torch.Tensor, sizes: list[int], margins: list[float] | None = None
) -> torch.Tensor:
    """Mean over rankings of the mean over their C(K,2) pairs of -log σ(r_i − r_j), i above j.

    scores: (N,) one score per response, rankings concatenated best-first; sizes: K of each ranking.
    margins: per ranking (used for K = 2 pairs), subtracted from the difference.
    """
    losses = []
    for g, r in enumerate(torch.split(scores, sizes)):  # r: (K,)
        diff = r[:, None] - r[None, :]  # (K, K): diff[i, j] = r_i − r_j
        i, j = torch.triu_indices(len(r), len(r), offset=1, device=r.device)  # i < j: i is better
        d = diff[i, j]  # (C(K,2),)
        if margins is not None:
            d = d - margins[g]
        losses.append(-F.logsigmoid(d).mean())
    return torch.stack(losses).mean()


def tokenize_ranking(tokenizer: Any, rec: Record, fmt: str, max_length: int) -> dict:
    """Token ids of each response (best first) with its prompt, and the pair margin."""
    responses = rec["responses"] if fmt == "rankings" else [rec["chosen"], rec["rejected"]]
    head = render_prompt(tokenizer, rec["prompt"])
    texts = [head + render_response(tokenizer, rec["prompt"], r) for r in responses]
    ids = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    return {"input_ids": ids, "margin": float(rec.get("margin") or 0.0)}


def score_batch(model: torch.nn.Module, seqs: list[list[int]], pad_id: int, device: Any):
    """Scalar reward of each sequence: (N,)."""
    input_ids = pad(seqs, pad_id).to(device)  # (N, T)
    mask = pad([[1] * len(s) for s in seqs], 0).to(device)  # (N, T)
    return model(input_ids=input_ids, attention_mask=mask).logits[:, 0].float()  # (N,)


@torch.no_grad()
def evaluate(model: torch.nn.Module, data: list[dict], run: Run, pad_id: int) -> dict[str, float]:
    """Held-out pairwise accuracy (over all C(K,2) pairs) and K-wise loss."""
    if not data:
        return {}
    model.eval()
    correct = pairs = 0
    losses = []
    bs = max(1, run.cfg.eval_batch_size // 4)
    for k in range(0, len(data), bs):
        chunk = data[k : k + bs]
        sizes = [len(d["input_ids"]) for d in chunk]
        scores = score_batch(model, [s for d in chunk for s in d["input_ids"]], pad_id, run.device)
        losses.append(float(kwise_loss(scores, sizes)) * len(chunk))
        for r in torch.split(scores, sizes):
            i, j = torch.triu_indices(len(r), len(r), offset=1)
            correct += int((r[i] > r[j]).sum())
            pairs += len(i)
    model.train()
    return {"eval_accuracy": correct / pairs, "eval_loss": sum(losses) / len(data)}


@torch.no_grad()
def fit_normalization(
    model: torch.nn.Module, data: list[dict], run: Run, pad_id: int
) -> dict[str, float]:
    """Gain and bias so that gain·r + bias has mean 0, std 1 on the reference responses."""
    model.eval()
    seqs = [s for d in data[:512] for s in d["input_ids"]]
    bs = run.cfg.eval_batch_size
    scores = torch.cat(
        [score_batch(model, seqs[k : k + bs], pad_id, run.device) for k in range(0, len(seqs), bs)]
    )
    mean, std = float(scores.mean()), float(scores.std().clamp_min(1e-6))
    return {"gain": 1.0 / std, "bias": -mean / std, "raw_mean": mean, "raw_std": std}


def train(cfg: RewardConfig) -> int:
    """Train a reward model as configured; return EXIT_OK or EXIT_PREEMPTED."""
    run = Run(cfg, "rm")
    acc = run.accelerator
    tokenizer = load_tokenizer(cfg.model)
    tokenizer.truncation_side = "left"  # keep the end of the response: its last token is scored
    pad_id = tokenizer.pad_token_id

    # 1. Data: rankings (K-wise) or pairs (K = 2, optional margin), tokenised before the loop.
    fmt = cfg.data_format
    if fmt == "auto":
        fmt = detect_format(cfg.train_file, ("rankings", "pairs"))
    train_recs, eval_recs = train_eval_split(
        cfg.train_file, cfg.eval_file, cfg.eval_fraction, fmt, cfg.seed
    )
    train_data = [tokenize_ranking(tokenizer, r, fmt, cfg.max_length) for r in train_recs]
    eval_data = [tokenize_ranking(tokenizer, r, fmt, cfg.max_length) for r in eval_recs]
    use_margin = fmt == "pairs" and cfg.use_margin and any(r.get("margin") for r in train_recs)
    per_step = cfg.batch_size * cfg.gradient_accumulation_steps * acc.num_processes
    steps = total_steps(cfg, len(train_data), per_step)

    # 2. Model: a scalar head; the pad token must be known or the wrong token gets scored.
    model = AutoModelForSequenceClassification.from_pretrained(cfg.model, num_labels=1)
    model.config.pad_token_id = pad_id
    if cfg.disable_dropout:
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
    model = maybe_lora(model, cfg, "SEQ_CLS")
    optimizer, scheduler = make_optimizer(model, cfg, steps)
    model, optimizer = acc.prepare(model, optimizer)
    acc.register_for_checkpointing(scheduler)
    start, _ = run.resume()
    model.train()

    # 3. The loop.
    for step in range(start, steps):
        t0 = time.perf_counter()
        losses, n_seqs = [], 0
        for micro in step_micro_batches(run, len(train_data), step):
            chunk = [train_data[i] for i in micro]
            sizes = [len(d["input_ids"]) for d in chunk]  # K of each ranking
            seqs = [s for d in chunk for s in d["input_ids"]]  # N = ΣK sequences
            with acc.accumulate(model):
                scores = score_batch(model, seqs, pad_id, run.device)  # (N,)
                margins = [d["margin"] for d in chunk] if use_margin else None
                loss = kwise_loss(scores, sizes, margins)
                if cfg.center_rewards_coef:
                    loss = loss + cfg.center_rewards_coef * scores.pow(2).mean()
                acc.backward(loss)
            losses.append(loss.detach())
            n_seqs += len(seqs)
        grad_norm = acc.clip_grad_norm_(model.parameters(), cfg.max_grad_norm or float("inf"))
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()

        elapsed = time.perf_counter() - t0
        metrics = {
            "loss": float(acc.reduce(torch.stack(losses).mean(), "mean")),
            "lr": scheduler.get_last_lr()[0],
            "grad_norm": float(grad_norm),
            "rankings_per_s": per_step / elapsed,
            "sequences_per_s": n_seqs * acc.num_processes / elapsed,
        }
        if cfg.eval_every and (step + 1) % cfg.eval_every == 0:
            metrics |= evaluate(model, eval_data, run, pad_id)
        if run.end_step(step + 1, steps, metrics, model, tokenizer):
            return EXIT_PREEMPTED

    # 4. Evaluate, fit the normalisation on the training responses, save.
    summary: dict[str, Any] = {"steps": steps, "data_format": fmt}
    summary |= evaluate(model, eval_data, run, pad_id)
    if cfg.normalize:
        norm = fit_normalization(model, train_data, run, pad_id)
        acc.unwrap_model(model).config.reward_normalization = norm
        if run.is_main:
            (run.out / NORMALIZATION_FILE).write_text(json.dumps(norm, indent=2))
        summary["normalization"] = norm
    run.finish(model, tokenizer, summary)
    return EXIT_OK


class RewardModel:
    """A trained reward model for scoring: normalised rewards of texts (used by PPO and others)."""

    def __init__(self, path: str | Path, device: Any = "cpu", max_length: int = 512) -> None:
        self.tokenizer = load_tokenizer(str(path))
        self.tokenizer.truncation_side = "left"
        self.model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)
        self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.model.to(device).eval().requires_grad_(False)
        self.device, self.max_length = device, max_length
        norm_file = Path(path) / NORMALIZATION_FILE
        norm = getattr(self.model.config, "reward_normalization", None) or {}
        if norm_file.exists():
            norm = json.loads(norm_file.read_text())
        self.gain, self.bias = float(norm.get("gain", 1.0)), float(norm.get("bias", 0.0))

    @torch.no_grad()
    def score(self, texts: list[str], batch_size: int = 32) -> torch.Tensor:
        """Normalised reward of each full text (prompt + response), shape (N,)."""
        out = []
        for k in range(0, len(texts), batch_size):
            enc = self.tokenizer(
                texts[k : k + batch_size], truncation=True, max_length=self.max_length
            )["input_ids"]
            out.append(score_batch(self.model, enc, self.tokenizer.pad_token_id, self.device))
        return torch.cat(out).cpu() * self.gain + self.bias

    def score_responses(self, prompts: list[Any], responses: list[str]) -> torch.Tensor:
        """Reward of responses to prompts (strings or message lists), rendered as in training."""
        texts = [
            render_prompt(self.tokenizer, p) + r for p, r in zip(prompts, responses, strict=True)
        ]
        return self.score(texts)


def load_reward_model(path: str | Path, device: Any = "cpu") -> RewardModel:
    """Load a reward model trained by `python -m trainer rm` for scoring."""
    return RewardModel(path, device)
