"""The closed-loop task: prompts, a hidden reward, simulated labelers, sampling and judging.

The hidden reward (never shown to the trainer; only the simulated labelers see it):

    hidden(reply) = (#positive words − #negative words) / max(#words, 1)        ∈ [−1, 1]

with the fixed word lists POSITIVE and NEGATIVE below; the demonstrations draw their words evenly
from POSITIVE, NEGATIVE and NEUTRAL, so the SFT policy starts near 0 and a policy can only gain by
learning which words the labelers prefer.

Labelers rank K replies. An honest labeler is Bradley–Terry / Plackett–Luce with temperature τ:
the next best reply is drawn with probability ∝ exp(hidden / τ). An adversarial labeler ranks at
random or in reverse.
"""

from __future__ import annotations

import math
import random
from typing import Any

import torch

POSITIVE = ("good", "great", "helpful", "kind", "polite", "true", "better", "best")
NEGATIVE = ("bad", "poor", "rude", "harmful", "false", "worse", "worst", "no")
NEUTRAL = ("cat", "dog", "tree", "river", "book", "story", "song", "city")
TOPICS = ("cat", "dog", "tree", "river", "book", "story", "song", "city", "house", "car", "road")


def hidden_reward(reply: str) -> float:
    """The hidden ground truth: share of positive minus share of negative words."""
    words = [w.strip(".,!?").lower() for w in reply.split()]
    pos = sum(w in POSITIVE for w in words)
    neg = sum(w in NEGATIVE for w in words)
    return (pos - neg) / max(len(words), 1)


def prompts(n: int, seed: int) -> list[str]:
    """Prompts asking for a short reply about a topic."""
    r = random.Random(seed)
    verbs = ("write", "tell", "give", "explain")
    return [f"{r.choice(verbs)} a short reply about the {r.choice(TOPICS)}" for _ in range(n)]


def demonstration(r: random.Random, words: int = 6) -> str:
    """A reply whose words come evenly from the positive, negative and neutral lists."""
    pool = POSITIVE + NEGATIVE + NEUTRAL
    return " ".join(r.choice(pool) for _ in range(words))


class Labeler:
    """A simulated labeler: honest (Bradley–Terry, temperature τ), random or reverse."""

    def __init__(self, kind: str, temperature: float, seed: int) -> None:
        self.kind, self.temperature, self.rng = kind, temperature, random.Random(seed)

    def rank(self, replies: list[str]) -> list[int]:
        """Indices of `replies`, best first."""
        order = list(range(len(replies)))
        if self.kind == "random":
            self.rng.shuffle(order)
            return order
        scores = [hidden_reward(x) for x in replies]
        if self.kind == "reverse":
            return sorted(order, key=lambda i: scores[i])
        out = []
        while order:  # Plackett–Luce: draw the next best among those left
            weights = [math.exp(scores[i] / self.temperature) for i in order]
            out.append(order.pop(self.rng.choices(range(len(order)), weights)[0]))
        return out


def labelers(n: int, adversarial: float, temperature: float, seed: int) -> list[Labeler]:
    """n labelers of whom round(adversarial · n) are adversarial (alternately random, reverse)."""
    bad = round(adversarial * n)
    kinds = ["honest"] * (n - bad) + [("random", "reverse")[i % 2] for i in range(bad)]
    return [Labeler(k, temperature, seed * 1000 + i) for i, k in enumerate(kinds)]


