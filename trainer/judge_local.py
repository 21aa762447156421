"""Judges that run a local model: a reward model scores, a causal LM answers pairwise.

Reward model: each (prompt, response) is encoded as the `rm` trainer encodes it (the prompt
rendered and cut from the left, the response kept) and scored in length-sorted batches of
`batch_size` sequences; the score is the model's normalised reward (gain·r + bias when the
model carries a normalisation, as an `rm` run writes).

Causal LM: each question (trainer/judge_rules.py) is rendered through the tokenizer's chat
template as a user message (or left as it is), and the model's next-token distribution is read
where the answer starts: P(A) against P(B), compared on the first token where the tokenisations
of the question + " A" and + " B" differ (" A" after text, "A" after a newline). That token is
what the model would write first; the prefix before it is what the model reads.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import torch

from trainer.configs import ConfigError, JudgeConfig
from trainer.data import pad, render_prompt
from trainer.factories import load_tokenizer
from trainer.judge_rules import Item, PairVote, orders_of, pairwise_row, question, scored_row
from trainer.reward import RewardModel
from trainer.reward_head import SpecialTokens, join_response, score_batch

Verdict = tuple[dict[str, Any], list[PairVote] | None]
"""A judge's output for one item: the row to write, and the pair votes (pairwise judges)."""
Autocast = Callable[[], AbstractContextManager[Any]]


def _by_length(seqs: list[list[int]], batch_size: int) -> list[list[int]]:
    """Indices of seqs in batches of similar lengths (less padding)."""
    order = sorted(range(len(seqs)), key=lambda n: len(seqs[n]))
    return [order[k : k + batch_size] for k in range(0, len(order), batch_size)]


