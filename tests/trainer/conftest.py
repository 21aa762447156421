"""Fixtures: tiny random models built once per session (helpers live in trainer_testdata.py)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator

import pytest

from tests.trainer.trainer_testdata import pair_records, ranking_records, sft_records, write_jsonl
from trainer.tiny import build_tiny_causal_lm, build_tiny_encoder


@pytest.fixture(autouse=True)
def fresh_accelerate_state() -> Iterator[None]:
    """accelerate keeps one process-wide state, its precision fixed by the first Accelerator;
    a run is a process of its own, but these tests run many in one (a judge picks bf16 by
    default where the CPU has it, other trainers fp32), so each test starts it afresh."""
    yield
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)


@pytest.fixture(scope="session")
def causal_lm(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Directory of a tiny random Llama-style LM with tokenizer and chat template."""
    return str(build_tiny_causal_lm(tmp_path_factory.mktemp("tiny") / "causal-lm"))


@pytest.fixture(scope="session")
def encoder(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Directory of a tiny random BERT-style encoder with tokenizer."""
    return str(build_tiny_encoder(tmp_path_factory.mktemp("tiny") / "encoder"))


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("mp-data")
    return {
        "sft": write_jsonl(root / "sft.jsonl", sft_records(64)),
        "rm": write_jsonl(root / "rm.jsonl", ranking_records(32, 3)),
        "dpo": write_jsonl(root / "dpo.jsonl", pair_records(32)),
    }


@pytest.fixture(scope="module")
def encoder_without_dropout(encoder: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The tiny encoder with dropout off: each rank draws its own masks, one process others."""
    out = tmp_path_factory.mktemp("encoder") / "no-dropout"
    shutil.copytree(encoder, out)
    config = json.loads((out / "config.json").read_text())
    config |= {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
    (out / "config.json").write_text(json.dumps(config))
    return str(out)
