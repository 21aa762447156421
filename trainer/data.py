"""Read dataset files (JSONL, .jsonl.gz, Parquet) in the formats that cross the app boundary,
and turn records into token batches.

Formats (TRL conventions; a prompt is a string or a list of {"role", "content"} messages):
  sft      {"prompt", "completion"} or {"messages": [...]}
  pairs    {"prompt", "chosen", "rejected"} (+ optional "margin")
  rankings {"prompt", "responses": [best, ..., worst]} (+ optional "ranks": place of each
           response, equal places tied, e.g. [0, 1, 1, 2])
  ratings  {"prompt", "response", "score"} and/or "scores": {aspect: number}
  prompts  {"prompt"}

Plain text format, used when the tokenizer has no chat template: each message is rendered as
"User: {content}\n\n" / "Assistant: {content}\n\n" / "System: {content}\n\n", and a generation
prompt is "Assistant: ". In SFT samples a learned assistant turn is followed by the EOS token.
"""

from __future__ import annotations

import gzip
import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

Record = dict[str, Any]
Message = dict[str, str]
IGNORE = -100
"""Label of a token the loss leaves out (prompt tokens, padding)."""


class DataError(ValueError):
    """A data file is missing, unreadable, or has a record that does not fit its format."""


def _is_messages(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) > 0
        and all(isinstance(m, dict) and "role" in m and "content" in m for m in value)
    )


def _is_text(value: Any) -> bool:
    return isinstance(value, str) or _is_messages(value)


def _check(fmt: str, rec: Any) -> str | None:
    """Return what is wrong with one record of format `fmt`, or None."""
    if not isinstance(rec, dict):
        return "a record must be a JSON object"
    if fmt == "sft":
        if "messages" in rec:
            return None if _is_messages(rec["messages"]) else '"messages" must be a message list'
        if not (_is_text(rec.get("prompt")) and _is_text(rec.get("completion"))):
            return 'needs "prompt" and "completion" (strings or message lists) or "messages"'
        return None
    if not _is_text(rec.get("prompt")):
        return 'needs "prompt" (a string or a message list)'
    if fmt == "pairs":
        if not (_is_text(rec.get("chosen")) and _is_text(rec.get("rejected"))):
            return 'needs "chosen" and "rejected"'
        if rec.get("margin") is not None and not isinstance(rec["margin"], int | float):
            return '"margin" must be a number'
    elif fmt == "rankings":
        rs = rec.get("responses")
        if not (isinstance(rs, list) and len(rs) >= 2 and all(_is_text(r) for r in rs)):
            return '"responses" must be a list of at least 2 responses, best first'
        places = rec.get("ranks")
        if places is not None and (
            not isinstance(places, list)
            or len(places) != len(rs)
            or any(not isinstance(p, int) or isinstance(p, bool) for p in places)
            or places != sorted(places)
            or len(set(places)) < 2
        ):
            return (
                '"ranks" must give each response its place, best first and non-decreasing '
                "(equal places are tied), with at least two places"
            )
    elif fmt == "ratings":
        scores = rec.get("scores")
        numbers = isinstance(scores, dict) and all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in scores.values()
        )
        if not _is_text(rec.get("response")):
            return 'needs "response"'
        if not isinstance(rec.get("score"), int | float) and not (scores and numbers):
            return 'needs a numeric "score" or "scores" ({aspect: number})'
        if scores is not None and not numbers:
            return '"scores" must map each aspect to a number'
    elif fmt != "prompts":
        raise ValueError(f"unknown data format {fmt!r}")
    return None


