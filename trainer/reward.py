"""Reward model: InstructGPT's K-wise ranking loss (and plain pairs), then reward normalisation.

For a prompt with K ranked responses every response is scored ONCE per step, and
-log σ(r_better − r_worse) is averaged over all C(K,2) pairs as one batch element: K forward
passes instead of the K(K−1) of a trainer that expands rankings into pairs. A rankings record
with "ranks" (ties) leaves its tied pairs out; a pairs record's "margin" (a consensus's, or a
preference strength's) is subtracted from the difference when `use_margin` is on.

`ratings` data (one row per response, "scores": {aspect: value}) trains on one aspect or a
weighted sum of aspects: each prompt's rated responses become one ranking by that value, and
pairs of equal value are left out of the loss.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from transformers import AutoModelForSequenceClassification

from trainer import EXIT_OK, EXIT_PREEMPTED
from trainer.configs import ConfigError, RewardConfig
from trainer.data import (
    DataError,
    Record,
    detect_format,
    hold_out,
    load_records,
    render_prompt,
    render_response,
    train_eval_split,
)
from trainer.factories import load_tokenizer, make_optimizer, maybe_lora
from trainer.reward_head import (
    SpecialTokens,
    encode_response,
    prepare_for_pooling,
    resolve_pooling,
    score_batch,
)
from trainer.runtime import Run, step_micro_batches, total_steps
from trainer.suggest import count_parameters, lr_schedule

NORMALIZATION_FILE = "reward_normalization.json"


def _untied(r: torch.Tensor, places: list[int] | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Index pairs (i, j), i above j, of one ranking of len(r) responses; with `places` (the
    rank of each response, equal ranks tied) the tied pairs are left out."""
    i, j = torch.triu_indices(len(r), len(r), offset=1, device=r.device)  # i < j: i is better
    if places is not None:
        rank = torch.as_tensor(places, device=r.device)
        keep = rank[i] != rank[j]
        i, j = i[keep], j[keep]
    return i, j


def kwise_loss(
    scores: torch.Tensor,
    sizes: list[int],
    margins: list[float] | None = None,
    ranks: list[list[int] | None] | None = None,
) -> torch.Tensor:
    """Mean over rankings of the mean over their C(K,2) pairs of -log σ(r_i − r_j), i above j.

    scores: (N,) one score per response, rankings concatenated best-first; sizes: K of each ranking.
    margins: per ranking (used for K = 2 pairs), subtracted from the difference (Llama 2's
    margin loss −log σ(r_chosen − r_rejected − m): a larger margin asks for a larger gap).
    ranks: per ranking, the place of each response (equal places are tied) or None; tied pairs
    are left out of the mean, and a ranking whose responses are all tied counts nowhere.
    """
    losses = []
    for g, r in enumerate(torch.split(scores, sizes)):  # r: (K,)
        i, j = _untied(r, ranks[g] if ranks is not None else None)
        if len(i) == 0:
            continue
        d = r[i] - r[j]  # (P,) r_better − r_worse over the untied pairs
        if margins is not None:
            d = d - margins[g]
        losses.append(-F.logsigmoid(d).mean())
    if not losses:
        return scores.sum() * 0.0  # nothing to learn, but a graph to backpropagate
    return torch.stack(losses).mean()


def pair_hits(
    scores: torch.Tensor, sizes: list[int], ranks: list[list[int] | None] | None = None
) -> tuple[int, int]:
    """(pairs ordered correctly, pairs) over the untied pairs of each ranking, best first."""
    hits = total = 0
    for g, r in enumerate(torch.split(scores.detach(), sizes)):
        i, j = _untied(r, ranks[g] if ranks is not None else None)
        hits += int((r[i] > r[j]).sum())
        total += len(i)
    return hits, total


def _value(rec: Record, aspect: str, weights: dict[str, float]) -> float | None:
    """The value a ratings row is ranked by: an aspect, or a weighted sum (None if missing)."""
    scores = dict(rec.get("scores") or {})
    if rec.get("score") is not None:
        scores.setdefault("score", rec["score"])
    if weights:
        if any(name not in scores for name in weights):
            return None
        return sum(w * float(scores[name]) for name, w in weights.items())
    value = scores.get(aspect or "score")
    return None if value is None else float(value)


