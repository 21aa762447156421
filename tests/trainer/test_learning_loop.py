"""One short round of the closed loop in process: SFT → sample → simulated labels → RM → PPO.

Fails if any stage silently stops learning: the PPO policy must beat the SFT policy on a hidden
reward that only the simulated labelers see (bench/loop_task.py documents it).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from bench.loop_task import (
    demonstration,
    labelers,
    mean_hidden,
    prompts,
    rankings_from_labelers,
    sample,
)
from tests.trainer.trainer_testdata import write_jsonl
from trainer import EXIT_OK, ppo, reward, sft
from trainer.configs import PPOConfig, RewardConfig, SFTConfig

pytestmark = pytest.mark.slow


def test_one_round_raises_the_hidden_reward(tmp_path: Path, causal_lm: str, encoder: str) -> None:
    r = random.Random(0)
    train_prompts, held_out = prompts(48, seed=1), prompts(24, seed=2)
    demos = [{"prompt": p, "completion": demonstration(r)} for p in train_prompts * 2]
    sft_dir = str(tmp_path / "sft")
    assert (
        sft.train(
            SFTConfig(
                model=causal_lm,
                train_file=write_jsonl(tmp_path / "sft.jsonl", demos),
                output_dir=sft_dir,
                max_steps=40,
                batch_size=16,
                learning_rate=3e-3,
                eval_fraction=0.0,
                max_length=64,
            )
        )
        == EXIT_OK
    )

    replies = sample(sft_dir, train_prompts, 4, max_new_tokens=10, temperature=1.0, seed=3)
    team = labelers(10, adversarial=0.1, temperature=0.1, seed=4)
    ranked = rankings_from_labelers(train_prompts, replies, team, per_prompt=1)
    rm_dir = str(tmp_path / "rm")
    assert (
        reward.train(
            RewardConfig(
                model=encoder,
                train_file=write_jsonl(tmp_path / "rankings.jsonl", ranked),
                output_dir=rm_dir,
                max_steps=40,
                batch_size=8,
                learning_rate=1e-3,
                eval_fraction=0.0,
                max_length=64,
            )
        )
        == EXIT_OK
    )

    ppo_dir = str(tmp_path / "ppo")
    rows = [{"prompt": p} for p in train_prompts]
    assert (
        ppo.train(
            PPOConfig(
                model=sft_dir,
                reward_model=rm_dir,
                train_file=write_jsonl(tmp_path / "prompts.jsonl", rows),
                output_dir=ppo_dir,
                max_steps=12,
                batch_size=24,
                mini_batch_size=12,
                response_length=10,
                learning_rate=3e-3,
                temperature=1.0,
                kl_coef=0.02,
                adaptive_kl=False,
                eval_fraction=0.0,
                lr_scheduler="constant",
            )
        )
        == EXIT_OK
    )

    before = mean_hidden(sample(sft_dir, held_out, 4, 10, 1.0, seed=5))
    after = mean_hidden(sample(ppo_dir, held_out, 4, 10, 1.0, seed=5))
    kls = [json.loads(x)["kl"] for x in (Path(ppo_dir) / "metrics.jsonl").read_text().splitlines()]
    assert after > before + 0.05, (before, after, kls)
