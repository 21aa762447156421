"""Plumbing every trainer shares: accelerator, seeding, metrics file, checkpoints, SIGTERM.

The training loops themselves live in sft.py, reward.py, ppo.py and dpo.py; this module holds
only what would otherwise be copied four times.

Resumption: the data order is a pure function of (seed, step) (see `batch_indices`), so a
checkpoint needs only the step besides the model, optimizer, scheduler and RNG states that
`accelerate` saves.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from transformers import AutoTokenizer, get_scheduler
from transformers.utils import logging as hf_logging

from trainer.configs import BaseConfig, GenerateConfig

STATE_FILE = "trainer_state.json"


def log(msg: str) -> None:
    """Append one timestamped line to stderr (the run's human-readable log)."""
    print(f"[{time.strftime('%Y-%m-%d %H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Run:
    """One training run in `cfg.output_dir`: metrics.jsonl, checkpoints, preemption flag."""

    def __init__(self, cfg: BaseConfig | GenerateConfig, kind: str) -> None:
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        self.cfg: Any = cfg  # a trainer's BaseConfig, or the GenerateConfig of `generate`
        self.kind = kind
        self.out = Path(cfg.output_dir)
        self.accelerator = Accelerator(
            mixed_precision=cfg.mixed_precision,
            gradient_accumulation_steps=getattr(cfg, "gradient_accumulation_steps", 1),
        )
        set_seed(cfg.seed)
        self.preempted = False
        self.is_main = self.accelerator.is_main_process
        if self.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "run_config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2))
        self._metrics = open(self.out / "metrics.jsonl", "a") if self.is_main else None  # noqa: SIM115
        if threading.current_thread() is threading.main_thread():  # signals only work there
            signal.signal(signal.SIGTERM, self._on_sigterm)
        log(f"{kind}: output_dir={self.out} device={self.accelerator.device}")

    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        log("SIGTERM received: saving a checkpoint after this step")
        self.preempted = True

    # ------------------------------------------------------------------ metrics

    def log_metrics(self, step: int, metrics: dict[str, float]) -> None:
        """Write one flushed JSON line (and a short stderr line) for `step`."""
        if not self.is_main:
            return
        row = {"step": step, "time": round(time.time(), 3), **_round(metrics)}
        assert self._metrics is not None
        self._metrics.write(json.dumps(row) + "\n")
        self._metrics.flush()
        shown = " ".join(f"{k}={v:.4g}" for k, v in row.items() if k in _SHOWN)
        log(f"step {step}: {shown}")

    # ------------------------------------------------------------------ checkpoints

    def checkpoints(self) -> list[Path]:
        """Completed checkpoints, oldest first."""
        root = self.out / "checkpoints"
        found = [p for p in root.glob("step-*") if (p / STATE_FILE).exists()]
        return sorted(found, key=lambda p: int(p.name.split("-")[1]))

    def save_checkpoint(
        self, step: int, model: torch.nn.Module, tokenizer: Any, extra: dict
    ) -> Path:
        """Save model (loadable with from_pretrained), optimizer, scheduler, RNG and step."""
        path = self.out / "checkpoints" / f"step-{step:07d}"
        self.accelerator.wait_for_everyone()
        self.accelerator.save_state(str(path / "state"))
        if self.is_main:
            save_model(self.accelerator.unwrap_model(model), tokenizer, path / "model")
            # The state file goes last: its presence marks the checkpoint complete.
            (path / STATE_FILE).write_text(json.dumps({"step": step, **extra}))
            for old in self.checkpoints()[: -self.cfg.save_total_limit]:
                shutil.rmtree(old, ignore_errors=True)
        log(f"checkpoint saved: {path}")
        return path

    def end_step(
        self,
        step: int,
        steps: int,
        metrics: dict[str, float],
        model: torch.nn.Module,
        tokenizer: Any,
        extra: dict | None = None,
    ) -> bool:
        """Log step `step` of `steps` and checkpoint when due; True when preempted (stop now).

        A checkpoint is written every `save_every` steps, after the last step, and at once when
        SIGTERM asked the run to stop; `extra` is saved with it (what `resume` gives back).
        """
        self.log_metrics(step, metrics)
        if self.preempted or step % self.cfg.save_every == 0 or step == steps:
            self.save_checkpoint(step, model, tokenizer, extra or {})
        return self.preempted

    def resume(self) -> tuple[int, dict]:
        """Load the latest checkpoint into the prepared objects; return (step, extra) or (0, {})."""
        found = self.checkpoints()
        if not found:
            return 0, {}
        path = found[-1]
        self.accelerator.load_state(str(path / "state"))
        state = json.loads((path / STATE_FILE).read_text())
        log(f"resumed from {path} at step {state['step']}")
        return int(state.pop("step")), state

    def finish(self, model: torch.nn.Module, tokenizer: Any, summary: dict[str, Any]) -> None:
        """Save the final model and tokenizer in output_dir and write summary.json."""
        self.accelerator.wait_for_everyone()
        if self.is_main:
            save_model(self.accelerator.unwrap_model(model), tokenizer, self.out)
            summary = {"kind": self.kind, **_round(summary)}
            (self.out / "summary.json").write_text(json.dumps(summary, indent=2))
            assert self._metrics is not None
            self._metrics.close()
        log(f"done: {json.dumps(_round(summary))}")


_SHOWN = {"loss", "eval_loss", "accuracy", "score", "kl", "lr", "reward_margin"}


def _round(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in d.items()}


def save_model(model: torch.nn.Module, tokenizer: Any, path: Path) -> None:
    """save_pretrained the model (LoRA adapters merged) and the tokenizer."""
    path.mkdir(parents=True, exist_ok=True)
    if hasattr(model, "merge_and_unload"):  # peft: a plain model loads everywhere
        import copy

        model = copy.deepcopy(model).merge_and_unload()
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)


# ---------------------------------------------------------------------- models


def load_tokenizer(path: str, padding_side: str = "right") -> Any:
    """Load a tokenizer; give it a pad token (the EOS) if it has none."""
    tok = AutoTokenizer.from_pretrained(path)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token or tok.unk_token
    tok.padding_side = padding_side
    return tok


def maybe_lora(model: torch.nn.Module, cfg: BaseConfig, task_type: str) -> torch.nn.Module:
    """Wrap `model` in LoRA adapters when cfg.lora is set."""
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    if not cfg.lora:
        return model
    from peft import LoraConfig, get_peft_model

    targets: Any = cfg.lora_target_modules
    if targets == ["all-linear"]:
        targets = "all-linear"
    lora = LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=targets,
        task_type=task_type,
    )
    return get_peft_model(model, lora)


