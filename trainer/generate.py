"""`python -m trainer generate`: sample candidate responses from causal LMs for a prompts file.

Input (`train_file`), one JSON object per line:
  {"prompt_id": str | int, "prompt": str | [messages] (or "messages": [...]),
   "sample_indices"?: [int, ...] | {model name: [int, ...]}}
Output (`output_dir`/samples.jsonl), one row per sample, flushed batch by batch:
  {"prompt_id", "sample_index", "text", "model", "prompt_tokens", "completion_tokens",
   "finish_reason": "stop" | "length", "truncated": bool}

Steps: render each prompt with the tokenizer's chat template (the plain format without one),
truncate it from the left to fit `max_context - max_new_tokens`, sort by length, sample in
left-padded batches until EOS or `max_new_tokens`, and keep only the new tokens (the prompt is
never returned). A restarted run reads samples.jsonl first and skips the rows already written.
Throughput (tokens/s) goes to metrics.jsonl through the same reporter the trainers use.

Engines: `transformers` (any device) or `vllm` (GPU, the optional `vllm` extra), chosen by
`engine`; the vLLM path is imported only when chosen.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from trainer import EXIT_OK, EXIT_PREEMPTED
from trainer.configs import ConfigError, GenerateConfig, check_values
from trainer.data import (
    DataError,
    _is_messages,
    appended_rows,
    pad,
    read_records,
    render_prompt,
)
from trainer.factories import load_tokenizer
from trainer.reporting import log
from trainer.runtime import Run

SAMPLES_FILE = "samples.jsonl"


@dataclass
class Job:
    """One sample to produce: a prompt (already tokenised) and a sample index."""

    prompt_id: str
    sample_index: int
    ids: list[int]
    truncated: bool
    prompt: Any = None
    """The prompt as given (string or messages), for the reward model."""


# ---------------------------------------------------------------------- inputs


def parse_models(cfg: GenerateConfig) -> list[tuple[str, str]]:
    """(name, path) of every model to sample from."""
    entries = cfg.models or ([cfg.model] if cfg.model else [])
    if not entries:
        raise ConfigError("config key 'model' (or 'models') is required")
    out = []
    for entry in entries:
        name, sep, path = entry.partition("=")
        out.append((name, path) if sep and name and path else (entry, entry))
    names = [n for n, _ in out]
    if len(set(names)) != len(names):
        raise ConfigError(f"models must have distinct names; got {names}")
    return out


def read_prompts(path: str) -> list[dict[str, Any]]:
    """Validated prompt rows: prompt_id (as str), prompt, sample_indices (or None)."""
    rows, seen = [], set()
    for lineno, rec in read_records(path):
        where = f"{path}:{lineno}"
        if not isinstance(rec, dict):
            raise DataError(f"{where}: a record must be a JSON object")
        pid = rec.get("prompt_id", rec.get("id"))
        if not isinstance(pid, str | int) or isinstance(pid, bool) or str(pid) == "":
            raise DataError(f'{where}: needs "prompt_id" (a string or an integer)')
        prompt = rec.get("prompt", rec.get("messages"))
        if not (isinstance(prompt, str) and prompt) and not _is_messages(prompt):
            raise DataError(f'{where}: needs "prompt" (a string or a message list)')
        indices = rec.get("sample_indices")
        if indices is not None and not _valid_indices(indices):
            raise DataError(
                f'{where}: "sample_indices" must be a list of integers ≥ 0, '
                "or an object of such lists by model name"
            )
        if str(pid) in seen:
            raise DataError(f"{where}: prompt_id {pid!r} appears twice")
        seen.add(str(pid))
        rows.append({"prompt_id": str(pid), "prompt": prompt, "sample_indices": indices})
    return rows


def _valid_indices(value: Any) -> bool:
    def ok(xs: Any) -> bool:
        return isinstance(xs, list) and all(
            isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in xs
        )

    if isinstance(value, dict):
        return all(isinstance(k, str) and ok(v) for k, v in value.items())
    return ok(value)


def indices_for(row: dict[str, Any], model: str, n: int) -> list[int]:
    """The sample indices this prompt wants from `model`."""
    wanted = row["sample_indices"]
    if wanted is None:
        return list(range(n))
    if isinstance(wanted, dict):
        return list(wanted.get(model, []))
    return list(wanted)


def read_done(path: Path) -> set[tuple[str, str, int]]:
    """(prompt_id, model, sample_index) already in samples.jsonl (a torn last line is cut
    off the file)."""
    return {
        (str(row["prompt_id"]), row["model"], int(row["sample_index"]))
        for row in appended_rows(path)
    }


def context_length(model_config: Any, cfg: GenerateConfig) -> int:
    """Prompt + response budget in tokens."""
    if cfg.max_context > 0:
        return cfg.max_context
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(model_config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return 2048


def encode_prompts(
    tokenizer: Any, rows: list[dict[str, Any]], max_prompt_tokens: int
) -> dict[str, tuple[list[int], bool]]:
    """prompt_id -> (token ids kept, whether tokens were cut from the left)."""
    texts = [render_prompt(tokenizer, r["prompt"]) for r in rows]
    out = {}
    for row, ids in zip(rows, tokenizer(texts)["input_ids"], strict=True):
        kept = ids[-max_prompt_tokens:]
        out[row["prompt_id"]] = (kept, len(kept) < len(ids))
    return out


# ---------------------------------------------------------------------- engines


def pick_engine(cfg: GenerateConfig) -> str:
    """The engine to use: the configured one, or vllm when installed on a GPU machine."""
    if cfg.engine != "auto":
        return cfg.engine
    import importlib.util

    if torch.cuda.is_available() and importlib.util.find_spec("vllm") is not None:
        return "vllm"
    return "transformers"


def _cut_at_eos(tokens: list[int], eos_ids: set[int]) -> tuple[list[int], str]:
    """The response up to (not including) its first EOS, and why it ended.

    Only a row that stopped early is padded by `generate`, and the padding follows its EOS.
    """
    for i, t in enumerate(tokens):
        if t in eos_ids:
            return tokens[:i], "stop"
    return tokens, "length"


class TransformersEngine:
    """Batched, left-padded `model.generate` on the run's device."""

    def __init__(self, path: str, run: Run, cfg: GenerateConfig) -> None:
        from transformers import AutoModelForCausalLM

        self.cfg, self.device = cfg, run.device
        self.tokenizer = load_tokenizer(path, padding_side="left")
        self.model = AutoModelForCausalLM.from_pretrained(path).to(self.device).eval()
        eos = self.model.generation_config.eos_token_id or self.tokenizer.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos]) - {None}
        self.context = context_length(self.model.config, cfg)

    @torch.no_grad()
    def generate(self, batch: list[Job], seed: int) -> list[tuple[list[int], str]]:
        """(response token ids without EOS, finish reason) per job."""
        pad_id = self.tokenizer.pad_token_id
        ids = pad([j.ids for j in batch], pad_id, side="left").to(self.device)  # (B, T)
        mask = pad([[1] * len(j.ids) for j in batch], 0, side="left").to(self.device)  # (B, T)
        torch.manual_seed(seed)
        sample = self.cfg.temperature > 0
        out = self.model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=self.cfg.max_new_tokens,
            do_sample=sample,
            temperature=self.cfg.temperature if sample else None,
            top_p=self.cfg.top_p if sample else None,
            top_k=self.cfg.top_k if sample else None,
            eos_token_id=sorted(self.eos_ids),
            pad_token_id=pad_id,
        )  # (B, T + new)
        new = out[:, ids.size(1) :].tolist()  # the prompt is never returned
        return [_cut_at_eos(row, self.eos_ids) for row in new]