def rated_rankings(
    records: list[Record], aspect: str, weights: dict[str, float], where: str
) -> list[Record]:
    """Ratings rows → one ranking per prompt, best first, by the aspect (or weighted sum):
    {"prompt", "responses", "ranks"} (equal values share a place: tied). Prompts with fewer
    than two distinct values are dropped."""
    wanted = list(weights) or [aspect or "score"]
    seen = {"score"} if any(r.get("score") is not None for r in records) else set()
    seen |= {name for r in records for name in (r.get("scores") or {})}
    unknown = [name for name in wanted if name not in seen]
    if unknown:
        raise ConfigError(
            f"{where}: aspect {', '.join(map(repr, unknown))} is in no row; the rows have "
            f"{', '.join(sorted(seen)) or 'no aspects'}"
        )
    by_prompt: dict[str, tuple[Any, list[tuple[float, Any]]]] = {}
    for rec in records:
        value = _value(rec, aspect, weights)
        if value is not None:
            key = json.dumps(rec["prompt"], sort_keys=True)
            by_prompt.setdefault(key, (rec["prompt"], []))[1].append((value, rec["response"]))
    out = []
    for prompt, rated in by_prompt.values():
        if len({value for value, _ in rated}) < 2:
            continue
        rated.sort(key=lambda item: -item[0])  # stable: equal values keep the file's order
        place = {value: n for n, value in enumerate(sorted({v for v, _ in rated}, reverse=True))}
        out.append(
            {
                "prompt": prompt,
                "responses": [response for _, response in rated],
                "ranks": [place[value] for value, _ in rated],
            }
        )
    if not out:
        raise DataError(
            f"{where}: no prompt has two responses with different {' + '.join(wanted)} values, "
            "so there is nothing to rank"
        )
    return out


def tokenize_ranking(tokenizer: Any, rec: Record, fmt: str, max_length: int) -> dict:
    """Token ids of each response (best first) after its left-truncated prompt, and the margin.

    "responses_cut" counts responses longer than max_length on their own (their start is cut).
    """
    responses = rec["responses"] if fmt == "rankings" else [rec["chosen"], rec["rejected"]]
    head = render_prompt(tokenizer, rec["prompt"])
    specials = SpecialTokens(tokenizer)
    encoded = [
        encode_response(
            tokenizer, specials, head, render_response(tokenizer, rec["prompt"], r), max_length
        )
        for r in responses
    ]
    return {
        "input_ids": [ids for ids, _ in encoded],
        "margin": float(rec.get("margin") or 0.0),
        "ranks": rec.get("ranks"),
        "responses_cut": sum(cut for _, cut in encoded),
    }


def model_pooling(model: torch.nn.Module) -> str:
    """The pooling recorded in a (possibly wrapped) model's config."""
    return getattr(getattr(model, "module", model).config, "reward_pooling", "cls")


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
        seqs = [s for d in chunk for s in d["input_ids"]]
        scores = score_batch(model, seqs, pad_id, run.device, model_pooling(model))
        places = [d["ranks"] for d in chunk]
        losses.append(float(kwise_loss(scores, sizes, ranks=places)) * len(chunk))
        hits, total = pair_hits(scores, sizes, places)
        correct, pairs = correct + hits, pairs + total
    model.train()
    return {"eval_accuracy": correct / max(pairs, 1), "eval_loss": sum(losses) / len(data)}


@torch.no_grad()
def fit_normalization(
    model: torch.nn.Module, data: list[dict], run: Run, pad_id: int
) -> dict[str, float]:
    """Gain and bias so that gain·r + bias has mean 0, std 1 on the reference responses."""
    model.eval()
    seqs = [s for d in data[:512] for s in d["input_ids"]]
    bs = run.cfg.eval_batch_size
    scores = torch.cat(
        [
            score_batch(model, seqs[k : k + bs], pad_id, run.device, model_pooling(model))
            for k in range(0, len(seqs), bs)
        ]
    )
    mean, std = float(scores.mean()), float(scores.std().clamp_min(1e-6))
    return {"gain": 1.0 / std, "bias": -mean / std, "raw_mean": mean, "raw_std": std}


