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


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 3), min_size=2, max_size=9), st.integers(0, 2**31 - 1))
def test_tied_pairs_contribute_nothing_to_the_kwise_loss(steps: list[int], seed: int) -> None:
    """Places from cumulative steps (a 0 step ties a response with the one above it): the loss
    is the mean over the untied pairs only, and reordering responses inside a tied group (with
    their scores) changes neither the loss nor its gradient."""
    places = [sum(steps[: i + 1]) - steps[0] for i in range(len(steps))]
    g = torch.Generator().manual_seed(seed)
    scores = torch.randn(len(places), generator=g, dtype=torch.float64, requires_grad=True)
    loss = kwise_loss(scores, [len(places)], ranks=[places])

    untied = [
        -F.logsigmoid(scores[i] - scores[j])
        for i, j in itertools.combinations(range(len(places)), 2)
        if places[i] != places[j]
    ]
    if not untied:  # every response tied: nothing to learn
        assert float(loss) == 0.0
        return
    torch.testing.assert_close(loss, torch.stack(untied).mean())

    # Reverse the order inside every tied group: same loss, same gradient per response.
    order = sorted(range(len(places)), key=lambda i: (places[i], -i))
    swapped = kwise_loss(scores[order], [len(places)], ranks=[[places[i] for i in order]])
    (grad,) = torch.autograd.grad(loss, scores, retain_graph=True)
    (grad_swapped,) = torch.autograd.grad(swapped, scores)
    torch.testing.assert_close(swapped, loss)
    torch.testing.assert_close(grad_swapped, grad)


def test_a_tie_is_not_learned_as_a_preference() -> None:
    """[a, [b, c]]: only a>b and a>c count; the loss is the same whatever b and c score apart."""
    for b, c in ((0.0, 0.0), (2.0, -2.0), (-2.0, 2.0)):
        r = torch.tensor([1.0, b, c])
        expected = (-F.logsigmoid(torch.tensor(1.0 - b)) - F.logsigmoid(torch.tensor(1.0 - c))) / 2
        assert torch.isclose(kwise_loss(r, [3], ranks=[[0, 1, 1]]), expected)


def test_strength_margins_shift_the_pair_loss_as_documented() -> None:
    """Llama 2's margin loss −log σ(r_c − r_r − m), hand-computed: with r_c − r_r = 1, a
    "much better" pair (m = 1) costs log 2 = 0.693147, a "slightly better" one (m = 1/3)
    −log σ(2/3) = 0.414370 and a "negligibly better" one (m = 0) −log σ(1) = 0.313262; a
    larger margin asks for a larger gap, so it costs more at the same gap."""
    r = torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0, 0.0], dtype=torch.float64)
    each = [float(kwise_loss(r[k : k + 2], [2], [m])) for k, m in ((0, 1.0), (2, 1 / 3), (4, 0.0))]
    assert [round(x, 6) for x in each] == [0.693147, 0.414370, 0.313262]
    batch = kwise_loss(r, [2, 2, 2], [1.0, 1 / 3, 0.0])
    assert round(float(batch), 6) == round((0.693147 + 0.414370 + 0.313262) / 3, 6)


def test_ranks_in_a_rankings_file_are_read_and_checked(tmp_path: Path) -> None:
    from trainer.data import DataError, load_records

    good = {"prompt": "p", "responses": ["a", "b", "c"], "ranks": [0, 1, 1]}
    path = write_jsonl(tmp_path / "good.jsonl", [good])
    assert load_records(path, "rankings")[0]["ranks"] == [0, 1, 1]
    for bad in ([0, 0, 0], [1, 0, 2], [0, 1], [0, "1", 2]):
        path = write_jsonl(tmp_path / "bad.jsonl", [good | {"ranks": bad}])
        try:
            load_records(path, "rankings")
        except DataError as exc:
            assert '"ranks"' in str(exc) and ":1:" in str(exc)
        else:
            raise AssertionError(f"ranks {bad} were accepted")


def test_reward_model_trains_on_rankings_with_ties(tmp_path: Path, encoder: str) -> None:
    """Rows whose two worse responses are tied (in random order): the run reads "ranks", counts
    only the untied pairs (2 per ranking) and learns the best one."""
    import random

    shuffle = random.Random(0)

    def tied(records: list[dict]) -> list[dict]:
        out = []
        for rec in records:
            worse = rec["responses"][1:]
            shuffle.shuffle(worse)
            out.append({"prompt": rec["prompt"], "responses": [rec["responses"][0], *worse]})
            out[-1]["ranks"] = [0, 1, 1]
        return out

    cfg = RewardConfig(
        model=encoder,
        train_file=write_jsonl(tmp_path / "train.jsonl", tied(ranking_records(160, 3, seed=4))),
        eval_file=write_jsonl(tmp_path / "eval.jsonl", tied(ranking_records(40, 3, seed=5))),
        output_dir=str(tmp_path / "rm"),
        max_steps=30,
        batch_size=8,
        learning_rate=1e-3,
        warmup_ratio=0.1,
        normalize=False,
    )
    assert train(cfg) == EXIT_OK
    summary = json.loads((tmp_path / "rm" / "summary.json").read_text())
    assert summary["data_format"] == "rankings" and summary["eval_accuracy"] >= 0.9
