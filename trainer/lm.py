"""Causal-LM scoring shared by SFT and DPO: logits only where a labelled token is predicted.

A prompt-masked batch needs no logits over its prompt positions, and the LM head (a hidden × vocab
matmul per position, the largest single layer of a small model with a large vocabulary) plus
the softmax over it are then wasted there. Models that accept `logits_to_keep` (the transformers
causal LMs) compute the head from the first position of the batch that predicts a label onward;
others compute all logits and the same positions are sliced out, so the result is identical.
"""

from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F

from trainer.data import IGNORE

_ACCEPTS: dict[type, bool] = {}


def _accepts_logits_to_keep(cls: type[torch.nn.Module]) -> bool:
    if cls not in _ACCEPTS:
        _ACCEPTS[cls] = "logits_to_keep" in inspect.signature(cls.forward).parameters
    return _ACCEPTS[cls]


def _inner(model: torch.nn.Module) -> torch.nn.Module:
    """The transformers model under DDP and peft wrappers."""
    model = getattr(model, "module", model)  # DistributedDataParallel
    get_base = getattr(model, "get_base_model", None)  # peft
    return get_base() if callable(get_base) else model


def first_scored(labels: torch.Tensor) -> int:
    """The first position of the batch whose next token is labelled (T − 1 when none is)."""
    scored = (labels[:, 1:] != IGNORE).any(0)  # (T-1,)
    hits = scored.nonzero()
    return int(hits[0]) if len(hits) else labels.size(1) - 1


def scored_logits(
    model: torch.nn.Module, batch: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Float logits of the positions that predict the batch's labels, and those labels.

    Returns (logits (B, S, V), targets (B, S)) where position s of the slice predicts target s;
    targets are IGNORE where nothing is scored (prompt, padding).
    """
    labels = batch["labels"]
    first = first_scored(labels)
    keep = labels.size(1) - first  # positions first .. T-1; the last predicts nothing
    inner: type[torch.nn.Module] = type(_inner(model))
    kwargs = {"logits_to_keep": keep} if _accepts_logits_to_keep(inner) else {}
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], **kwargs)
    logits = out.logits[:, -keep:-1]  # (B, S, V) with S = T - 1 - first
    return logits.float(), labels[:, first + 1 :]


def token_logps(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log p(target) per position, 0 where the target is IGNORE: (B, S)."""
    flat = F.cross_entropy(
        logits.reshape(-1, logits.size(-1)),
        targets.reshape(-1),
        ignore_index=IGNORE,
        reduction="none",
    )
    return -flat.view(targets.shape)
