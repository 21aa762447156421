"""Supervised fine-tuning: next-token loss on completion tokens only (prompt masked with -100)."""

from __future__ import annotations

import math
import time

import torch
from transformers import AutoModelForCausalLM

from trainer import EXIT_OK, EXIT_PREEMPTED
from trainer.configs import SFTConfig
from trainer.data import IGNORE, collate, tokenize_sft, train_eval_split
from trainer.factories import load_tokenizer, make_optimizer, maybe_lora
from trainer.lm import scored_logits
from trainer.runtime import Run, step_micro_batches, total_steps


def sft_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Summed cross-entropy over completion tokens and the number of those tokens."""
    logits, targets = scored_logits(model, batch)  # (B, S, V), (B, S)
    n = int((targets != IGNORE).sum())
    loss = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.size(-1)),
        targets.reshape(-1),
        ignore_index=IGNORE,
        reduction="sum",
    )
    return loss, n


def scored_tokens(sample: dict) -> int:
    """Tokens of a sample that carry loss (each is predicted from the one before it)."""
    return sum(1 for t in sample["labels"][1:] if t != IGNORE)


@torch.no_grad()
def evaluate(model: torch.nn.Module, data: list[dict], run: Run, pad_id: int) -> dict[str, float]:
    """Token-weighted mean loss on held-out samples."""
    if not data:
        return {}
    model.eval()
    total, count = 0.0, 0
    bs = run.cfg.eval_batch_size
    for i in range(0, len(data), bs):
        batch = {k: v.to(run.device) for k, v in collate(data[i : i + bs], pad_id).items()}
        loss, n = sft_loss(model, batch)
        total, count = total + float(loss), count + n
    model.train()
    return {"eval_loss": total / max(count, 1)}


def train(cfg: SFTConfig) -> int:
    """Run SFT as configured; return EXIT_OK or EXIT_PREEMPTED."""
    run = Run(cfg, "sft")
    acc = run.accelerator
    tokenizer = load_tokenizer(cfg.model)
    pad_id = tokenizer.pad_token_id

    # 1. Data: tokenise everything once, before the loop.
    train_recs, eval_recs = train_eval_split(
        cfg.train_file, cfg.eval_file, cfg.eval_fraction, "sft", cfg.seed
    )
    train_data = [
        tokenize_sft(tokenizer, r, cfg.max_length, cfg.completion_only_loss) for r in train_recs
    ]
    eval_data = [
        tokenize_sft(tokenizer, r, cfg.max_length, cfg.completion_only_loss) for r in eval_recs
    ]
    per_step = cfg.batch_size * cfg.gradient_accumulation_steps * acc.num_processes
    steps = total_steps(cfg, len(train_data), per_step)

    # 2. Model, optimizer, schedule (cosine with warmup by default).
    model = AutoModelForCausalLM.from_pretrained(cfg.model)
    model.config.pad_token_id = pad_id
    model = maybe_lora(model, cfg, "CAUSAL_LM")
    model, optimizer, scheduler = run.prepare(model, lambda m: make_optimizer(m, cfg, steps))
    start, _ = run.resume()
    model.train()

    # 3. The loop: one optimizer step per iteration, gradient accumulation inside.
    # The step's loss is the mean over all its completion tokens, whichever process and
    # micro-batch holds them: each micro-batch's summed loss is divided by the step's token
    # count (so n processes × m micro-batches of a global batch give one process's gradient).
    scored = [scored_tokens(s) for s in train_data]
    accumulation = cfg.gradient_accumulation_steps * acc.num_processes
    for step in range(start, steps):
        t0 = time.perf_counter()
        losses, tokens = [], 0
        micros = step_micro_batches(run, len(train_data), step)
        step_tokens = sum(scored[i] for micro in micros for i in micro)
        if acc.num_processes > 1:
            step_tokens = int(acc.reduce(torch.tensor(step_tokens, device=run.device), "sum"))
        scale = accumulation / step_tokens if step_tokens else math.inf  # none: loss NaN
        for micro in micros:
            batch = collate([train_data[i] for i in micro], pad_id)
            batch = {k: v.to(run.device) for k, v in batch.items()}
            with run.accumulate(model):
                loss, _ = sft_loss(model, batch)
                acc.backward(loss * scale)
            losses.append(loss.detach())
            tokens += int(batch["attention_mask"].sum())
        grad_norm = run.clip_grad_norm(model, cfg.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()

        elapsed = time.perf_counter() - t0
        metrics = {
            "loss": float(acc.reduce(torch.stack(losses).sum(), "sum")) * scale / accumulation,
            "lr": scheduler.get_last_lr()[0],
            "grad_norm": float(grad_norm),
            "tokens_per_s": tokens * acc.num_processes / elapsed,
            "samples_per_s": per_step / elapsed,
        }
        if cfg.eval_every and (step + 1) % cfg.eval_every == 0:
            metrics |= evaluate(model, eval_data, run, pad_id)
        if run.end_step(step + 1, steps, metrics, model, tokenizer):
            return EXIT_PREEMPTED

    # 4. Final evaluation and the model in output_dir.
    summary = {"steps": steps, **evaluate(model, eval_data, run, pad_id)}
    run.finish(model, tokenizer, summary)
    return EXIT_OK
