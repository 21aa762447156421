"""Reward model on `ratings` data: one aspect or a weighted sum, equal values not compared."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.trainer.trainer_testdata import MARKER, WORDS, write_jsonl
from trainer import EXIT_OK
from trainer.configs import ConfigError, RewardConfig, build_config
from trainer.data import DataError
from trainer.reward import kwise_loss, load_reward_model, rated_rankings, train


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.integers(0, 3), min_size=2, max_size=6), min_size=1, max_size=4))
def test_pairs_of_equal_value_contribute_nothing(levels: list[list[int]]) -> None:
    levels = [sorted(level, reverse=True) for level in levels]  # best first
    sizes = [len(level) for level in levels]
    g = torch.Generator().manual_seed(sum(sizes))
    scores = torch.randn(sum(sizes), generator=g, dtype=torch.float64, requires_grad=True)
    places = [[max(level) - v for v in level] for level in levels]  # best first, ties equal
    loss = kwise_loss(scores, sizes, ranks=places)
    per_ranking, start = [], 0
    for level in levels:  # naive: only the pairs whose values differ
        r = scores[start : start + len(level)]
        pairs = [
            -F.logsigmoid(r[i] - r[j])
            for i, j in itertools.combinations(range(len(level)), 2)
            if level[i] != level[j]
        ]
        if pairs:
            per_ranking.append(torch.stack(pairs).mean())
        start += len(level)
    naive = torch.stack(per_ranking).mean() if per_ranking else scores.sum() * 0.0
    torch.testing.assert_close(loss, naive)
    (grad,) = torch.autograd.grad(loss, scores)
    for level, block in zip(levels, torch.split(grad, sizes), strict=True):
        if len(set(level)) == 1:  # a ranking of equal values only: no gradient at all
            assert torch.count_nonzero(block) == 0


def rows(n: int, seed: int) -> list[dict]:
    """Ratings rows, 3 responses per prompt: helpfulness counts the marker words, the main
    score counts the opposite (fewer markers, higher score), honesty is constant."""
    r = random.Random(seed)
    out = []
    for p in range(n):
        prompt = " ".join(r.choice(WORDS) for _ in range(4)) + f" {p}"
        for markers in range(3):
            words = [r.choice(WORDS) for _ in range(6)]
            for _ in range(markers):
                words.insert(r.randrange(len(words) + 1), MARKER)
            scores = {"score": 2 - markers, "helpfulness": 1 + 3 * markers, "honesty": 1}
            out.append(
                {
                    "prompt": prompt,
                    "response": " ".join(words),
                    "score": 2 - markers,
                    "scores": scores,
                }
            )
    return out


def test_ratings_become_one_ranking_per_prompt() -> None:
    data = [
        {"prompt": "p", "response": "a", "score": 1, "scores": {"score": 1, "help": 2}},
        {"prompt": "p", "response": "b", "score": 3, "scores": {"score": 3, "help": 2}},
        {"prompt": "p", "response": "c", "score": 2, "scores": {"score": 2}},
        {"prompt": "q", "response": "d", "score": 1, "scores": {"score": 1, "help": 5}},
    ]
    assert rated_rankings(data, "", {}, "f") == [
        {"prompt": "p", "responses": ["b", "c", "a"], "ranks": [0, 1, 2]}
    ]  # q has one response: nothing to rank
    weighted = rated_rankings(data, "", {"score": 1.0, "help": 2.0}, "f")
    assert weighted == [{"prompt": "p", "responses": ["b", "a"], "ranks": [0, 1]}]  # c lacks help
    tied = [
        {"prompt": "p", "response": x, "score": v}
        for x, v in zip("abcd", [1, 3, 1, 2], strict=True)
    ]
    assert rated_rankings(tied, "", {}, "f") == [
        {"prompt": "p", "responses": ["b", "d", "a", "c"], "ranks": [0, 1, 2, 2]}
    ]
    with pytest.raises(DataError, match="no prompt has two responses with different help values"):
        rated_rankings(data, "help", {}, "f")  # a and b tie on help
    with pytest.raises(ConfigError, match="'honesty' is in no row; the rows have help, score"):
        rated_rankings(data, "honesty", {}, "f")


def test_aspect_weights_come_from_a_config_file_or_the_command_line() -> None:
    cfg = build_config("rm", {"aspect_weights": {"helpfulness": 1, "honesty": "0.5"}})
    assert cfg.aspect_weights == {"helpfulness": 1.0, "honesty": 0.5}
    assert build_config("rm", {}, {"aspect_weights": '{"a": 2}'}).aspect_weights == {"a": 2.0}
    with pytest.raises(ConfigError, match="aspect_weights"):
        build_config("rm", {"aspect_weights": "[1, 2]"})


def _train(tmp_path: Path, encoder: str, name: str, **aspect: object) -> Path:
    cfg = RewardConfig(
        model=encoder,
        train_file=write_jsonl(tmp_path / "train.jsonl", rows(60, seed=1)),
        eval_file=write_jsonl(tmp_path / "eval.jsonl", rows(20, seed=2)),
        output_dir=str(tmp_path / name),
        max_steps=30,
        batch_size=8,
        learning_rate=1e-3,
        warmup_ratio=0.1,
        **aspect,  # type: ignore[arg-type]
    )
    assert train(cfg) == EXIT_OK
    return tmp_path / name


def test_the_reward_model_learns_the_chosen_aspect(tmp_path: Path, encoder: str) -> None:
    helpful = _train(tmp_path, encoder, "helpful", aspect="helpfulness")
    summary = json.loads((helpful / "summary.json").read_text())
    assert summary["data_format"] == "ratings" and summary["aspect"] == "helpfulness"
    assert summary["eval_accuracy"] >= 0.9
    # The main score orders the same responses the other way round: so must its model.
    main = _train(tmp_path, encoder, "main", aspect_weights={"score": 1.0, "honesty": 3.0})
    texts = [f"good {MARKER} {MARKER} dog", "good dog"]
    by_help = load_reward_model(helpful).score_responses(["the cat"] * 2, texts)
    by_main = load_reward_model(main).score_responses(["the cat"] * 2, texts)
    assert by_help[0] > by_help[1]
    assert by_main[0] < by_main[1]


def test_an_aspect_on_rankings_data_is_refused(tmp_path: Path, encoder: str) -> None:
    data = write_jsonl(tmp_path / "r.jsonl", [{"prompt": "p", "responses": ["a", "b"]}] * 4)
    cfg = RewardConfig(model=encoder, train_file=data, output_dir=str(tmp_path / "o"), aspect="x")
    with pytest.raises(ConfigError, match="apply to ratings data, not rankings"):
        train(cfg)