@torch.no_grad()
def sample(
    model_dir: str,
    prompt_texts: list[str],
    n: int,
    max_new_tokens: int,
    temperature: float,
    seed: int,
) -> list[list[str]]:
    """n sampled replies per prompt from a causal LM (the trainer's rendering and sampling)."""
    from transformers import AutoModelForCausalLM

    from trainer.data import pad, render_prompt
    from trainer.factories import load_tokenizer

    tok = load_tokenizer(model_dir, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    torch.manual_seed(seed)
    queries = [tok(render_prompt(tok, p))["input_ids"] for p in prompt_texts]
    out: list[list[str]] = []
    for start in range(0, len(queries), 32):
        chunk = [q for q in queries[start : start + 32] for _ in range(n)]
        ids = pad(chunk, tok.pad_token_id, side="left")
        mask = pad([[1] * len(q) for q in chunk], 0, side="left")
        gen = model.generate(
            input_ids=ids,
            attention_mask=mask,
            do_sample=True,
            temperature=temperature,
            top_k=0,
            top_p=1.0,
            max_new_tokens=max_new_tokens,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
        )
        texts = [
            t.strip() for t in tok.batch_decode(gen[:, ids.size(1) :], skip_special_tokens=True)
        ]
        out += [texts[i : i + n] for i in range(0, len(texts), n)]
    return out


def win_rate(new: list[float], old: list[float]) -> dict[str, float]:
    """Share of blind pairs the new reply wins on hidden reward (ties count half), Wilson 95%."""
    n = len(new)
    p = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in zip(new, old, strict=True)) / n
    z = 1.96
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return {"win_rate": p, "ci_low": centre - half, "ci_high": centre + half}


def rm_accuracy(rm: Any, prompt_texts: list[str], replies: list[list[str]]) -> float:
    """Share of held-out reply pairs (different hidden reward) the RM orders like the hidden one."""
    hits = total = 0
    for prompt, group in zip(prompt_texts, replies, strict=True):
        scores = rm.score_responses([prompt] * len(group), group)
        for i in range(len(group)):
            for j in range(i + 1, len(group)):
                hi, hj = hidden_reward(group[i]), hidden_reward(group[j])
                if hi != hj:
                    hits += int((scores[i] > scores[j]) == (hi > hj))
                    total += 1
    return hits / max(total, 1)


@torch.no_grad()
def kl_to(
    reference_dir: str,
    policy_dir: str,
    prompt_texts: list[str],
    max_new_tokens: int,
    temperature: float,
    seed: int,
) -> float:
    """KL of the policy to the reference on the prompts, as PPO measures it (one definition,
    `trainer.ppo.sequence_kl`): replies sampled from the policy, per reply the sum over its
    sampled tokens (EOS included) of log π − log π_ref at the sampling temperature; the mean."""
    from transformers import AutoModelForCausalLM

    from trainer.configs import PPOConfig
    from trainer.data import render_prompt
    from trainer.factories import load_tokenizer
    from trainer.ppo import PolicyWithValue, rollout, sequence_kl

    tok = load_tokenizer(policy_dir, padding_side="left")
    policy, ref = (
        PolicyWithValue(AutoModelForCausalLM.from_pretrained(d)).eval()
        for d in (policy_dir, reference_dir)
    )
    cfg = PPOConfig(response_length=max_new_tokens, temperature=temperature)
    torch.manual_seed(seed)
    queries = [tok(render_prompt(tok, p))["input_ids"] for p in prompt_texts]
    ro = rollout(policy, ref, tok, queries, cfg, "cpu")
    return float(sequence_kl(ro["logprobs"], ro["ref_logprobs"], ro["mask"]).mean())


def rankings_from_labelers(
    prompt_texts: list[str], replies: list[list[str]], team: list[Labeler], per_prompt: int
) -> list[dict]:
    """`rankings` records: each prompt ranked by `per_prompt` labelers taken in turn."""
    out, turn = [], 0
    for prompt, group in zip(prompt_texts, replies, strict=True):
        for _ in range(per_prompt):
            order = team[turn % len(team)].rank(group)
            turn += 1
            out.append({"prompt": prompt, "responses": [group[i] for i in order]})
    return out


def mean_hidden(replies: list[list[str]]) -> float:
    """Mean hidden reward over all replies."""
    flat = [hidden_reward(x) for group in replies for x in group]
    return sum(flat) / max(len(flat), 1)
