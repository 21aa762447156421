"""`python -m trainer judge`: AI feedback — a judge labels each item's responses, as an annotator.

Input (`train_file`), one JSON object per line (the app's generation and ranking items):
  {"id": str | int, "prompt": str | [messages] (or "messages": [...]),
   "responses": [{"id": str | int, "text": str}, ...]}   (a bare string: its index is its id)
Output (`output_dir`/judgments.jsonl), one line per item, appended chunk by chunk:
  {"id", "ranking": [response ids, best first] | null   (project_kind ranking)
         "ratings": {response id: value on the scale} | null   (project_kind rating)
   "scores": {response id: reward (reward model) | wins (pairwise judges)},
   "margin": best − second score | null, "abstained": bool, "reason": str | null,
   "orders_agree": bool | null (pairwise: did both orders of every pair agree),
   pairwise only: "preference" (P(best ≻ second), position-averaged), "pairs", "tied_pairs"}
The rules (ties, abstentions, the rating map) are in trainer/judge_rules.py.

Judges (`judge_kind`): reward_model (trainer/judge_local.py), pairwise_lm (same file) or
endpoint (trainer/judge_endpoint.py); `auto` picks endpoint when `endpoint` is set, else reads
the model's config.json: a one-label sequence classifier is a reward model, a causal LM is asked
pairwise.

A restarted run reads judgments.jsonl first (a torn last line is cut off) and judges only the
items not in it, so each id is written once. SIGTERM stops it between chunks (EXIT_PREEMPTED);
a newer attempt fences it off (trainer/fencing.py). Progress (items done, abstentions, items/s)
goes to metrics.jsonl through the same reporter the trainers use; summary.json at the end.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import time
from pathlib import Path
from typing import Any

import torch

from trainer import EXIT_OK, EXIT_PREEMPTED
from trainer.configs import ConfigError, JudgeConfig, check_values
from trainer.data import DataError, _is_messages, appended_rows, read_records
from trainer.judge_rules import Item, Tally
from trainer.model_files import architecture, find_config, read_config
from trainer.reporting import log, rounded
from trainer.runtime import Run

JUDGMENTS_FILE = "judgments.jsonl"


# ---------------------------------------------------------------------- inputs


def _id(value: Any) -> bool:
    return isinstance(value, str | int) and not isinstance(value, bool) and str(value) != ""


def read_items(path: str, project_kind: str) -> list[Item]:
    """Validated items; a bad line raises DataError naming the file and line."""
    items, seen = [], set()
    for lineno, rec in read_records(path):
        where = f"{path}:{lineno}"
        if not isinstance(rec, dict):
            raise DataError(f"{where}: an item must be a JSON object")
        if not _id(rec.get("id")):
            raise DataError(f'{where}: needs "id" (a string or an integer)')
        prompt: Any = rec.get("prompt", rec.get("messages"))
        if not (isinstance(prompt, str) and prompt) and not _is_messages(prompt):
            raise DataError(f'{where}: needs "prompt" (a string or a message list)')
        raw = rec.get("responses")
        if not isinstance(raw, list) or not raw:
            raise DataError(f'{where}: needs "responses", a list of {{"id", "text"}}')
        responses = []
        for n, r in enumerate(raw):
            if isinstance(r, str):
                responses.append((n, r))
            elif isinstance(r, dict) and _id(r.get("id")) and isinstance(r.get("text"), str):
                responses.append((r["id"], r["text"]))
            else:
                raise DataError(f'{where}: responses[{n}] must be {{"id", "text"}} or a string')
        if len({str(rid) for rid, _ in responses}) != len(responses):
            raise DataError(f"{where}: two responses share an id")
        if project_kind == "ranking" and len(responses) < 2:
            raise DataError(f"{where}: a ranking item needs at least 2 responses")
        if str(rec["id"]) in seen:
            raise DataError(f"{where}: id {rec['id']!r} appears twice")
        seen.add(str(rec["id"]))
        items.append(Item(rec["id"], prompt, responses))
    return items


def read_done(path: Path) -> set[str]:
    """Ids already in judgments.jsonl (a torn last line is cut off the file)."""
    return {str(row["id"]) for row in appended_rows(path)}


def judge_kind(cfg: JudgeConfig) -> str:
    """The judge to run: the configured kind, or for `auto` the one the config implies."""
    if cfg.judge_kind == "endpoint" or (cfg.judge_kind == "auto" and cfg.endpoint):
        return "endpoint"
    if not cfg.model:
        raise ConfigError(
            "config key 'model' (a reward model or a causal LM) or 'endpoint' is required", "model"
        )
    if cfg.judge_kind != "auto":
        return cfg.judge_kind
    config = find_config(cfg.model)
    what = architecture(read_config(config))[0] if config is not None else "unknown"
    if what == "reward":
        return "reward_model"
    if what == "causal-lm":
        return "pairwise_lm"
    raise ConfigError(
        f"model {cfg.model!r}: cannot tell whether it is a reward model or a causal LM from "
        "its config.json; set judge_kind",
        "judge_kind",
    )


def endpoint_key(cfg: JudgeConfig) -> str | None:
    """The API key from the environment variable the config names (None: no key)."""
    if not cfg.endpoint_key_env:
        return None
    key = os.environ.get(cfg.endpoint_key_env, "")
    if not key:
        raise ConfigError(
            f"endpoint_key_env names {cfg.endpoint_key_env}, which is not set here",
            "endpoint_key_env",
        )
    return key


def auto_precision(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """`mixed_precision: auto`: bf16 where the hardware computes it natively — a CUDA device
    that supports it, or a CPU with AVX-512 BF16 or AMX (Linux's /proc/cpuinfo flags) — and
    fp32 ("no") elsewhere, where emulated bf16 would be slower than fp32."""
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "no"
    try:
        flags = cpuinfo.read_text()
    except OSError:
        return "no"
    return "bf16" if re.search(r"\b(avx512_bf16|amx_bf16)\b", flags) else "no"


def make_judge(kind: str, cfg: JudgeConfig, run: Run) -> Any:
    """The judge object (loads its model, or opens nothing yet for an endpoint)."""
    if kind == "endpoint":
        from trainer.judge_endpoint import EndpointJudge

        return EndpointJudge(cfg, endpoint_key(cfg))
    from trainer.judge_local import PairwiseLMJudge, RewardModelJudge

    cls = RewardModelJudge if kind == "reward_model" else PairwiseLMJudge
    return cls(cfg, run.device, run.accelerator.autocast)


# ---------------------------------------------------------------------- the loop


def judge(cfg: JudgeConfig) -> int:
    """Judge each item not in judgments.jsonl yet; EXIT_OK or EXIT_PREEMPTED.

    Raises ConfigError / DataError (refused input), EndpointError (the endpoint kept failing),
    Fenced (a newer attempt owns the output directory).
    """
    check_values(cfg)  # a config built in code skipped build_config's checks
    if not cfg.train_file:
        raise ConfigError("config key 'train_file' (the items file) is required", "train_file")
    kind = judge_kind(cfg)
    if cfg.project_kind == "rating" and kind != "reward_model":
        raise ConfigError(
            f"a rating project needs a reward model judge; {cfg.model or cfg.endpoint!r} is "
            f"judged as {kind}, which compares responses and gives no score on the scale",
            "judge_kind",
        )
    if kind == "endpoint":
        endpoint_key(cfg)  # refuse a missing key before anything is written
    items = read_items(cfg.train_file, cfg.project_kind)
    if cfg.mixed_precision == "auto":  # an endpoint computes nothing here
        chosen = "no" if kind == "endpoint" else auto_precision()
        cfg = dataclasses.replace(cfg, mixed_precision=chosen)
    run = Run(cfg, "judge")
    out_path = run.out / JUDGMENTS_FILE
    done = read_done(out_path)
    todo = [it for it in items if it.key not in done]
    precision = "" if kind == "endpoint" else f", precision {cfg.mixed_precision}"
    log(
        f"judge: {kind}{precision}, {len(todo)} of {len(items)} items to judge "
        f"({len(done)} done before)"
    )
    tally, seconds = Tally(), 0.0
    step = len(done)  # metrics steps continue after a resume
    judge_ = make_judge(kind, cfg, run) if todo else None
    try:
        with open(out_path, "a", encoding="utf-8") as out:

            def write(verdicts: list[tuple[dict[str, Any], Any]]) -> None:
                run.fence.check()  # a stale attempt writes nothing more
                for row, votes in verdicts:
                    out.write(json.dumps(row, ensure_ascii=False) + "\n")
                    tally.add(row, votes)
                out.flush()

            k = max((len(it.responses) for it in todo), default=2)
            size = judge_.chunk_items(k) if judge_ is not None else 1
            at = 0
            while at < len(todo):
                assert judge_ is not None  # made whenever something is left to judge
                if run.preempted:
                    log("stopping after SIGTERM; restart to continue")
                    return EXIT_PREEMPTED
                chunk = todo[at : at + size]
                t0 = time.perf_counter()
                try:
                    verdicts = judge_.judge(chunk, lambda: run.preempted)
                except Exception as e:  # the endpoint failed: what it finished first is kept
                    if getattr(e, "done", None):
                        write(e.done)  # type: ignore[attr-defined]
                    raise
                elapsed = time.perf_counter() - t0
                write(verdicts)
                seconds += elapsed
                at += len(chunk)  # a chunk cut short by SIGTERM returns just below
                step += len(verdicts)
                run.log_metrics(
                    step,
                    {
                        "items": float(len(verdicts)),
                        "items_per_second": len(verdicts) / max(elapsed, 1e-9),
                        "abstentions": float(tally.abstained),
                        "abstention_rate": tally.abstained / max(tally.items, 1),
                        "tied_pairs": float(tally.tied_pairs),
                        "unusable_answers": float(tally.unusable_answers),
                    },
                )
    finally:
        if judge_ is not None:
            judge_.close()
    summary = _summary(kind, out_path, tally, seconds, judge_)
    (run.out / "summary.json").write_text(json.dumps(summary, indent=2))
    log(f"done: {json.dumps(summary)}")
    return EXIT_OK


def _summary(kind: str, path: Path, tally: Tally, seconds: float, judge_: Any) -> dict[str, Any]:
    """Counts over the whole output file, and this run's own throughput and counters."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return {
        "kind": "judge",
        "judge_kind": kind,
        "items": len(rows),
        "abstained": sum(bool(r["abstained"]) for r in rows),
        "orders_disagree": sum(r.get("orders_agree") is False for r in rows),
        "this_run": rounded(
            {
                "items": tally.items,
                "abstained": tally.abstained,
                "pairs": tally.pairs,
                "tied_pairs": tally.tied_pairs,
                "disagreeing_pairs": tally.disagreeing_pairs,
                "unusable_answers": tally.unusable_answers,
                "seconds": round(seconds, 3),
                "items_per_second": round(tally.items / seconds, 3) if seconds > 0 else None,
                **(judge_.summary() if judge_ is not None else {}),
            }
        ),
    }
