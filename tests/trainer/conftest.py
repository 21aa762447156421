"""Fixtures: tiny random models built once per session (helpers live in trainer_testdata.py)."""

from __future__ import annotations

import pytest

from trainer.tiny import build_tiny_causal_lm, build_tiny_encoder


@pytest.fixture(scope="session")
def causal_lm(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Directory of a tiny random Llama-style LM with tokenizer and chat template."""
    return str(build_tiny_causal_lm(tmp_path_factory.mktemp("tiny") / "causal-lm"))


@pytest.fixture(scope="session")
def encoder(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Directory of a tiny random BERT-style encoder with tokenizer."""
    return str(build_tiny_encoder(tmp_path_factory.mktemp("tiny") / "encoder"))
