"""Direct Preference Optimization (Rafailov et al., 2023) on `pairs` data.

loss = −log σ(β·[(log π(y_w|x) − log π_ref(y_w|x)) − (log π(y_l|x) − log π_ref(y_l|x))]),
log-probabilities summed over response tokens. With `weight_by_margin`, each pair's loss is
multiplied by its "margin" (a preference strength's), so pairs count by how sure labelers were.
The reference is the starting model, frozen; by default its log-probs are computed once before
the loop and the reference copy is never kept.
Dropout is off (the model stays in eval mode) so policy and reference log-probs are comparable.
"""

from __future__ import annotations

import copy
import time
from typing import Any, cast

import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM

from trainer import EXIT_OK, EXIT_PREEMPTED
from trainer.configs import DPOConfig
from trainer.data import Record, collate, sft_pieces, tokenize_sft, train_eval_split
from trainer.factories import load_tokenizer, make_optimizer, maybe_lora
from trainer.lm import scored_logits, token_logps
from trainer.runtime import Run, step_micro_batches, total_steps


def tokenize_pair(tokenizer: Any, rec: Record, max_length: int) -> list[dict]:
    """[chosen, rejected] as prompt + response samples with prompt tokens labelled -100; an
    over-long prompt is cut from the left once for both, to leave room for the longer reply."""
    recs = [{"prompt": rec["prompt"], "completion": rec[k]} for k in ("chosen", "rejected")]
    pieces = [sft_pieces(tokenizer, r) for r in recs]
    reply = max(len(p[-1][0]) for p in pieces)
    return [
        tokenize_sft(tokenizer, r, max_length, True, reply, p)
        for r, p in zip(recs, pieces, strict=True)
    ]


def sequence_logps(model: torch.nn.Module, samples: list[dict], pad_id: int, device: Any):
    """Sum of log-probs of the response tokens of each sample: (N,)."""
    batch = {k: v.to(device) for k, v in collate(samples, pad_id).items()}
    logits, targets = scored_logits(model, batch)  # (N, S, V), (N, S)
    return token_logps(logits, targets).sum(-1)  # (N,)