def make_optimizer(
    model: torch.nn.Module, cfg: BaseConfig, total_steps: int
) -> tuple[torch.optim.Optimizer, Any]:
    """AdamW over trainable parameters plus the configured warmup + decay schedule."""
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(
        params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay, eps=cfg.adam_eps
    )
    name = {"constant": "constant_with_warmup"}.get(cfg.lr_scheduler, cfg.lr_scheduler)
    sched = get_scheduler(
        name,
        opt,
        num_warmup_steps=int(cfg.warmup_ratio * total_steps),
        num_training_steps=total_steps,
    )
    return opt, sched


# ---------------------------------------------------------------------- data order


def total_steps(cfg: BaseConfig, n_examples: int, per_step: int) -> int:
    """Steps to run: cfg.max_steps, or num_epochs over n_examples at per_step examples/step."""
    if cfg.max_steps > 0:
        return cfg.max_steps
    return max(1, math.ceil(cfg.num_epochs * n_examples / per_step))


def batch_indices(n: int, size: int, step: int, seed: int) -> list[int]:
    """Indices of the `size` examples of step `step`: a seeded permutation per epoch.

    A pure function of its arguments, so a resumed run sees exactly the data it would have seen.
    """
    start = step * size
    out: list[int] = []
    while len(out) < size:
        epoch, pos = divmod(start + len(out), n)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100003 + epoch))
        take = min(size - len(out), n - pos)
        out.extend(perm[pos : pos + take].tolist())
    return out


def step_micro_batches(run: Run, n: int, step: int) -> list[list[int]]:
    """This process's micro-batches (lists of example indices) for optimizer step `step`."""
    cfg, acc = run.cfg, run.accelerator
    per_step = cfg.batch_size * cfg.gradient_accumulation_steps * acc.num_processes
    idx = batch_indices(n, per_step, step, cfg.seed)
    bs, rank = cfg.batch_size, acc.process_index
    return [
        idx[(a * acc.num_processes + rank) * bs : (a * acc.num_processes + rank + 1) * bs]
        for a in range(cfg.gradient_accumulation_steps)
    ]
