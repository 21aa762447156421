"""How a reward model turns a (prompt, response) into one number: encoding and pooling.

Encoding keeps the response whole and truncates the prompt from the left: the score judges the
response, so a long conversation loses its oldest turns first. Only a response that alone exceeds
`max_length` is cut (its beginning, so its end is still scored), and that is counted.

Pooling says which hidden states the scalar head reads:
  last  the last real token (causal LMs, whose last position has seen the whole text)
  cls   the encoder's own classification path (BERT-style [CLS] + pooler)
  mean  the mean of the real tokens' hidden states (sentence-transformers encoders)
`auto` picks what the backbone was trained with; the choice is saved in the model's config as
`reward_pooling`, so scoring after training pools the same way.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from trainer.configs import ConfigError
from trainer.data import SpecialTokens, pad

POOLINGS = ("last", "cls", "mean")


class PoolingError(ConfigError):
    """A pooling the model cannot do, or an unknown pooling name."""


def _inner(model: torch.nn.Module) -> torch.nn.Module:
    """The transformers model under DDP and peft wrappers."""
    model = getattr(model, "module", model)  # DistributedDataParallel
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def is_causal(model: torch.nn.Module) -> bool:
    """A decoder-only sequence classifier (its head is called `score`), e.g. Llama, GPT-2, Qwen."""
    return hasattr(_inner(model), "score")


def resolve_pooling(requested: str, model_dir: str, model: torch.nn.Module) -> str:
    """The pooling to use: `requested`, or for `auto` what the backbone was trained with."""
    if requested not in ("auto", *POOLINGS):
        raise PoolingError(f"pooling {requested!r}: use one of auto, {', '.join(POOLINGS)}")
    if requested != "auto":
        if requested == "cls" and is_causal(model):
            raise PoolingError("pooling 'cls' needs an encoder; a causal LM pools 'last' or 'mean'")
        return requested
    saved = getattr(model.config, "reward_pooling", None)
    if saved in POOLINGS:
        return saved
    if is_causal(model):
        return "last"
    st_pooling = Path(model_dir) / "1_Pooling" / "config.json"  # a sentence-transformers model
    if st_pooling.exists():
        modes = json.loads(st_pooling.read_text())
        if modes.get("pooling_mode_mean_tokens"):
            return "mean"
    return "cls"


def encode_response(
    tokenizer: Any, specials: SpecialTokens, prompt_text: str, response_text: str, max_length: int
) -> tuple[list[int], bool]:
    """Ids of prompt + response within max_length, prompt left-truncated; (ids, response_cut)."""
    prompt = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    response = tokenizer(response_text, add_special_tokens=False)["input_ids"]
    return join_response(specials, prompt, response, max_length)


def join_response(
    specials: SpecialTokens, prompt: list[int], response: list[int], max_length: int
) -> tuple[list[int], bool]:
    """`encode_response` from token ids already there (a batch tokenised at once)."""
    budget = max(1, max_length - len(specials))
    cut = len(response) > budget
    if cut:
        response = response[-budget:]
    room = budget - len(response)
    prompt = prompt[len(prompt) - room :] if room > 0 else []
    return specials.prefix + prompt + response + specials.suffix, cut


def _head(model: torch.nn.Module) -> torch.nn.Module:
    """The scalar head of a sequence classifier when it is one linear map of a hidden state."""
    inner = _inner(model)
    head = getattr(inner, "score", None) or getattr(inner, "classifier", None)
    linear = getattr(head, "modules_to_save", None)  # peft wraps a trained head
    probe = next(iter(linear.values())) if linear else head
    if not isinstance(probe, torch.nn.Linear):
        raise PoolingError(
            f"{type(inner).__name__}: its head is not one linear layer; use pooling 'cls'"
        )
    return head


def prepare_for_pooling(model: torch.nn.Module, pooling: str) -> None:
    """Record the pooling in the config; freeze an encoder's pooler that mean pooling bypasses."""
    model.config.reward_pooling = pooling
    if pooling != "cls":
        _head(model)  # fail early, before any training
        for name, param in model.named_parameters():
            if ".pooler." in name:  # unused: no gradient, and DDP must not wait for one
                param.requires_grad_(False)


def score_batch(
    model: torch.nn.Module, seqs: list[list[int]], pad_id: int, device: Any, pooling: str = "cls"
) -> torch.Tensor:
    """Scalar reward of each sequence, (N,), pooled as configured (right padding)."""
    input_ids = pad(seqs, pad_id).to(device)  # (N, T)
    mask = pad([[1] * len(s) for s in seqs], 0).to(device)  # (N, T)
    if pooling == "cls":
        return model(input_ids=input_ids, attention_mask=mask).logits[:, 0].float()  # (N,)
    out = model(input_ids=input_ids, attention_mask=mask, output_hidden_states=True)
    hidden = out.hidden_states[-1]  # (N, T, H)
    if pooling == "last":
        lengths = mask.sum(-1) - 1  # (N,) index of the last real token
        pooled = hidden[torch.arange(len(seqs), device=hidden.device), lengths]  # (N, H)
    else:  # mean over real tokens
        m = mask.unsqueeze(-1).to(hidden.dtype)  # (N, T, 1)
        pooled = (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)  # (N, H)
    head = _head(model)
    return head(pooled.to(next(head.parameters()).dtype))[:, 0].float()  # (N,)
