"""Tiny models load through the same from_pretrained path as a user's model, deterministically."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

from trainer.__main__ import main


def test_tiny_cli_builds_loadable_deterministic_models(tmp_path: Path, causal_lm: str) -> None:
    assert main(["tiny", "--out", str(tmp_path)]) == 0
    tok = AutoTokenizer.from_pretrained(tmp_path / "causal-lm")
    assert tok.pad_token and tok.eos_token and tok.bos_token and tok.chat_template
    lm = AutoModelForCausalLM.from_pretrained(tmp_path / "causal-lm")
    ids = tok("hello world", return_tensors="pt")["input_ids"]
    assert lm(ids).logits.shape == (1, ids.shape[1], len(tok))
    enc = AutoModelForSequenceClassification.from_pretrained(tmp_path / "encoder")
    etok = AutoTokenizer.from_pretrained(tmp_path / "encoder")
    assert enc(**etok(["a b"], return_tensors="pt")).logits.shape == (1, 1)
    # Seeded: the session fixture, built separately, has identical weights and vocabulary.
    digest = [
        hashlib.sha256((Path(p) / "model.safetensors").read_bytes()).hexdigest()
        for p in (causal_lm, tmp_path / "causal-lm")
    ]
    assert digest[0] == digest[1]
    assert torch.equal(
        lm.model.embed_tokens.weight,
        AutoModelForCausalLM.from_pretrained(causal_lm).model.embed_tokens.weight,
    )