def read_records(path: str | Path) -> list[tuple[int, Record]]:
    """Read (line number, record) pairs from .jsonl, .jsonl.gz or .parquet (row numbers from 1)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    name = path.name.lower()
    if name.endswith(".parquet"):
        import pyarrow.parquet as pq

        try:
            rows = pq.read_table(path).to_pylist()
        except Exception as e:  # pyarrow raises several types for corrupt files
            raise DataError(f"{path}: cannot read Parquet ({e})") from e
        return list(enumerate(rows, start=1))
    opener = gzip.open if name.endswith(".gz") else open
    out = []
    with opener(path, "rt", encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                out.append((lineno, json.loads(line)))
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{lineno}: invalid JSON ({e.msg})") from e
    return out


def load_records(path: str | Path, fmt: str) -> list[Record]:
    """Read and validate a data file; a bad record raises DataError naming file and line."""
    records = []
    for lineno, rec in read_records(path):
        problem = _check(fmt, rec)
        if problem:
            raise DataError(f"{path}:{lineno}: {fmt} record {problem}")
        records.append(rec)
    if not records:
        raise DataError(f"{path}: no records")
    return records


def detect_format(path: str | Path, candidates: tuple[str, ...]) -> str:
    """Pick the first of `candidates` that the first record of `path` satisfies."""
    lineno, first = read_records(path)[0]
    for fmt in candidates:
        if _check(fmt, first) is None:
            return fmt
    raise DataError(f"{path}:{lineno}: record fits none of the formats {', '.join(candidates)}")


def train_eval_split(
    train_file: str, eval_file: str, eval_fraction: float, fmt: str, seed: int
) -> tuple[list[Record], list[Record]]:
    """Load train and eval records; without an eval file hold out `eval_fraction` of train."""
    train = load_records(train_file, fmt)
    if eval_file:
        return train, load_records(eval_file, fmt)
    return hold_out(train, eval_fraction, seed)


def hold_out(
    records: list[Record], eval_fraction: float, seed: int
) -> tuple[list[Record], list[Record]]:
    """(train, eval): a seeded random `eval_fraction` of the records held out (at least one)."""
    if eval_fraction <= 0 or len(records) < 2:
        return records, []
    order = list(range(len(records)))
    random.Random(seed).shuffle(order)
    n_eval = max(1, int(len(records) * eval_fraction))
    held = set(order[:n_eval])
    return [r for i, r in enumerate(records) if i not in held], [records[i] for i in sorted(held)]


# ----------------------------------------------------------------------------- rendering


def as_messages(prompt: str | list[Message]) -> list[Message]:
    """A plain prompt is one user message."""
    return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt


def _plain(messages: list[Message], add_generation_prompt: bool) -> str:
    text = "".join(f"{m['role'].capitalize()}: {m['content']}\n\n" for m in messages)
    return text + ("Assistant: " if add_generation_prompt else "")


def render_messages(tokenizer: Any, messages: list[Message], add_generation_prompt: bool) -> str:
    """Render a conversation with the tokenizer's chat template, or the plain format."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=add_generation_prompt
        )
    return _plain(messages, add_generation_prompt)


def render_prompt(tokenizer: Any, prompt: str | list[Message]) -> str:
    """Prompt text ending where the response starts (generation prompt included)."""
    return render_messages(tokenizer, as_messages(prompt), add_generation_prompt=True)


def render_response(tokenizer: Any, prompt: Any, response: str | list[Message]) -> str:
    """Response text such that render_prompt(prompt) + it is the whole conversation."""
    if isinstance(response, str):
        return response
    head = render_prompt(tokenizer, prompt)
    full = render_messages(tokenizer, as_messages(prompt) + response, add_generation_prompt=False)
    if full.startswith(head):
        return full[len(head) :]
    return "".join(m["content"] for m in response)


def sft_segments(tokenizer: Any, rec: Record) -> list[tuple[str, bool]]:
    """Split an `sft` record into (text, is_completion) pieces that concatenate to the sample."""
    eos = tokenizer.eos_token or ""
    if "messages" not in rec:
        prompt_text = render_prompt(tokenizer, rec["prompt"])
        response = render_response(tokenizer, rec["prompt"], rec["completion"])
        if isinstance(rec["completion"], str):
            response += eos
        return [(prompt_text, False), (response, True)]
    # A conversation: render growing prefixes and learn every assistant turn.
    messages: list[Message] = rec["messages"]
    pieces: list[tuple[str, bool]] = []
    done = ""
    for i, m in enumerate(messages):
        is_assistant = m["role"] == "assistant"
        if is_assistant:
            head = render_messages(tokenizer, messages[:i], add_generation_prompt=True)
            if head.startswith(done) and len(head) > len(done):
                pieces.append((head[len(done) :], False))
                done = head
        text = render_messages(tokenizer, messages[: i + 1], add_generation_prompt=False)
        if not text.startswith(done):  # a template that rewrites earlier turns: no masking
            return [(render_messages(tokenizer, messages, False), True)]
        # The plain format has no end-of-turn marker: end learned turns with EOS instead.
        end = eos if is_assistant and not getattr(tokenizer, "chat_template", None) else ""
        pieces.append((text[len(done) :] + end, is_assistant))
        done = text
    return pieces