class RewardModelJudge:
    """Scores every response with a reward model; rankings and ratings from the scores."""

    kind = "reward_model"

    def __init__(self, cfg: JudgeConfig, device: Any, autocast: Autocast) -> None:
        self.cfg, self.autocast = cfg, autocast
        self.rm = RewardModel(cfg.model, device, max_length=cfg.max_length)
        self.responses_cut = 0

    def chunk_items(self, k: int) -> int:
        """Items per chunk (between progress reports): about 8 batches of sequences."""
        return max(1, 8 * self.cfg.batch_size // k)

    @torch.inference_mode()
    def scores(self, items: list[Item]) -> list[list[float]]:
        """The normalised reward of each item's responses, in file order."""
        tok, rm = self.rm.tokenizer, self.rm
        prompts = [render_prompt(tok, it.prompt) for it in items]
        texts = [text for it in items for _, text in it.responses]
        prompt_ids = tok(prompts, add_special_tokens=False)["input_ids"]
        response_ids = iter(tok(texts, add_special_tokens=False)["input_ids"])
        seqs = []
        for it, p in zip(items, prompt_ids, strict=True):
            for _ in it.responses:
                ids, cut = join_response(rm.specials, p, next(response_ids), rm.max_length)
                seqs.append(ids)
                self.responses_cut += cut
        flat = [0.0] * len(seqs)
        pad_id = tok.pad_token_id
        for batch in _by_length(seqs, self.cfg.batch_size):
            with self.autocast():
                got = score_batch(rm.model, [seqs[n] for n in batch], pad_id, rm.device, rm.pooling)
            for n, value in zip(batch, got.float().cpu().tolist(), strict=True):
                flat[n] = value * rm.gain + rm.bias
        out, at = [], 0
        for it in items:
            out.append(flat[at : at + len(it.responses)])
            at += len(it.responses)
        return out

    def judge(self, items: list[Item], stop: Callable[[], bool]) -> list[Verdict]:
        return [
            (scored_row(it, s, self.cfg), None)
            for it, s in zip(items, self.scores(items), strict=True)
        ]

    def summary(self) -> dict[str, Any]:
        """What this run counted, for summary.json."""
        return {"responses_cut": self.responses_cut}

    def close(self) -> None:
        pass


class PairwiseLMJudge:
    """Asks a causal LM which of two responses is better, each pair in both orders."""

    kind = "pairwise_lm"

    def __init__(self, cfg: JudgeConfig, device: Any, autocast: Autocast) -> None:
        from transformers import AutoModelForCausalLM

        self.cfg, self.device, self.autocast = cfg, device, autocast
        self.tokenizer = load_tokenizer(cfg.model, padding_side="left")
        self.model = AutoModelForCausalLM.from_pretrained(cfg.model).to(device).eval()
        self.chat = bool(cfg.judge_chat_template and getattr(self.tokenizer, "chat_template", None))
        self.specials = SpecialTokens(self.tokenizer)
        self.keep_one = "logits_to_keep" in inspect.signature(self.model.forward).parameters
        self.truncated = self.questions = 0
        self.label_mass = 0.0

    def chunk_items(self, k: int) -> int:
        return max(1, 8 * self.cfg.batch_size // max(1, k * (k - 1)))

    def encode(self, text: str) -> tuple[list[int], int, int]:
        """(ids the model reads, token id of answer A, of answer B) for one question."""
        tok = self.tokenizer
        if self.chat:
            prefix = tok.apply_chat_template(
                [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
            )
            head: list[int] = []  # the template writes its own special tokens
        else:
            prefix, head = text, list(self.specials.prefix)
        prefix = prefix.rstrip(" \t")
        labels = ("A", "B") if not prefix or prefix.endswith("\n") else (" A", " B")
        ids_a, ids_b = (
            head + ids
            for ids in tok([prefix + x for x in labels], add_special_tokens=False)["input_ids"]
        )
        n = 0
        while n < min(len(ids_a), len(ids_b)) and ids_a[n] == ids_b[n]:
            n += 1
        if n == min(len(ids_a), len(ids_b)):
            raise ConfigError(
                f"model {self.cfg.model!r}: its tokenizer writes {labels[0]!r} and "
                f"{labels[1]!r} alike, so the answer cannot be read",
                "model",
            )
        ids = ids_a[:n]
        if len(ids) > self.cfg.max_length:  # keep the end: the responses and the question
            keep = self.cfg.max_length - len(head)
            ids = head + ids[len(ids) - keep :]
            self.truncated += 1
        return ids, ids_a[n], ids_b[n]

    @torch.inference_mode()
    def p_first(self, encoded: list[tuple[list[int], int, int]]) -> list[float]:
        """P(answer A) / (P(A) + P(B)) of each question."""
        out = [0.5] * len(encoded)
        pad_id = self.tokenizer.pad_token_id
        seqs = [ids for ids, _, _ in encoded]
        for batch in _by_length(seqs, self.cfg.batch_size):
            ids = pad([seqs[n] for n in batch], pad_id, side="left").to(self.device)  # (B, T)
            mask = pad([[1] * len(seqs[n]) for n in batch], 0, side="left").to(self.device)
            positions = (mask.cumsum(-1) - 1).clamp_min(0)  # (B, T) as if unpadded
            extra = {"logits_to_keep": 1} if self.keep_one else {}
            with self.autocast():
                logits = self.model(
                    input_ids=ids, attention_mask=mask, position_ids=positions, **extra
                ).logits[:, -1]  # (B, V)
            logp = torch.log_softmax(logits.float(), dim=-1)  # (B, V)
            a = torch.tensor([encoded[n][1] for n in batch], device=logp.device)
            b = torch.tensor([encoded[n][2] for n in batch], device=logp.device)
            la, lb = logp.gather(1, a[:, None])[:, 0], logp.gather(1, b[:, None])[:, 0]  # (B,)
            self.label_mass += float((la.exp() + lb.exp()).sum())
            self.questions += len(batch)
            for n, p in zip(batch, torch.sigmoid(la - lb).cpu().tolist(), strict=True):
                out[n] = p
        return out

    def judge(self, items: list[Item], stop: Callable[[], bool]) -> list[Verdict]:
        asked = []  # (item index, pair index, which order)
        encoded = []
        for m, it in enumerate(items):
            texts = [text for _, text in it.responses]
            for n, i, j, which in orders_of(len(texts)):
                a, b = (texts[i], texts[j]) if which == 0 else (texts[j], texts[i])
                encoded.append(self.encode(question(self.cfg.judge_template, it.prompt, a, b)))
                asked.append((m, n, which))
        p_a = self.p_first(encoded)
        votes = [
            [PairVote(i, j) for _, i, j, which in orders_of(len(it.responses)) if which == 0]
            for it in items
        ]
        for (m, n, which), p in zip(asked, p_a, strict=True):
            if which == 0:
                votes[m][n].first = p  # i was A
            else:
                votes[m][n].second = 1.0 - p  # i was B
        return [(pairwise_row(it, v), v) for it, v in zip(items, votes, strict=True)]

    def summary(self) -> dict[str, Any]:
        """What this run counted; label_probability: the mean P(A) + P(B) over the vocabulary
        (near 0: the model does not answer with a letter, and the judgments mean little)."""
        return {
            "questions": self.questions,
            "truncated_questions": self.truncated,
            "label_probability": self.label_mass / max(self.questions, 1),
        }

    def close(self) -> None:
        pass
