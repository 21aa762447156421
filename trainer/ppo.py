"""PPO from a reward model, following "The N Implementation Details of RLHF with PPO".

One step = one rollout batch: sample responses, score them (reward model or a Python callable),
build per-token rewards −β·(log π − log π_ref) with the score added on the last token, compute
GAE advantages, then `ppo_epochs` passes of clipped-ratio / clipped-value updates over minibatches.
Dropout stays off (every model is in eval mode) so log-probs of rollout and update agree.
`gradient_accumulation_steps` is unused here: `mini_batch_size` is the update size.

Under strategy fsdp the policy with its value network and the reference are sharded per block
like any model (`Run.prepare`, `Run.frozen`); the reward model stays whole on each rank. The
policy generates through the sharded root (`PolicyWithValue.generate`), in step across the ranks.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM

from trainer import EXIT_OK, EXIT_PREEMPTED
from trainer.configs import ConfigError, PPOConfig
from trainer.data import collate, load_records, pad, render_prompt, tokenize_sft, train_eval_split
from trainer.factories import load_tokenizer, make_optimizer, maybe_lora
from trainer.runtime import Run, batch_indices, total_steps

VALUE_NETWORKS = ("separate", "shared")

RewardFn = Callable[[list[Any], list[str], list[list[int]]], torch.Tensor]
"""reward_fn(prompts, responses, response_ids) -> (B,) scores.

prompts as in the data file; responses decoded (no EOS); response_ids the sampled policy tokens.
"""


class PolicyWithValue(torch.nn.Module):
    """A causal LM and a scalar value head.

    With `critic` (a copy of the LM's transformer body) the head reads the critic's last hidden
    state, so the value loss trains the critic alone and never moves the policy; without it the
    head reads the policy's own last hidden state (shared body: cheaper, but the value loss then
    changes the policy too, which spends KL without buying reward).
    """

    def __init__(self, lm: torch.nn.Module, critic: torch.nn.Module | None = None) -> None:
        super().__init__()
        self.lm = lm
        self.critic = critic
        hidden = lm.config.get_text_config().hidden_size
        self.value_head = torch.nn.Linear(hidden, 1)
        torch.nn.init.zeros_(self.value_head.weight)  # V = 0 at first: no noise in early advantages
        torch.nn.init.zeros_(self.value_head.bias)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        """Logits (B, T, V) and values (B, T)."""
        position_ids = (attention_mask.cumsum(-1) - 1).clamp_min(0)  # left padding aware
        inputs = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "position_ids": position_ids,
        }
        if self.critic is not None:
            logits = self.lm(**inputs).logits
            hidden = self.critic(**inputs).last_hidden_state
        else:
            out = self.lm(**inputs, output_hidden_states=True)
            logits, hidden = out.logits, out.hidden_states[-1]
        values = self.value_head(hidden.to(self.value_head.weight.dtype))
        return logits, values[..., 0].clone()  # not a view: FSDP hooks the root's outputs

    def generate(self, **kwargs: Any) -> torch.Tensor:
        """The LM's `generate`, through this module so that a sharded root (strategy fsdp)
        gathers its own parameters (embeddings, head) for the whole generation."""
        return self.lm.generate(**kwargs)


def critic_body(lm: torch.nn.Module) -> torch.nn.Module:
    """A trainable copy of a causal LM's transformer body (no LM head): the value network."""
    body = lm.get_decoder() if hasattr(lm, "get_decoder") else lm.base_model
    return copy.deepcopy(body).requires_grad_(True)