# ----------------------------------------------------------------------------- batches


class SpecialTokens:
    """The ids a tokenizer puts before and after a text (e.g. [CLS] … [SEP], or <bos> …)."""

    def __init__(self, tokenizer: Any) -> None:
        probe = "hello"
        full = tokenizer(probe)["input_ids"]
        core = tokenizer(probe, add_special_tokens=False)["input_ids"]
        at = next(i for i in range(len(full)) if full[i : i + len(core)] == core)
        self.prefix, self.suffix = full[:at], full[at + len(core) :]

    def __len__(self) -> int:
        return len(self.prefix) + len(self.suffix)


def fit_prompt(prompt: list[int], head: int, reply: int, max_length: int) -> list[int]:
    """A prompt's ids (its first `head` the tokenizer's own, e.g. BOS) that leave a reply of
    `reply` tokens room within max_length: its oldest tokens after the head go first, and it
    keeps at least half of max_length, so a reply longer than the other half is cut instead."""
    budget = max_length - min(reply, max_length // 2)
    if len(prompt) <= budget:
        return prompt
    return prompt[:head] + prompt[len(prompt) - max(budget - head, 0) :]


def sft_pieces(tokenizer: Any, rec: Record) -> list[tuple[list[int], bool]]:
    """The token ids of each of `sft_segments`, with whether they are learned."""
    return [
        (tokenizer(text, add_special_tokens=(i == 0))["input_ids"], is_completion)
        for i, (text, is_completion) in enumerate(sft_segments(tokenizer, rec))
    ]


def tokenize_sft(
    tokenizer: Any,
    rec: Record,
    max_length: int,
    completion_only: bool,
    reply: int = 0,
    pieces: list[tuple[list[int], bool]] | None = None,
) -> dict:
    """Token ids and labels of one sample (`pieces`: its `sft_pieces`, when already there);
    labels are -100 outside completions.

    A prompt/completion sample longer than max_length loses its prompt's oldest tokens first
    (`fit_prompt`): a long conversation keeps its last turns and the reply, where keeping the
    start would cut the reply to nothing. `reply` asks room for a longer reply than this one
    (DPO: the longer of a pair, so that both replies follow the same prompt). What is still too
    long, and any `messages` conversation, is cut at the end.
    """
    pieces = pieces if pieces is not None else sft_pieces(tokenizer, rec)
    if "messages" not in rec and sum(len(p) for p, _ in pieces) > max_length:
        (prompt, _), (completion, learned) = pieces
        head = len(SpecialTokens(tokenizer).prefix)
        reply = max(reply, len(completion))
        pieces = [(fit_prompt(prompt, head, reply, max_length), False), (completion, learned)]
    ids: list[int] = []
    labels: list[int] = []
    for piece, is_completion in pieces:
        ids += piece
        labels += piece if (is_completion or not completion_only) else [IGNORE] * len(piece)
    return {"input_ids": ids[:max_length], "labels": labels[:max_length]}


def collate(samples: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a list of tokenised samples into (B, T) tensors."""
    input_ids = pad([s["input_ids"] for s in samples], pad_id)  # (B, T)
    labels = pad([s["labels"] for s in samples], IGNORE)  # (B, T)
    mask = pad([[1] * len(s["input_ids"]) for s in samples], 0)  # (B, T)
    return {"input_ids": input_ids, "labels": labels, "attention_mask": mask}


def pad(seqs: Sequence[Sequence[int]], value: int, side: str = "right") -> torch.Tensor:
    """Pad lists of ints into a (B, T) LongTensor."""
    width = max(len(s) for s in seqs)
    fill = [[value] * (width - len(s)) for s in seqs]
    pairs = zip(seqs, fill, strict=True)
    rows = [list(s) + f if side == "right" else f + list(s) for s, f in pairs]
    return torch.tensor(rows, dtype=torch.long)


def appended_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a JSONL file a job appends to and may resume (samples, judgments): a torn
    last line, left by a job stopped mid-write, is cut off the file."""
    if not path.is_file():
        return []
    data = path.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    if len(complete) != len(data):
        with open(path, "r+b") as f:
            f.truncate(len(complete))
    return [json.loads(line) for line in complete.decode("utf-8").splitlines() if line.strip()]