@torch.no_grad()
def reference_logps(model, data: list[list[dict]], run: Run, pad_id: int) -> torch.Tensor:
    """Reference log-probs of every pair: (n_pairs, 2) as [chosen, rejected]."""
    out = []
    bs = max(1, run.cfg.eval_batch_size // 2)
    for k in range(0, len(data), bs):
        samples = [s for pair in data[k : k + bs] for s in pair]
        out.append(sequence_logps(model, samples, pad_id, run.device).view(-1, 2).cpu())
    return torch.cat(out) if out else torch.zeros(0, 2)


def dpo_loss(
    policy: torch.Tensor,
    ref: torch.Tensor,
    beta: float,
    label_smoothing: float = 0.0,
    weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """DPO loss (scalar) and the implicit rewards β·(log π − log π_ref), (B, 2).

    policy, ref: (B, 2) summed log-probs of [chosen, rejected]. weights: (B,) per-pair weights
    (e.g. preference-strength margins); the loss is then mean(w · loss_pair).
    """
    rewards = beta * (policy - ref)  # (B, 2)
    margin = rewards[:, 0] - rewards[:, 1]  # (B,)
    loss = -(1 - label_smoothing) * F.logsigmoid(margin) - label_smoothing * F.logsigmoid(-margin)
    if weights is not None:
        loss = loss * weights
    return loss.mean(), rewards


def pair_weight(rec: Record) -> float:
    """A pair's weight with `weight_by_margin`: its margin, or 1 without one."""
    margin = rec.get("margin")
    return 1.0 if margin is None else float(margin)


@torch.no_grad()
def evaluate(model, data, ref_logps, run: Run, pad_id: int) -> dict[str, float]:
    """Held-out DPO loss, preference accuracy and reward margin."""
    if not data:
        return {}
    policy = reference_logps(model, data, run, pad_id)  # (n, 2) under the current policy
    cfg = cast(DPOConfig, run.cfg)
    loss, rewards = dpo_loss(policy, ref_logps, cfg.beta)
    margin = rewards[:, 0] - rewards[:, 1]
    return {
        "eval_loss": float(loss),
        "eval_accuracy": float((margin > 0).float().mean()),
        "eval_reward_margin": float(margin.mean()),
    }


def train(cfg: DPOConfig) -> int:
    """Run DPO as configured; return EXIT_OK or EXIT_PREEMPTED."""
    run = Run(cfg, "dpo")
    acc = run.accelerator
    tokenizer = load_tokenizer(cfg.model)
    pad_id = tokenizer.pad_token_id

    # 1. Data: every pair tokenised once.
    train_recs, eval_recs = train_eval_split(
        cfg.train_file, cfg.eval_file, cfg.eval_fraction, "pairs", cfg.seed
    )
    train_data = [tokenize_pair(tokenizer, r, cfg.max_length) for r in train_recs]
    weights = torch.tensor([pair_weight(r) for r in train_recs]) if cfg.weight_by_margin else None
    eval_data = [tokenize_pair(tokenizer, r, cfg.max_length) for r in eval_recs]
    per_step = cfg.batch_size * cfg.gradient_accumulation_steps * acc.num_processes
    steps = total_steps(cfg, len(train_data), per_step)

    # 2. Model; the reference is the same weights before training.
    model = AutoModelForCausalLM.from_pretrained(cfg.model)
    model.config.pad_token_id = pad_id
    model.eval()  # dropout off
    ref_model = None if cfg.precompute_ref_log_probs else run.frozen(copy.deepcopy(model))
    model = maybe_lora(model, cfg, "CAUSAL_LM")  # LoRA starts as the identity: still the reference
    model, optimizer, scheduler = run.prepare(model, lambda m: make_optimizer(m, cfg, steps))
    # The reference log-probs come from the distributed model (sharded under fsdp: no rank
    # ever needs the whole model on its device).
    t_ref = time.perf_counter()
    if ref_model is None:
        ref_train = reference_logps(model, train_data, run, pad_id)  # (n_train, 2)
    reference_s = time.perf_counter() - t_ref  # the training pairs' share is part of training
    ref_eval = reference_logps(model, eval_data, run, pad_id)  # (n_eval, 2)
    start, _ = run.resume()
    model.eval()

    # 3. The loop.
    for step in range(start, steps):
        t0 = time.perf_counter()
        losses, all_rewards = [], []
        for micro in step_micro_batches(run, len(train_data), step):
            samples = [s for i in micro for s in train_data[i]]  # 2B: chosen, rejected, ...
            if ref_model is None:
                ref = ref_train[micro].to(run.device)  # (B, 2)
            else:
                with torch.no_grad():
                    ref = sequence_logps(ref_model, samples, pad_id, run.device).view(-1, 2)
            with run.accumulate(model):
                policy = sequence_logps(model, samples, pad_id, run.device).view(-1, 2)  # (B, 2)
                w = weights[micro].to(run.device) if weights is not None else None  # (B,)
                loss, rewards = dpo_loss(policy, ref, cfg.beta, cfg.label_smoothing, w)
                acc.backward(loss)
            losses.append(loss.detach())
            all_rewards.append(rewards.detach())
        grad_norm = run.clip_grad_norm(model, cfg.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()

        rewards = acc.gather(torch.cat(all_rewards))  # (per_step, 2)
        margin = rewards[:, 0] - rewards[:, 1]
        elapsed = time.perf_counter() - t0
        metrics = {
            "loss": float(acc.reduce(torch.stack(losses).mean(), "mean")),
            "lr": scheduler.get_last_lr()[0],
            "grad_norm": float(grad_norm),
            "reward_chosen": float(rewards[:, 0].mean()),
            "reward_rejected": float(rewards[:, 1].mean()),
            "reward_margin": float(margin.mean()),
            "accuracy": float((margin > 0).float().mean()),
            "pairs_per_s": per_step / elapsed,
        }
        if cfg.eval_every and (step + 1) % cfg.eval_every == 0:
            metrics |= evaluate(model, eval_data, ref_eval, run, pad_id)
        if run.end_step(step + 1, steps, metrics, model, tokenizer):
            return EXIT_PREEMPTED

    summary = {
        "steps": steps,
        "reference_s": reference_s,
        **evaluate(model, eval_data, ref_eval, run, pad_id),
    }
    run.finish(model, tokenizer, summary)
    return EXIT_OK
