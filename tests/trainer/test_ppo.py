"""PPO: GAE against a plain loop, zero KL at the start, and learning a simple reward."""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from tests.trainer.trainer_testdata import read_metrics, sentence, write_jsonl
from trainer import EXIT_OK
from trainer.configs import ConfigError, PPOConfig
from trainer.factories import load_tokenizer
from trainer.ppo import (
    AdaptiveKLController,
    PolicyWithValue,
    clipped_policy_loss,
    critic_body,
    gae,
    masked_whiten,
    rollout,
    sequence_kl,
    train,
)

TARGET = range(100, 132)  # the reward: share of response tokens with an id in this range


def reward_fn(prompts: list, responses: list[str], ids: list[list[int]]) -> torch.Tensor:
    return torch.tensor([sum(i in TARGET for i in x) / max(len(x), 1) for x in ids])


def test_gae_matches_a_plain_loop() -> None:
    g = torch.Generator().manual_seed(0)
    B, L, gamma, lam = 5, 9, 0.99, 0.95
    rewards, values = torch.randn(B, L, generator=g), torch.randn(B, L, generator=g)
    lengths = [9, 1, 4, 7, 9]
    mask = torch.tensor([[1.0] * n + [0.0] * (L - n) for n in lengths])
    adv, ret = gae(rewards, values, mask, gamma, lam)
    for b, n in enumerate(lengths):
        for t in range(L):
            if t >= n:
                assert adv[b, t] == 0 and ret[b, t] == 0
                continue
            expected = 0.0
            for k in range(t, n):  # A_t = Σ_k (γλ)^(k−t) δ_k, V after the last token = 0
                v_next = values[b, k + 1].item() if k + 1 < n else 0.0
                delta = rewards[b, k].item() + gamma * v_next - values[b, k].item()
                expected += (gamma * lam) ** (k - t) * delta
            assert abs(adv[b, t].item() - expected) < 1e-4
            assert abs(ret[b, t].item() - (expected + values[b, t].item())) < 1e-4


def test_kl_is_zero_while_policy_equals_reference(causal_lm: str) -> None:
    tok = load_tokenizer(causal_lm, padding_side="left")
    policy = PolicyWithValue(AutoModelForCausalLM.from_pretrained(causal_lm)).eval()
    ref = copy.deepcopy(policy)
    queries = [tok(t)["input_ids"] for t in ["hello world", "the cat is a good dog", "yes"]]
    ro = rollout(policy, ref, tok, queries, PPOConfig(response_length=10, temperature=0.7), "cpu")
    kl = sequence_kl(ro["logprobs"], ro["ref_logprobs"], ro["mask"])  # (B,)
    assert ro["mask"].sum() > 0 and kl.shape == (3,) and kl.abs().max() == 0
    assert (ro["logprobs"] * ro["mask"]).sum() < 0  # real log-probs were compared, not zeros