def train(cfg: RewardConfig) -> int:
    """Train a reward model as configured; return EXIT_OK or EXIT_PREEMPTED."""
    if cfg.lr_scheduler == "auto":  # recorded in run_config.json as resolved
        schedule = lr_schedule("rm", count_parameters(cfg.model))
        cfg = dataclasses.replace(cfg, lr_scheduler=schedule)
    run = Run(cfg, "rm")
    acc = run.accelerator
    tokenizer = load_tokenizer(cfg.model)
    pad_id = tokenizer.pad_token_id
    if cfg.truncation != "prompt_left":
        raise ConfigError(f"truncation {cfg.truncation!r}: only 'prompt_left' is supported")

    # 1. Data: rankings (K-wise), pairs (K = 2, optional margin), or ratings ranked per prompt
    # by an aspect; tokenised before the loop.
    fmt = cfg.data_format
    if fmt == "auto":
        fmt = detect_format(cfg.train_file, ("rankings", "pairs", "ratings"))
    if (cfg.aspect or cfg.aspect_weights) and fmt != "ratings":
        raise ConfigError(f"aspect and aspect_weights apply to ratings data, not {fmt}")
    if cfg.aspect and cfg.aspect_weights:
        raise ConfigError("set aspect or aspect_weights, not both")
    if fmt == "ratings":
        train_recs = rated_rankings(
            load_records(cfg.train_file, fmt), cfg.aspect, cfg.aspect_weights, cfg.train_file
        )
        if cfg.eval_file:
            eval_recs = rated_rankings(
                load_records(cfg.eval_file, fmt), cfg.aspect, cfg.aspect_weights, cfg.eval_file
            )
        else:
            train_recs, eval_recs = hold_out(train_recs, cfg.eval_fraction, cfg.seed)
    else:
        train_recs, eval_recs = train_eval_split(
            cfg.train_file, cfg.eval_file, cfg.eval_fraction, fmt, cfg.seed
        )
    shape = "pairs" if fmt == "pairs" else "rankings"
    train_data = [tokenize_ranking(tokenizer, r, shape, cfg.max_length) for r in train_recs]
    eval_data = [tokenize_ranking(tokenizer, r, shape, cfg.max_length) for r in eval_recs]
    use_margin = fmt == "pairs" and cfg.use_margin and any(r.get("margin") for r in train_recs)
    per_step = cfg.batch_size * cfg.gradient_accumulation_steps * acc.num_processes
    steps = total_steps(cfg, len(train_data), per_step)

    # 2. Model: a scalar head; the pad token must be known or the wrong token gets scored.
    model = AutoModelForSequenceClassification.from_pretrained(cfg.model, num_labels=1)
    model.config.pad_token_id = pad_id
    pooling = resolve_pooling(cfg.pooling, cfg.model, model)
    prepare_for_pooling(model, pooling)
    if cfg.disable_dropout:
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
    model = maybe_lora(model, cfg, "SEQ_CLS")
    model, optimizer, scheduler = run.prepare(model, lambda m: make_optimizer(m, cfg, steps))
    start, _ = run.resume()
    model.train()

    # 3. The loop.
    for step in range(start, steps):
        t0 = time.perf_counter()
        losses, n_seqs, hits, pairs = [], 0, 0, 0
        for micro in step_micro_batches(run, len(train_data), step):
            chunk = [train_data[i] for i in micro]
            sizes = [len(d["input_ids"]) for d in chunk]  # K of each ranking
            seqs = [s for d in chunk for s in d["input_ids"]]  # N = ΣK sequences
            with run.accumulate(model):
                scores = score_batch(model, seqs, pad_id, run.device, pooling)  # (N,)
                margins = [d["margin"] for d in chunk] if use_margin else None
                places = [d["ranks"] for d in chunk]  # None, or ranks with ties
                loss = kwise_loss(scores, sizes, margins, places)
                if cfg.center_rewards_coef:
                    loss = loss + cfg.center_rewards_coef * scores.pow(2).mean()
                acc.backward(loss)
            losses.append(loss.detach())
            n_seqs += len(seqs)
            h, t = pair_hits(scores, sizes, places)
            hits, pairs = hits + h, pairs + t
        grad_norm = run.clip_grad_norm(model, cfg.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()

        elapsed = time.perf_counter() - t0
        if acc.num_processes > 1:  # the step's pairs over all processes
            hits, pairs = acc.reduce(torch.tensor([hits, pairs], device=run.device), "sum").tolist()
        metrics = {
            "loss": float(acc.reduce(torch.stack(losses).mean(), "mean")),
            "accuracy": hits / max(pairs, 1),  # the step's training pairs ordered correctly
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
    summary: dict[str, Any] = {"steps": steps, "data_format": fmt, "pooling": pooling}
    if fmt == "ratings":
        summary["aspect"] = cfg.aspect_weights or cfg.aspect or "score"
    summary["responses_cut"] = sum(d["responses_cut"] for d in train_data + eval_data)
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
        self.specials = SpecialTokens(self.tokenizer)
        self.model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)
        self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.pooling = resolve_pooling("auto", str(path), self.model)
        self.model.to(device).eval().requires_grad_(False)
        self.device, self.max_length = device, max_length
        norm_file = Path(path) / NORMALIZATION_FILE
        norm = getattr(self.model.config, "reward_normalization", None) or {}
        if norm_file.exists():
            norm = json.loads(norm_file.read_text())
        self.gain, self.bias = float(norm.get("gain", 1.0)), float(norm.get("bias", 0.0))

    @torch.no_grad()
    def score_responses(
        self, prompts: list[Any], responses: list[str], batch_size: int = 32
    ) -> torch.Tensor:
        """Normalised reward of responses to prompts (strings or message lists), shape (N,).

        Encoded as in training: the prompt rendered and left-truncated, the response kept.
        """
        seqs = [
            encode_response(
                self.tokenizer, self.specials, render_prompt(self.tokenizer, p), r, self.max_length
            )[0]
            for p, r in zip(prompts, responses, strict=True)
        ]
        pad_id = self.tokenizer.pad_token_id
        out = [
            score_batch(self.model, seqs[k : k + batch_size], pad_id, self.device, self.pooling)
            for k in range(0, len(seqs), batch_size)
        ]
        return torch.cat(out).cpu() * self.gain + self.bias


def load_reward_model(path: str | Path, device: Any = "cpu") -> RewardModel:
    """Load a reward model trained by `python -m trainer rm` for scoring."""
    return RewardModel(path, device)