class VLLMEngine:
    """vLLM's offline `LLM` (continuous batching on a GPU); one request per job."""

    def __init__(self, path: str, run: Run, cfg: GenerateConfig) -> None:
        from vllm import LLM  # the optional `vllm` extra

        self.cfg = cfg
        self.tokenizer = load_tokenizer(path, padding_side="left")
        self.llm = LLM(model=path, seed=cfg.seed)
        self.eos_ids = {self.tokenizer.eos_token_id}
        hf_config = self.llm.llm_engine.model_config.hf_config
        self.context = context_length(hf_config, cfg)

    def generate(self, batch: list[Job], seed: int) -> list[tuple[list[int], str]]:
        """(response token ids without EOS, finish reason) per job."""
        from vllm import SamplingParams

        params = [
            SamplingParams(
                n=1,
                temperature=self.cfg.temperature,
                top_p=self.cfg.top_p,
                top_k=self.cfg.top_k if self.cfg.top_k > 0 else -1,
                max_tokens=self.cfg.max_new_tokens,
                seed=seed + i,
            )
            for i in range(len(batch))
        ]
        prompts = [{"prompt_token_ids": j.ids} for j in batch]
        results = self.llm.generate(prompts, params, use_tqdm=False)
        out = []
        for result in results:
            completion = result.outputs[0]
            tokens = [t for t in completion.token_ids if t not in self.eos_ids]
            out.append((tokens, "stop" if completion.finish_reason == "stop" else "length"))
        return out


# ---------------------------------------------------------------------- the loop


