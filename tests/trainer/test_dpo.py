"""DPO: preference accuracy rises on held-out pairs; the loss starts at log 2."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from tests.trainer.trainer_testdata import pair_records, read_metrics, write_jsonl
from trainer import EXIT_OK
from trainer.configs import DPOConfig
from trainer.dpo import dpo_loss, train


def test_dpo_loss_is_log2_at_the_reference() -> None:
    logps = torch.tensor([[-3.0, -5.0], [-2.0, -1.0]])
    loss, rewards = dpo_loss(logps, logps.clone(), beta=0.1)
    assert math.isclose(float(loss), math.log(2), rel_tol=1e-6) and rewards.abs().max() == 0


def test_dpo_accuracy_rises(tmp_path: Path, causal_lm: str) -> None:
    train_file = write_jsonl(tmp_path / "train.jsonl", pair_records(96, seed=1))
    eval_file = write_jsonl(tmp_path / "eval.jsonl", pair_records(32, seed=2))
    cfg = DPOConfig(
        model=causal_lm,
        train_file=train_file,
        eval_file=eval_file,
        output_dir=str(tmp_path / "dpo"),
        max_steps=24,
        batch_size=8,
        learning_rate=2e-3,
        beta=0.1,
        eval_every=12,
    )
    assert train(cfg) == EXIT_OK
    rows = read_metrics(cfg.output_dir)
    assert math.isclose(rows[0]["loss"], math.log(2), rel_tol=1e-4)  # precomputed reference
    assert rows[0]["reward_margin"] == 0
    summary = json.loads((tmp_path / "dpo" / "summary.json").read_text())
    assert summary["eval_accuracy"] >= 0.9 and summary["eval_reward_margin"] > 0
    assert rows[11]["eval_loss"] > summary["eval_loss"]
    assert sum(r["accuracy"] for r in rows[-4:]) / 4 >= 0.9
