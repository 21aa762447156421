"""Scoring a prompt-masked batch: logits only from the first scored position, same numbers."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM

from trainer.data import IGNORE, collate
from trainer.lm import first_scored, scored_logits, token_logps


def _batch() -> dict[str, torch.Tensor]:
    """Three samples of different lengths whose responses start at positions 5, 3 and 7."""
    g = torch.Generator().manual_seed(0)
    samples = []
    for prompt, total in ((5, 12), (3, 9), (7, 15)):
        ids = torch.randint(7, 400, (total,), generator=g).tolist()
        samples.append({"input_ids": ids, "labels": [IGNORE] * prompt + ids[prompt:]})
    return collate(samples, pad_id=0)


def _full_logps(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Per-token log-probs from all logits, the plain way: (B, T-1), 0 where unlabelled."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    labels = batch["labels"][:, 1:]
    logp = torch.gather(
        F.log_softmax(logits[:, :-1].float(), -1), 2, labels.clamp_min(0)[..., None]
    )
    return logp.squeeze(-1) * (labels != IGNORE)


class _NoLogitsToKeep(torch.nn.Module):
    """A causal LM whose forward does not take `logits_to_keep` (all logits come back)."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        return self.inner(input_ids=input_ids, attention_mask=attention_mask)


@torch.no_grad()
def test_scored_logits_skip_the_prompt_and_match_the_full_computation(causal_lm: str) -> None:
    model = AutoModelForCausalLM.from_pretrained(causal_lm).eval()
    batch = _batch()
    assert first_scored(batch["labels"]) == 2  # the earliest response token is at position 3

    logits, targets = scored_logits(model, batch)
    width = batch["input_ids"].size(1)
    assert logits.shape[:2] == targets.shape == (3, width - 1 - 2)
    assert logits.dtype == torch.float32

    full = _full_logps(model, batch)
    assert torch.equal(full[:, :2], torch.zeros(3, 2))  # nothing scored before position 2
    ours = token_logps(logits, targets)
    torch.testing.assert_close(ours, full[:, 2:], rtol=1e-5, atol=1e-5)

    # A model without `logits_to_keep` computes every logit; the same positions are kept.
    plain_logits, plain_targets = scored_logits(_NoLogitsToKeep(model), batch)
    assert torch.equal(plain_targets, targets)
    torch.testing.assert_close(plain_logits, logits, rtol=1e-5, atol=1e-5)


def test_nothing_scored_gives_an_empty_slice() -> None:
    labels = torch.full((2, 6), IGNORE)
    assert first_scored(labels) == 5
    logits = torch.randn(2, 0, 11)
    assert token_logps(logits, labels[:, 6:]).shape == (2, 0)