class AdaptiveKLController:
    """Ziegler et al. (2019): β ← β·(1 + clip(KL/target − 1, ±0.2)·n/horizon)."""

    def __init__(self, init: float, target: float, horizon: int, adaptive: bool) -> None:
        self.value, self.target, self.horizon, self.adaptive = init, target, horizon, adaptive

    def update(self, kl: float, n_episodes: int) -> None:
        """Move β towards the value that keeps the KL at target."""
        if self.adaptive:
            error = min(max(kl / self.target - 1, -0.2), 0.2)
            self.value *= 1 + error * n_episodes / self.horizon


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of x over positions where mask is 1."""
    return (x * mask).sum() / mask.sum().clamp_min(1)


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """Normalise x to mean 0 (optional) and variance 1 over masked positions."""
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    out = (x - mean) * torch.rsqrt(var + 1e-8)
    return (out if shift_mean else out + mean) * mask


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float):
    """Generalised advantage estimation over response tokens.

    rewards, values, mask: (B, L); positions past a response's end have mask 0.
    Returns advantages and returns, both (B, L) and 0 outside the mask.
    """
    rewards, values = rewards * mask, values * mask
    adv = torch.zeros_like(rewards)
    last = torch.zeros_like(rewards[:, 0])  # (B,)
    L = rewards.size(1)
    for t in reversed(range(L)):
        next_value = values[:, t + 1] if t + 1 < L else torch.zeros_like(last)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        last = delta + gamma * lam * last
        adv[:, t] = last
    adv = adv * mask
    return adv, (adv + values) * mask


def sequence_kl(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, mask: torch.Tensor):
    """KL of each response to the reference, (B,): Σ over response tokens of log π − log π_ref.

    The one definition used for the penalty, the adaptive controller, the logs and the benches
    (InstructGPT's and TRL's): a per-sequence sum in nats, estimated on the sampled tokens.
    """
    return ((logprobs - ref_logprobs) * mask).sum(-1)


def clipped_policy_loss(
    new_logp: torch.Tensor,
    old_logp: torch.Tensor,
    adv: torch.Tensor,
    mask: torch.Tensor,
    eps: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO's clipped surrogate, masked mean of max(−A·ρ, −A·clip(ρ, 1−ε, 1+ε)); and ρ (b, L)."""
    ratio = (new_logp - old_logp).exp()  # (b, L)
    clipped = ratio.clamp(1 - eps, 1 + eps)
    return masked_mean(torch.max(-adv * ratio, -adv * clipped), mask), ratio


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor, temperature: float):
    """Log-probs of `tokens` (B, L) under logits (B, L, V) / temperature, and the entropy (B, L)."""
    logp = F.log_softmax(logits.float() / temperature, dim=-1)  # (B, L, V)
    entropy = -(logp.exp() * logp).sum(-1)  # (B, L)
    return logp.gather(-1, tokens.unsqueeze(-1)).squeeze(-1), entropy


