"""Plumbing every trainer shares: accelerator, seeding, metrics file, checkpoints, SIGTERM.

The training loops themselves live in sft.py, reward.py, ppo.py and dpo.py; this module holds
only what would otherwise be copied four times.

Resumption: the data order is a pure function of (seed, step) (see `batch_indices`), so a
checkpoint needs only the step besides the model, optimizer, scheduler and RNG states that
`accelerate` saves (under strategy fsdp: the sharded states trainer/distributed.py saves, which
resume on any process count; under deepspeed: DeepSpeed's partitioned checkpoint, which resumes
on the same process count and ZeRO stage only). A resumed run drops the metric lines past its
checkpoint, so metrics.jsonl holds one line per step however often the run was interrupted.

A run writes only while it is its run's current attempt (trainer/fencing.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator, PartialState
from accelerate.utils import set_seed
from transformers.utils import logging as hf_logging

from trainer import ATTEMPT_ENV, PREEMPTED_FILE, distributed
from trainer.configs import BaseConfig, ConfigError, GenerateConfig, JudgeConfig
from trainer.fencing import Fence
from trainer.reporting import METRICS_FILE, log, rounded, sanitise, step_of

STATE_FILE = "trainer_state.json"


class Diverged(RuntimeError):
    """The loss stayed non-finite for more than `nan_patience` steps."""


_STOP = threading.Event()


def request_stop() -> None:
    """Ask this process's run to stop as SIGTERM does (every rank after the same step, with a
    checkpoint): for a launcher that runs the trainer off the main thread, where no signal
    handler can be installed (a Ray Train worker, trainer/ray_cluster.py)."""
    _STOP.set()


class Run:
    """One training run in `cfg.output_dir`: metrics.jsonl, checkpoints, preemption flag."""

    def __init__(self, cfg: BaseConfig | GenerateConfig | JudgeConfig, kind: str) -> None:
        distributed.die_with_launcher()
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        self.cfg: Any = cfg  # a trainer's BaseConfig, or the config of `generate` or `judge`
        self.kind = kind
        self.out = Path(cfg.output_dir)
        world = int(os.environ.get("WORLD_SIZE", "1"))  # set by accelerate launch / torchrun
        self.strategy: str = getattr(cfg, "strategy", "ddp")
        wanted = getattr(cfg, "processes", 1) * getattr(cfg, "machines", 1)
        if wanted > 1 and wanted != world:
            raise RuntimeError(
                f"the config asks for {wanted} processes (processes × machines) but this one "
                f"was launched as one of WORLD_SIZE={world}"
            )
        local, gpus = distributed.local_processes(), torch.cuda.device_count()
        if gpus and local > gpus:
            raise RuntimeError(
                f"{local} processes on this machine but it has {gpus} GPU(s): one process per GPU"
            )
        plugin = None
        if self.strategy == "deepspeed":
            if world == 1:  # DeepSpeed wants a launcher's rank, even of one process
                distributed.set_single_rank_env()
            if not torch.cuda.is_available():
                # accelerate finds no backend for CPU ranks unless told: gloo, through DeepSpeed
                PartialState(backend="gloo")
            plugin = distributed.deepspeed_plugin(cfg)
        self.accelerator = Accelerator(
            mixed_precision=cfg.mixed_precision,
            gradient_accumulation_steps=getattr(cfg, "gradient_accumulation_steps", 1),
            # Several processes and no GPU: one CPU process per rank, gradients over gloo
            # (DeepSpeed finds the CPU itself).
            cpu=world > 1 and not torch.cuda.is_available() and plugin is None,
            deepspeed_plugin=plugin,
        )
        if self.accelerator.num_processes != world:
            # Each process would train alone, all writing the same output directory.
            raise RuntimeError(
                f"launched as one of WORLD_SIZE={world} processes, but accelerate set up "
                f"{self.accelerator.num_processes}: no distributed training would happen"
            )
        if self.strategy == "fsdp":
            distributed.init_single_process_group(self.accelerator.device)  # one process
        set_seed(cfg.seed)
        self._model: torch.nn.Module | None = None
        self._optimizer: torch.optim.Optimizer | None = None
        self._scheduler: Any = None
        self.preempted = False
        self.is_main = self.accelerator.is_main_process
        self.fence = Fence(self.out)
        self.fence.start_watching()
        self._bad_loss_steps: list[int] = []
        if self.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            self.fence.lock()
            (self.out / "run_config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2))
        self._metrics = open(self.out / METRICS_FILE, "a") if self.is_main else None  # noqa: SIM115
        if threading.current_thread() is threading.main_thread():  # signals only work there
            signal.signal(signal.SIGTERM, self._on_sigterm)
        log(f"{kind}: output_dir={self.out} device={self.accelerator.device}")

    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    # ------------------------------------------------------------------ distribution

    def prepare(
        self,
        model: torch.nn.Module,
        build_optimizer: Callable[[torch.nn.Module], tuple[torch.optim.Optimizer, Any]],
    ) -> tuple[torch.nn.Module, torch.optim.Optimizer, Any]:
        """Distribute `model` by the run's strategy, then build (optimizer, scheduler) over it.

        ddp: accelerate wraps the model (DDP when there are several processes). fsdp: the model
        is sharded here (trainer/distributed.py says why not by accelerate) and the optimizer
        built over the shards, so its states are sharded too. deepspeed: accelerate hands the
        model and our AdamW to a DeepSpeed engine (ZeRO partitions the optimizer states and
        gradients, at stage 3 the parameters too); `accelerator.backward` then steps the
        engine on the step's last micro-batch (clipping included), and optimizer.step() and
        zero_grad() are no-ops.
        """
        if self.strategy == "fsdp":
            model = distributed.shard(model, self.device, self.cfg.mixed_precision)
            optimizer, scheduler = build_optimizer(model)
        else:
            optimizer, scheduler = build_optimizer(model)
            model, optimizer = self.accelerator.prepare(model, optimizer)
            self.accelerator.register_for_checkpointing(scheduler)
        self._model, self._optimizer, self._scheduler = model, optimizer, scheduler
        return model, optimizer, scheduler

    def frozen(self, model: torch.nn.Module) -> torch.nn.Module:
        """A model used for inference only (a reference): sharded under fsdp, else on device."""
        model.requires_grad_(False)
        if self.strategy == "fsdp":
            return distributed.shard(model, self.device, self.cfg.mixed_precision)
        return model.to(self.device)

    @contextlib.contextmanager
    def accumulate(self, model: torch.nn.Module) -> Iterator[None]:
        """One micro-batch of gradient accumulation: gradients are synchronised across the
        processes on the step's last micro-batch only (DDP's no_sync; FSDP2's gradient sync)."""
        with self.accelerator.accumulate(model):
            if self.strategy == "fsdp":
                model.set_requires_gradient_sync(self.accelerator.sync_gradients)
            yield

    def clip_grad_norm(self, model: torch.nn.Module, max_norm: float) -> torch.Tensor:
        """Clip gradients by their global norm (0 → no clipping); the norm before clipping."""
        limit = max_norm or float("inf")
        if self.strategy == "fsdp":
            return distributed.clip_grad_norm(model, limit)
        if self.strategy == "deepspeed":  # clipped inside the engine's step, already taken
            norm = self.accelerator.clip_grad_norm_(model.parameters(), limit)
            return torch.tensor(float("nan") if norm is None else float(norm))
        return self.accelerator.clip_grad_norm_(model.parameters(), limit)

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        log("SIGTERM received: saving a checkpoint after this step")
        self.preempted = True

    # ------------------------------------------------------------------ metrics

    def log_metrics(self, step: int, metrics: dict[str, float]) -> None:
        """Write one flushed JSON line (and a short stderr line) for `step`.

        NaN/inf values are written as null and named in `non_finite`; a loss that stays
        non-finite for more than cfg.nan_patience steps raises Diverged.
        """
        self.fence.check()
        row = sanitise({"step": step, "time": round(time.time(), 3), **rounded(metrics)})
        if self.is_main:
            assert self._metrics is not None
            self._metrics.write(json.dumps(row) + "\n")
            self._metrics.flush()
            shown = " ".join(
                f"{k}={v:.4g}" for k, v in row.items() if k in _SHOWN and v is not None
            )
            log(
                f"step {step}: {shown}"
                + (f" non-finite: {row['non_finite']}" if "non_finite" in row else "")
            )
        loss = metrics.get("loss")
        if isinstance(loss, float) and not math.isfinite(loss):
            self._bad_loss_steps.append(step)
            if len(self._bad_loss_steps) > self.cfg.nan_patience:
                word = "NaN" if math.isnan(loss) else "infinite"
                raise Diverged(f"loss became {word} at step {self._bad_loss_steps[0]}")
        else:
            self._bad_loss_steps = []

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
        self.fence.check()
        path = self.out / "checkpoints" / f"step-{step:07d}"
        self.accelerator.wait_for_everyone()
        if self.strategy == "fsdp":  # shards only: a whole model per checkpoint would not fit
            (path / "state").mkdir(parents=True, exist_ok=True)
            distributed.save_sharded(path / "state", *self._prepared())
        else:
            self.accelerator.save_state(str(path / "state"))
        self.accelerator.wait_for_everyone()
        extra = {**extra, "strategy": self.strategy}
        if self.strategy == "deepspeed":
            extra |= {
                "world_size": self.accelerator.num_processes,
                "zero_stage": distributed.zero_stage(self.cfg),
            }
        if self.is_main:
            if self.strategy == "ddp":  # fsdp and deepspeed: partitioned states only
                save_model(self.accelerator.unwrap_model(model), tokenizer, path / "model")
            # The state file goes last, whole (written aside, then renamed): its presence marks
            # the checkpoint complete, so a kill mid-write must not leave an empty one.
            partial = path / (STATE_FILE + ".partial")
            partial.write_text(json.dumps({"step": step, **extra}))
            os.replace(partial, path / STATE_FILE)
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
        preempted = self.any_preempted()
        if preempted or step % self.cfg.save_every == 0 or step == steps:
            self.save_checkpoint(step, model, tokenizer, extra or {})
        if preempted and self.is_main:
            (self.out / PREEMPTED_FILE).write_text(os.environ.get(ATTEMPT_ENV, ""))
        return preempted

    def any_preempted(self) -> bool:
        """Whether SIGTERM reached any process: every rank stops after the same step.

        The signal reaches the ranks at different moments; a rank that stopped alone would leave
        the others waiting forever in their next collective (gradient all-reduce, checkpoint).
        """
        if _STOP.is_set() and not self.preempted:
            log("stop requested by the launcher: saving a checkpoint after this step")
            self.preempted = True
        if self.accelerator.num_processes == 1:
            return self.preempted
        flag = torch.tensor([float(self.preempted)], device=self.device)
        return bool(self.accelerator.reduce(flag, "sum").item() > 0)

    def resume(self) -> tuple[int, dict]:
        """Load the latest checkpoint into the prepared objects; return (step, extra) or (0, {})."""
        self.fence.check()
        found = self.checkpoints()
        if not found:
            self._keep_metrics(0)
            return 0, {}
        path = found[-1]
        state = json.loads((path / STATE_FILE).read_text())
        written = state.pop("strategy", "ddp")
        if written != self.strategy:
            raise ConfigError(
                f"the checkpoint {path.name} was written under strategy {written}; resume it "
                f"with strategy {written}, not {self.strategy}",
                "strategy",
            )
        if self.strategy == "deepspeed":
            self._check_zero_layout(path.name, state.pop("world_size"), state.pop("zero_stage"))
        if self.strategy == "fsdp":
            distributed.load_sharded(path / "state", *self._prepared())
        else:
            self.accelerator.load_state(str(path / "state"))
        log(f"resumed from {path} at step {state['step']}")
        self._keep_metrics(int(state["step"]))
        return int(state.pop("step")), state

    def _check_zero_layout(self, name: str, world: int, stage: int) -> None:
        """A ZeRO checkpoint holds one partition per rank: it resumes on its own layout only."""
        now = (self.accelerator.num_processes, distributed.zero_stage(self.cfg))
        if (world, stage) != now:
            raise ConfigError(
                f"the checkpoint {name} was written by {world} processes at zero_stage "
                f"{stage}; a DeepSpeed checkpoint is partitioned per process, so resume it with "
                f"processes × machines = {world} and zero_stage {stage} (not {now[0]} and "
                f"{now[1]}), or convert it with DeepSpeed's ds_to_universal.py first",
                "processes" if world != now[0] else "zero_stage",
            )

    def _prepared(self) -> tuple[torch.nn.Module, torch.optim.Optimizer, Any]:
        assert self._model is not None and self._optimizer is not None, "prepare() first"
        return self._model, self._optimizer, self._scheduler

    def _keep_metrics(self, step: int) -> None:
        """Rewrite metrics.jsonl with the complete lines of steps up to `step` (atomic rename)."""
        if not self.is_main:
            return
        assert self._metrics is not None
        self._metrics.close()
        path = self.out / METRICS_FILE
        kept = [
            line for line in path.read_text().splitlines(keepends=True) if step_of(line) <= step
        ]
        tmp = path.with_name(METRICS_FILE + ".tmp")
        tmp.write_text("".join(kept))
        os.replace(tmp, path)
        self._metrics = open(path, "a")  # noqa: SIM115

    def finish(self, model: torch.nn.Module, tokenizer: Any, summary: dict[str, Any]) -> None:
        """Save the final model and tokenizer in output_dir and write summary.json."""
        self.fence.check()
        self.accelerator.wait_for_everyone()
        peaks = distributed.gathered(distributed.peak_memory_mb(self.device))
        weights = None
        if self.strategy == "fsdp":
            whole = distributed.consolidated(model)  # collective: every rank gives its shards
        else:
            whole = self.accelerator.unwrap_model(model)
        if self.strategy == "deepspeed":  # collective: ZeRO-3 gathers the parameters on rank 0
            weights = self.accelerator.get_state_dict(model)
        if self.is_main:
            assert whole is not None
            save_model(whole, tokenizer, self.out, weights)
            summary = {
                "kind": self.kind,
                **rounded(summary),
                "strategy": self.strategy,
                "world_size": self.accelerator.num_processes,
                "peak_memory_mb": [round(p, 1) for p in peaks],
            }
            (self.out / "summary.json").write_text(json.dumps(summary, indent=2))
            assert self._metrics is not None
            self._metrics.close()
        log(f"done: {json.dumps(sanitise(rounded(summary)))}")


_SHOWN = {
    "loss",
    "eval_loss",
    "accuracy",
    "score",
    "kl",
    "lr",
    "reward_margin",
    "items_per_second",
    "abstentions",
}


def save_model(
    model: torch.nn.Module, tokenizer: Any, path: Path, weights: dict | None = None
) -> None:
    """save_pretrained the model (LoRA adapters merged) and the tokenizer; `weights`, when
    given, are the model's whole state dict (gathered from ZeRO-3 partitions)."""
    path.mkdir(parents=True, exist_ok=True)
    if weights is None and hasattr(model, "merge_and_unload"):  # peft: a plain model loads
        import copy

        model = copy.deepcopy(model).merge_and_unload()
    model.save_pretrained(path, state_dict=weights)
    tokenizer.save_pretrained(path)


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
