"""Reward model: the K-wise loss, learning a synthetic preference, normalisation, pad tokens."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import AutoTokenizer

from tests.trainer.trainer_testdata import MARKER, ranking_records, write_jsonl
from trainer import EXIT_OK
from trainer.configs import RewardConfig
from trainer.reward import kwise_loss, load_reward_model, train


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(2, 9), min_size=1, max_size=5), st.integers(0, 2**31 - 1))
def test_kwise_loss_equals_mean_of_naive_pairwise_losses(sizes: list[int], seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    features = torch.randn(sum(sizes), 5, generator=g, dtype=torch.float64)  # one row per response
    w = torch.randn(5, generator=g, dtype=torch.float64, requires_grad=True)  # a linear "model"

    kwise = kwise_loss(features @ w, sizes)  # every response scored once
    (grad_kwise,) = torch.autograd.grad(kwise, w)

    per_ranking, start = [], 0
    for k in sizes:  # naive: score both sides of every pair separately
        rows = features[start : start + k]
        pair_losses = [
            -F.logsigmoid(rows[i] @ w - rows[j] @ w) for i, j in itertools.combinations(range(k), 2)
        ]
        per_ranking.append(torch.stack(pair_losses).mean())
        start += k
    naive = torch.stack(per_ranking).mean()
    (grad_naive,) = torch.autograd.grad(naive, w)
    torch.testing.assert_close(kwise, naive)
    torch.testing.assert_close(grad_kwise, grad_naive)


def test_margin_shifts_the_pair_loss() -> None:
    r = torch.tensor([1.0, 0.0])
    assert torch.isclose(kwise_loss(r, [2], [0.5]), -F.logsigmoid(torch.tensor(0.5)))


def test_reward_model_learns_marker_preference(tmp_path: Path, encoder: str) -> None:
    train_file = write_jsonl(tmp_path / "train.jsonl", ranking_records(160, 4, seed=1))
    eval_file = write_jsonl(tmp_path / "eval.jsonl", ranking_records(40, 4, seed=2))
    cfg = RewardConfig(
        model=encoder,
        train_file=train_file,
        eval_file=eval_file,
        output_dir=str(tmp_path / "rm"),
        max_steps=40,
        batch_size=8,
        learning_rate=1e-3,
        warmup_ratio=0.1,
    )
    assert train(cfg) == EXIT_OK
    summary = json.loads((tmp_path / "rm" / "summary.json").read_text())
    assert summary["eval_accuracy"] >= 0.9

    norm = json.loads((tmp_path / "rm" / "reward_normalization.json").read_text())
    assert norm["gain"] > 0
    rm = load_reward_model(tmp_path / "rm")
    recs = ranking_records(160, 4, seed=1)[:128]  # the reference responses the normalisation used
    scores = torch.cat([rm.score_responses([r["prompt"]] * 4, r["responses"]) for r in recs])
    assert abs(float(scores.mean())) < 0.1 and abs(float(scores.std()) - 1) < 0.1
    better = rm.score_responses(["the cat"] * 2, [f"good {MARKER} {MARKER} dog", "good dog"])
    assert better[0] > better[1]


def test_decoder_reward_model_without_pad_token_learns(tmp_path: Path, causal_lm: str) -> None:
    # A decoder whose tokenizer has no pad token, as most causal LMs ship.
    model_dir = tmp_path / "nopad"
    tok = AutoTokenizer.from_pretrained(causal_lm)
    tok.pad_token = None
    tok.save_pretrained(model_dir)
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(causal_lm).save_pretrained(model_dir)
    assert AutoTokenizer.from_pretrained(model_dir).pad_token is None

    data = write_jsonl(
        tmp_path / "pairs.jsonl",
        [
            {"prompt": r["prompt"], "chosen": r["responses"][0], "rejected": r["responses"][-1]}
            for r in ranking_records(200, 3, seed=3)
        ],
    )
    cfg = RewardConfig(
        model=str(model_dir),
        train_file=data,
        output_dir=str(tmp_path / "rm"),
        max_steps=30,
        batch_size=8,
        learning_rate=1e-3,
        eval_fraction=0.2,
    )
    assert train(cfg) == EXIT_OK
    assert json.loads((tmp_path / "rm" / "summary.json").read_text())["eval_accuracy"] >= 0.9
    config = json.loads((tmp_path / "rm" / "config.json").read_text())
    assert (
        config["pad_token_id"]
        == AutoTokenizer.from_pretrained(tmp_path / "rm").pad_token_id
        is not None
    )
