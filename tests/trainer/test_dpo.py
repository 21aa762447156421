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


def test_dpo_weights_each_pair_by_its_margin_when_asked() -> None:
    """mean(w · loss): at the reference every pair costs log 2, so weights 1, 0.5 and 0 give
    log 2 · 1.5 / 3; a pair of weight 0 gets no gradient."""
    policy = torch.tensor([[-3.0, -5.0], [-2.0, -1.0], [-4.0, -4.0]], requires_grad=True)
    ref = policy.detach().clone()
    loss, _ = dpo_loss(policy, ref, beta=0.1, weights=torch.tensor([1.0, 0.5, 0.0]))
    assert math.isclose(float(loss.detach()), math.log(2) * 1.5 / 3, rel_tol=1e-6)
    loss.backward()
    assert policy.grad is not None and policy.grad[2].abs().max() == 0
    assert policy.grad[0].abs().max() > 2 * policy.grad[1].abs().max() * 0.99


def test_dpo_run_uses_the_margin_weights(tmp_path: Path, causal_lm: str) -> None:
    """With weight_by_margin the first step's loss is the weighted one (margin 0.5: half of
    log 2); without it, the margins are ignored (log 2)."""
    records = [r | {"margin": 0.5} for r in pair_records(16, seed=3)]
    train_file = write_jsonl(tmp_path / "train.jsonl", records)
    for weighted, expected in ((True, 0.5 * math.log(2)), (False, math.log(2))):
        out = tmp_path / f"dpo-{weighted}"
        cfg = DPOConfig(
            model=causal_lm,
            train_file=train_file,
            eval_fraction=0.0,
            output_dir=str(out),
            max_steps=1,
            batch_size=4,
            weight_by_margin=weighted,
        )
        assert train(cfg) == EXIT_OK
        assert math.isclose(read_metrics(out)[0]["loss"], expected, rel_tol=1e-4)