def _batch_seed(seed: int, model: str, job: Job) -> int:
    """A seed fixed by the batch's first row, so a resumed run repeats the same draws."""
    key = f"{seed}:{model}:{job.prompt_id}:{job.sample_index}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:4], "little")


def generate(cfg: GenerateConfig) -> int:
    """Sample each (prompt, model, sample index) not in samples.jsonl yet; EXIT_OK or _PREEMPTED."""
    check_values(cfg)  # a config built in code skipped build_config's checks
    if not cfg.train_file:
        raise ConfigError("config key 'train_file' (the prompts file) is required")
    models = parse_models(cfg)
    engine_name = pick_engine(cfg)
    rows = read_prompts(cfg.train_file)
    run = Run(cfg, "generate")
    out_path = run.out / SAMPLES_FILE
    done = read_done(out_path)
    totals = {"samples": 0, "completion_tokens": 0, "truncated_prompts": 0, "seconds": 0.0}
    step = len(done)  # metrics steps continue after a resume
    engine_cls = VLLMEngine if engine_name == "vllm" else TransformersEngine
    scorer = None
    if cfg.reward_model:
        from trainer.reward import load_reward_model

        scorer = load_reward_model(cfg.reward_model, run.device)
    with open(out_path, "a", encoding="utf-8") as out:
        for name, path in models:
            # 1. Jobs: every wanted (prompt, sample index) of this model not written yet.
            wanted = [
                (row, i)
                for row in rows
                for i in indices_for(row, name, cfg.n)
                if (row["prompt_id"], name, i) not in done
            ]
            if not wanted:
                continue
            engine = engine_cls(path, run, cfg)
            budget = engine.context - cfg.max_new_tokens
            if budget < 1:
                raise ConfigError(
                    f"max_new_tokens={cfg.max_new_tokens} leaves no room for a prompt in "
                    f"{name}'s context of {engine.context} tokens"
                )
            encoded = encode_prompts(engine.tokenizer, [r for r, _ in wanted], budget)
            jobs = [
                Job(r["prompt_id"], i, *encoded[r["prompt_id"]], prompt=r["prompt"])
                for r, i in wanted
            ]
            jobs.sort(key=lambda j: len(j.ids))  # similar lengths share a batch: less padding
            cut = {j.prompt_id for j in jobs if j.truncated}
            if cut:
                log(f"{name}: {len(cut)} prompts longer than {budget} tokens cut from the left")
            totals["truncated_prompts"] += len(cut)
            log(f"{name}: {len(jobs)} samples with engine={engine_name} from {path}")
            # 2. Batches: sample, write, flush, report.
            for first in range(0, len(jobs), cfg.batch_size):
                if run.preempted:
                    log("stopping after SIGTERM; restart to continue")
                    return EXIT_PREEMPTED
                batch = jobs[first : first + cfg.batch_size]
                t0 = time.perf_counter()
                results = engine.generate(batch, _batch_seed(cfg.seed, name, batch[0]))
                seconds = time.perf_counter() - t0
                new_tokens = 0
                texts = [engine.tokenizer.decode(t, skip_special_tokens=True) for t, _ in results]
                rewards = (
                    scorer.score_responses([j.prompt for j in batch], texts).tolist()
                    if scorer is not None
                    else [None] * len(batch)
                )
                for job, (tokens, reason), text, reward in zip(
                    batch, results, texts, rewards, strict=True
                ):
                    row = {
                        "prompt_id": job.prompt_id,
                        "sample_index": job.sample_index,
                        "text": text,
                        "model": name,
                        "prompt_tokens": len(job.ids),
                        "completion_tokens": len(tokens),
                        "finish_reason": reason,
                        "truncated": job.truncated,
                    }
                    if reward is not None:
                        row["reward"] = round(float(reward), 6)
                    out.write(json.dumps(row, ensure_ascii=False) + "\n")
                    new_tokens += len(tokens)
                out.flush()
                step += len(batch)
                totals["samples"] += len(batch)
                totals["completion_tokens"] += new_tokens
                totals["seconds"] += seconds
                run.log_metrics(
                    step,
                    {
                        "samples": float(len(batch)),
                        "tokens_per_second": new_tokens / max(seconds, 1e-9),
                        "samples_per_second": len(batch) / max(seconds, 1e-9),
                        "mean_completion_tokens": new_tokens / len(batch),
                    },
                )
            del engine
    summary = {
        "kind": "generate",
        "engine": engine_name,
        **totals,
        "tokens_per_second": totals["completion_tokens"] / max(totals["seconds"], 1e-9),
    }
    (run.out / "summary.json").write_text(json.dumps(summary, indent=2))
    log(f"done: {json.dumps(summary)}")
    return EXIT_OK