def response_part(
    out: tuple[torch.Tensor, torch.Tensor], q_len: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits/values (of a PolicyWithValue call) at the positions that predict the response
    tokens: (B, L, V), (B, L)."""
    logits, values = out
    return logits[:, q_len - 1 : -1], values[:, q_len - 1 : -1]


@torch.no_grad()
def rollout(
    policy, ref, tokenizer, queries, cfg: PPOConfig, device, synced: bool = False
) -> dict[str, torch.Tensor]:
    """Sample responses to left-padded queries and score them with policy, value and reference
    (`synced`: generate in step with the other ranks, as sharded layers need)."""
    q_ids = pad(queries, tokenizer.pad_token_id, side="left").to(device)  # (B, Tq)
    q_mask = pad([[1] * len(q) for q in queries], 0, side="left").to(device)  # (B, Tq)
    gen = policy.generate(
        synced_gpus=synced,
        input_ids=q_ids,
        attention_mask=q_mask,
        do_sample=True,
        temperature=cfg.temperature,
        top_k=cfg.top_k,  # 0 → off
        top_p=1.0,
        max_new_tokens=cfg.response_length,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    resp = gen[:, q_ids.size(1) :]  # (B, ≤L)
    L = cfg.response_length
    resp = F.pad(resp, (0, L - resp.size(1)), value=tokenizer.pad_token_id)  # (B, L)
    # Truncate after the first EOS: the EOS itself is the last response token.
    is_eos = resp == tokenizer.eos_token_id
    has_eos = is_eos.any(-1)  # (B,)
    first_eos = torch.where(
        has_eos, is_eos.int().argmax(-1), torch.full_like(has_eos, L - 1, dtype=torch.long)
    )
    r_mask = (torch.arange(L, device=device)[None] <= first_eos[:, None]).long()  # (B, L)
    resp = torch.where(r_mask.bool(), resp, tokenizer.pad_token_id)
    seq = torch.cat([q_ids, resp], 1)  # (B, Tq + L)
    seq_mask = torch.cat([q_mask, r_mask], 1)

    logits, values = response_part(policy(seq, seq_mask), q_ids.size(1))
    logprobs, _ = token_logprobs(logits, resp, cfg.temperature)  # (B, L)
    ref_logits, _ = response_part(ref(seq, seq_mask), q_ids.size(1))
    ref_logprobs, _ = token_logprobs(ref_logits, resp, cfg.temperature)
    return {
        "seq": seq,
        "seq_mask": seq_mask,
        "response": resp,
        "mask": r_mask,
        "has_eos": has_eos,
        "last": first_eos,
        "logprobs": logprobs,
        "ref_logprobs": ref_logprobs,
        "values": values * r_mask,
    }


def score_responses(
    reward_fn: RewardFn, tokenizer: Any, prompts: list[Any], ro: dict[str, torch.Tensor]
) -> torch.Tensor:
    """Decode the rollout's responses (EOS and padding dropped) and score them: (B,)."""
    ids = [r[: int(n)].tolist() for r, n in zip(ro["response"], ro["mask"].sum(-1), strict=True)]
    ids = [x[:-1] if x and x[-1] == tokenizer.eos_token_id else x for x in ids]
    texts = tokenizer.batch_decode(ids, skip_special_tokens=True)
    scores = reward_fn(prompts, texts, ids)
    return torch.as_tensor(scores, dtype=torch.float, device=ro["response"].device)


def ppo_loss(
    model: torch.nn.Module,
    ro: dict[str, torch.Tensor],
    mb: torch.Tensor,
    advantages: torch.Tensor,
    returns: torch.Tensor,
    cfg: PPOConfig,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clipped-ratio policy loss + vf_coef · clipped value loss on the episodes `mb`, and stats."""
    m = ro["mask"][mb].float()  # (b, L)
    q_len = ro["seq"].size(1) - ro["response"].size(1)
    logits, vpred = response_part(model(ro["seq"][mb], ro["seq_mask"][mb]), q_len)
    new_logp, entropy = token_logprobs(logits, ro["response"][mb], cfg.temperature)  # (b, L)

    old_v, ret = ro["values"][mb], returns[mb]
    v_clip = old_v + (vpred - old_v).clamp(-cfg.cliprange_value, cfg.cliprange_value)
    vf_loss = 0.5 * masked_mean(torch.max((vpred - ret) ** 2, (v_clip - ret) ** 2), m)

    log_ratio = new_logp - ro["logprobs"][mb]
    pg_loss, ratio = clipped_policy_loss(
        new_logp, ro["logprobs"][mb], advantages[mb], m, cfg.cliprange
    )
    loss = pg_loss + cfg.vf_coef * vf_loss
    with torch.no_grad():
        stats = {
            "loss": loss,
            "pg_loss": pg_loss,
            "vf_loss": vf_loss,
            "clipfrac": masked_mean(((ratio - 1).abs() > cfg.cliprange).float(), m),
            "approxkl": masked_mean(0.5 * log_ratio**2, m),
            "entropy": masked_mean(entropy, m),
        }
    return loss, stats


def ptx_loss(model: torch.nn.Module, samples: list[dict], tokenizer: Any) -> torch.Tensor:
    """PPO-ptx: next-token loss of the policy on SFT samples (completion tokens only)."""
    batch = collate(samples, tokenizer.pad_token_id)
    device = next(model.parameters()).device
    logits, _ = model(batch["input_ids"].to(device), batch["attention_mask"].to(device))
    return F.cross_entropy(
        logits[:, :-1].flatten(0, 1).float(),  # (B·(T-1), V)
        batch["labels"][:, 1:].flatten().to(device),
        ignore_index=-100,
    )


def explained_variance(values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor) -> float:
    """1 − Var(returns − values) / Var(returns) over response tokens."""
    var_ret = masked_mean((returns - masked_mean(returns, mask)) ** 2, mask)
    err = returns - values
    var_err = masked_mean((err - masked_mean(err, mask)) ** 2, mask)
    return float(1 - var_err / var_ret.clamp_min(1e-8))


def train(cfg: PPOConfig, reward_fn: RewardFn | None = None) -> int:
    """Run PPO; the reward is cfg.reward_model or `reward_fn`. Return EXIT_OK or EXIT_PREEMPTED."""
    if cfg.value_network not in VALUE_NETWORKS:
        raise ConfigError(
            f"value_network {cfg.value_network!r}: use one of {', '.join(VALUE_NETWORKS)}"
        )
    run = Run(cfg, "ppo")
    acc, device = run.accelerator, run.accelerator.device
    tokenizer = load_tokenizer(cfg.model, padding_side="left")

    # 1. Data: prompts (any record with "prompt"), rendered and tokenised once.
    train_recs, eval_recs = train_eval_split(
        cfg.train_file, cfg.eval_file, cfg.eval_fraction, "prompts", cfg.seed
    )

    def encode(recs: list[dict]) -> list[list[int]]:
        texts = [render_prompt(tokenizer, r["prompt"]) for r in recs]
        if not texts:
            return []
        return [ids[-cfg.max_prompt_length :] for ids in tokenizer(texts)["input_ids"]]

    train_q, eval_q = encode(train_recs), encode(eval_recs[: cfg.eval_prompts])
    ptx = (
        [
            tokenize_sft(tokenizer, r, cfg.max_length, True)
            for r in load_records(cfg.ptx_file, "sft")
        ]
        if cfg.ptx_file
        else []
    )
    steps = total_steps(cfg, len(train_q), cfg.batch_size * acc.num_processes)
    updates_per_step = cfg.ppo_epochs * math.ceil(cfg.batch_size / cfg.mini_batch_size)

    # 2. Models: policy + value head (trained), reference policy and reward (frozen).
    lm = AutoModelForCausalLM.from_pretrained(cfg.model)
    lm.config.pad_token_id = tokenizer.pad_token_id
    ref = run.frozen(PolicyWithValue(copy.deepcopy(lm))).eval()
    critic = critic_body(lm) if cfg.value_network == "separate" else None
    model = PolicyWithValue(maybe_lora(lm, cfg, "CAUSAL_LM"), critic)
    if reward_fn is None:
        from trainer.reward import load_reward_model

        if not cfg.reward_model:
            raise ValueError("PPO needs reward_model (or a reward_fn)")
        rm = load_reward_model(cfg.reward_model, device)

        def reward_fn(prompts: list[Any], responses: list[str], ids: list) -> torch.Tensor:
            return rm.score_responses(prompts, responses)  # the RM's own template and tokenizer

    model, optimizer, scheduler = run.prepare(
        model, lambda m: make_optimizer(m, cfg, steps * updates_per_step)
    )
    start, extra = run.resume()
    kl_ctl = AdaptiveKLController(
        extra.get("kl_coef", cfg.kl_coef), cfg.kl_target, cfg.kl_horizon, cfg.adaptive_kl
    )
    model.eval()  # dropout off, also while training
    policy = acc.unwrap_model(model)
    # Sharded layers are gathered in collectives: every rank runs as many forward passes while
    # generating as the rank whose responses run longest.
    synced = cfg.strategy == "fsdp" and acc.num_processes > 1
    ptx_counter = start * updates_per_step

    for step in range(start, steps):
        t0 = time.perf_counter()
        # 3. Rollout: this process's share of the step's prompts.
        B, P = cfg.batch_size, acc.num_processes
        idx = batch_indices(len(train_q), B * P, step, cfg.seed)[acc.process_index * B :][:B]
        ro = rollout(policy, ref, tokenizer, [train_q[i] for i in idx], cfg, device, synced)
        prompts = [train_recs[i]["prompt"] for i in idx]
        score = score_responses(reward_fn, tokenizer, prompts, ro)  # (B,)
        if cfg.missing_eos_penalty:
            score = torch.where(ro["has_eos"], score, score + cfg.missing_eos_penalty)

        # 4. Rewards: per-token KL penalty, the score on the last response token.
        mask = ro["mask"].float()  # (B, L)
        kl = (ro["logprobs"] - ro["ref_logprobs"]) * mask  # (B, L) per token
        rewards = -kl_ctl.value * kl
        rewards[torch.arange(B, device=device), ro["last"]] += score
        if cfg.whiten_rewards:
            rewards = masked_whiten(rewards, mask, shift_mean=False)
        advantages, returns = gae(rewards, ro["values"], mask, cfg.gamma, cfg.lam)
        if cfg.whiten_advantages:
            advantages = masked_whiten(advantages, mask)

        # 5. PPO epochs over minibatches.
        stats: dict[str, list[float]] = {}
        for _ in range(cfg.ppo_epochs):
            for mb in torch.randperm(B, device=device).split(cfg.mini_batch_size):
                loss, mb_stats = ppo_loss(model, ro, mb, advantages, returns, cfg)
                if ptx and cfg.ptx_coef:  # PPO-ptx: keep the LM loss on demonstration data
                    chosen = batch_indices(len(ptx), cfg.mini_batch_size, ptx_counter, cfg.seed)
                    mb_stats["ptx_loss"] = ptx_loss(model, [ptx[i] for i in chosen], tokenizer)
                    loss = loss + cfg.ptx_coef * mb_stats["ptx_loss"]
                ptx_counter += 1
                acc.backward(loss)
                if cfg.max_grad_norm:
                    run.clip_grad_norm(model, cfg.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
                for k, v in mb_stats.items():
                    stats.setdefault(k, []).append(float(v.detach()))

        # 6. Adapt β to the measured KL (nats per response) and log.
        seq_kl = sequence_kl(ro["logprobs"], ro["ref_logprobs"], mask)  # (B,) = kl.sum(-1)
        mean_kl = float(acc.reduce(seq_kl.mean(), "mean"))
        kl_ctl.update(mean_kl, B * P)
        elapsed = time.perf_counter() - t0
        metrics = {
            "score": float(acc.reduce(score.mean(), "mean")),
            "kl": mean_kl,
            "kl_coef": kl_ctl.value,
            "non_score_reward": float((-kl_ctl.value * kl).sum(-1).mean()),
            **{k: sum(v) / len(v) for k, v in stats.items()},
            "response_length": float(mask.sum(-1).mean()),
            "eos_fraction": float(ro["has_eos"].float().mean()),
            "explained_variance": explained_variance(ro["values"], returns, mask),
            "lr": scheduler.get_last_lr()[0],
            "episodes_per_s": B * P / elapsed,
        }
        if run.end_step(step + 1, steps, metrics, policy.lm, tokenizer, {"kl_coef": kl_ctl.value}):
            return EXIT_PREEMPTED

    # 7. Held-out prompts: mean score and KL of the final policy.
    summary: dict[str, Any] = {"steps": steps}
    if eval_q:
        ro = rollout(policy, ref, tokenizer, eval_q, cfg, device, synced)
        eval_prompts = [r["prompt"] for r in eval_recs[: len(eval_q)]]
        summary["eval_score"] = float(
            score_responses(reward_fn, tokenizer, eval_prompts, ro).mean()
        )
        summary["eval_kl"] = float(
            sequence_kl(ro["logprobs"], ro["ref_logprobs"], ro["mask"]).mean()
        )
    run.finish(policy.lm, tokenizer, summary)
    return EXIT_OK