def test_sequence_kl_sums_log_ratios_over_response_tokens_only() -> None:
    logp = torch.tensor([[-1.0, -2.0, -3.0], [-0.5, -0.5, -9.0]])
    ref = torch.tensor([[-1.5, -1.0, -3.0], [-1.0, -1.0, -1.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])  # the second response has 2 tokens
    torch.testing.assert_close(sequence_kl(logp, ref, mask), torch.tensor([-0.5, 1.0]))


def test_whitening_and_clipping_on_a_hand_computed_batch() -> None:
    x = torch.tensor([[1.0, 3.0, 100.0], [5.0, 7.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0]])  # values 1, 3, 5, 7: mean 4, var 5
    w = masked_whiten(x, mask)
    expected = torch.tensor([[-3.0, -1.0, 0.0], [1.0, 3.0, 0.0]]) / 5**0.5
    torch.testing.assert_close(w, expected, atol=1e-5, rtol=1e-5)
    kept = masked_whiten(x, mask, shift_mean=False)  # rewards: scaled, the mean kept
    torch.testing.assert_close(kept, (expected + 4.0) * mask, atol=1e-5, rtol=1e-5)

    # ratio 1.5 with A = +1 is clipped at 1.2; ratio 0.5 with A = −1 at 0.8; ratio 1.1 is not.
    old = torch.zeros(1, 3)
    new = torch.log(torch.tensor([[1.5, 0.5, 1.1]]))
    adv = torch.tensor([[1.0, -1.0, 2.0]])
    loss, ratio = clipped_policy_loss(new, old, adv, torch.ones(1, 3), eps=0.2)
    torch.testing.assert_close(ratio, torch.tensor([[1.5, 0.5, 1.1]]))
    torch.testing.assert_close(loss, torch.tensor((-1.2 + 0.8 - 2.2) / 3))
    # ratio 0.5 with A = +1: the pessimistic (unclipped) term −0.5 is kept, not −0.8
    low, _ = clipped_policy_loss(
        torch.log(torch.tensor([[0.5]])), old[:, :1], adv[:, :1], torch.ones(1, 1), eps=0.2
    )
    torch.testing.assert_close(low, torch.tensor(-0.5))


def test_adaptive_controller_holds_the_target_kl_after_warmup() -> None:
    # A policy whose drift is inversely proportional to β (KL = c / β), as the penalty implies.
    ctl = AdaptiveKLController(0.01, target=4.0, horizon=200, adaptive=True)
    kls = []
    for _ in range(300):
        kl = 0.2 / ctl.value
        kls.append(kl)
        ctl.update(kl, 16)
    assert kls[0] > 4.0 * 1.2  # starts far from the target
    assert all(0.8 * 4.0 <= k <= 1.2 * 4.0 for k in kls[100:])


def test_kl_grows_as_beta_goes_to_zero(tmp_path: Path, causal_lm: str) -> None:
    r = random.Random(1)
    prompts = write_jsonl(tmp_path / "p.jsonl", [{"prompt": sentence(r, 4)} for _ in range(48)])
    final = {}
    for beta in (0.0, 0.5):
        cfg = PPOConfig(
            model=causal_lm,
            train_file=prompts,
            output_dir=str(tmp_path / f"ppo-{beta}"),
            max_steps=8,
            batch_size=24,
            mini_batch_size=12,
            response_length=8,
            learning_rate=4e-3,
            temperature=1.0,
            lr_scheduler="constant",
            kl_coef=beta,
            adaptive_kl=False,
            eval_fraction=0.0,
        )
        assert train(cfg, reward_fn=reward_fn) == EXIT_OK
        final[beta] = sum(x["kl"] for x in read_metrics(cfg.output_dir)[-3:]) / 3
    assert final[0.0] > final[0.5] + 0.1, final


def test_adaptive_kl_controller_moves_beta_towards_target() -> None:
    ctl = AdaptiveKLController(0.1, target=6.0, horizon=100, adaptive=True)
    ctl.update(12.0, 10)
    assert ctl.value > 0.1
    ctl = AdaptiveKLController(0.1, target=6.0, horizon=100, adaptive=True)
    ctl.update(1.0, 10)
    assert ctl.value < 0.1
    fixed = AdaptiveKLController(0.1, target=6.0, horizon=100, adaptive=False)
    fixed.update(100.0, 10)
    assert fixed.value == 0.1


def test_ppo_raises_the_score_with_bounded_kl(tmp_path: Path, causal_lm: str) -> None:
    r = random.Random(0)
    prompts = write_jsonl(
        tmp_path / "prompts.jsonl", [{"prompt": sentence(r, 4)} for _ in range(96)]
    )
    cfg = PPOConfig(
        model=causal_lm,
        train_file=prompts,
        output_dir=str(tmp_path / "ppo"),
        max_steps=14,
        batch_size=64,
        mini_batch_size=32,
        response_length=12,
        learning_rate=4e-3,
        temperature=1.0,
        lr_scheduler="constant",
        eval_fraction=0.25,
        eval_prompts=24,
    )
    assert train(cfg, reward_fn=reward_fn) == EXIT_OK
    rows = read_metrics(cfg.output_dir)
    assert rows[0]["kl"] == 0.0  # the first rollout comes from the reference itself
    first = sum(x["score"] for x in rows[:3]) / 3
    last = sum(x["score"] for x in rows[-3:]) / 3
    assert last > 1.5 * first, [x["score"] for x in rows]
    assert all(x["kl"] < 5.0 for x in rows)
    for key in (
        "pg_loss",
        "vf_loss",
        "clipfrac",
        "approxkl",
        "entropy",
        "response_length",
        "explained_variance",
        "kl_coef",
    ):
        assert key in rows[-1]
    summary = json.loads((tmp_path / "ppo" / "summary.json").read_text())
    assert {"eval_score", "eval_kl"} <= summary.keys()
    AutoModelForCausalLM.from_pretrained(tmp_path / "ppo")
    AutoTokenizer.from_pretrained(tmp_path / "ppo")


def _value_loss_grads(model: PolicyWithValue, tok) -> tuple[float, float]:
    """Gradient norms on the LM (policy) and on the rest after backpropagating a value loss."""
    ids = torch.tensor([tok("the cat is a good dog")["input_ids"]])
    model.value_head.weight.data.fill_(0.1)  # a non-zero head, as after a few updates
    _, values = model(ids, torch.ones_like(ids))
    ((values - 3.0) ** 2).mean().backward()
    norm = lambda ps: sum(float(p.grad.norm()) for p in ps if p.grad is not None)  # noqa: E731
    lm = {id(p) for p in model.lm.parameters()}
    return norm(model.lm.parameters()), norm(p for p in model.parameters() if id(p) not in lm)


def test_value_loss_moves_the_policy_only_when_the_body_is_shared(causal_lm: str) -> None:
    tok = load_tokenizer(causal_lm)
    lm = AutoModelForCausalLM.from_pretrained(causal_lm)
    critic = critic_body(lm)
    policy_grad, critic_grad = _value_loss_grads(PolicyWithValue(lm, critic), tok)
    assert policy_grad == 0.0 and critic_grad > 0.0
    assert not any(p is q for p in critic.parameters() for q in lm.parameters())
    shared = PolicyWithValue(AutoModelForCausalLM.from_pretrained(causal_lm))
    policy_grad, _ = _value_loss_grads(shared, tok)
    assert policy_grad > 0.0  # the coupling the separate critic removes


def test_shared_value_network_trains_and_unknown_one_is_refused(
    tmp_path: Path, causal_lm: str
) -> None:
    r = random.Random(2)
    prompts = write_jsonl(tmp_path / "p.jsonl", [{"prompt": sentence(r, 4)} for _ in range(16)])
    cfg = PPOConfig(
        model=causal_lm,
        train_file=prompts,
        output_dir=str(tmp_path / "shared"),
        max_steps=2,
        batch_size=8,
        mini_batch_size=4,
        response_length=6,
        eval_fraction=0.0,
        value_network="shared",
    )
    assert train(cfg, reward_fn=reward_fn) == EXIT_OK
    assert len(read_metrics(cfg.output_dir)) == 2
    cfg.value_network = "tied"
    with pytest.raises(ConfigError, match="value_network 'tied'"):
        train(cfg, reward_fn=reward_fn)
