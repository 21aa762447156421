"""strategy deepspeed: two CPU processes under torchrun (gloo) train with ZeRO stage 2 and 3 as
one process with the same global batch (trainer/distributed.py: deepspeed_plugin).

As in test_fsdp.py, with its tolerances: one ddp process with batch_size B against two
DeepSpeed ranks with B/2 each; the loss curve and the final weights (consolidated on rank 0,
safetensors, loadable with from_pretrained) agree. A ZeRO checkpoint is partitioned per rank:
it resumes on its own process count and stage, and is refused on another with the reason.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip(
    "deepspeed",
    reason="the deepspeed package is not installed (the `deepspeed` extra): "
    "strategy deepspeed is refused without it",
)

if shutil.which("c++") is None:
    pytest.skip(
        "no C++ compiler: DeepSpeed compiles its CPU communication op at run time",
        allow_module_level=True,
    )

from transformers import AutoModelForCausalLM  # noqa: E402

from tests.trainer.test_fsdp import drop_after, torchrun  # noqa: E402
from tests.trainer.test_multiprocess import (  # noqa: E402
    _base,
    _env,
    _write_config,
    assert_same_curve,
    assert_same_weights,
    cancel_after_first_step,
    in_process,
    launch,
)
from tests.trainer.trainer_testdata import read_metrics  # noqa: E402
from trainer import EXIT_OK  # noqa: E402
from trainer.configs import ConfigError, build_config  # noqa: E402

pytestmark = pytest.mark.slow


def deepspeed(cfg: dict[str, Any], processes: int, stage: int) -> dict[str, Any]:
    return cfg | {"strategy": "deepspeed", "processes": processes, "zero_stage": stage}


@pytest.mark.parametrize("stage", [2, 3])
def test_sft_zero_follows_the_one_process_curve(
    tmp_path: Path, stage: int, causal_lm: str, data: dict[str, str]
) -> None:
    steps = 6

    def cfg(processes: int, accumulation: int = 1) -> dict[str, Any]:
        batch = 8 // processes // accumulation
        return _base(causal_lm, data["sft"], batch, steps) | {
            "max_length": 64,
            "gradient_accumulation_steps": accumulation,
            "max_grad_norm": 0.5,  # clipped inside the engine: must clip as ddp does
            "save_every": steps // 2,
        }

    in_process("sft", cfg(1), tmp_path / "one")
    two = tmp_path / "two"
    launch("sft", deepspeed(cfg(2, accumulation=2), 2, stage), two, processes=2, command=torchrun)
    assert_same_curve(tmp_path / "one", two)
    assert_same_curve(tmp_path / "one", two, "grad_norm")
    assert_same_weights(tmp_path / "one", two)
    summary = json.loads((two / "summary.json").read_text())
    assert summary["strategy"] == "deepspeed" and summary["world_size"] == 2
    model = AutoModelForCausalLM.from_pretrained(two)
    assert sum(p.numel() for p in model.parameters()) > 0
    ckpt = sorted((two / "checkpoints").glob("step-*"))[-1]
    state = json.loads((ckpt / "trainer_state.json").read_text())
    assert state | {"step": 0} == {
        "step": 0,
        "strategy": "deepspeed",
        "world_size": 2,
        "zero_stage": stage,
    }
    assert not (ckpt / "model").exists()  # partitioned states only

    # Resumed from the half-way checkpoint on the same layout: the same curve and weights.
    again = tmp_path / "again"
    shutil.copytree(two, again)
    drop_after(again, steps // 2)
    launch("sft", deepspeed(cfg(2, accumulation=2), 2, stage), again, processes=2, command=torchrun)
    assert [r["step"] for r in read_metrics(again)] == list(range(1, steps + 1))
    assert_same_curve(tmp_path / "one", again)
    assert_same_weights(tmp_path / "one", again)

    # On another process count the partitions do not fit: refused with the reason.
    one_rank = tmp_path / "one-rank"
    shutil.copytree(again, one_rank)
    drop_after(one_rank, steps // 2)
    config = _write_config(one_rank, deepspeed(cfg(1), 1, stage))
    res = subprocess.run(
        torchrun("sft", config, 1), env=_env(), capture_output=True, text=True, timeout=600
    )
    assert res.returncode != EXIT_OK
    assert "partitioned per process, so resume it with processes × machines = 2" in res.stderr


@pytest.mark.parametrize(
    ("kind", "values", "reason"),
    [
        ("ppo", {"strategy": "deepspeed"}, "does not run PPO"),
        ("sft", {"strategy": "deepspeed", "lora": True}, "LoRA"),
    ],
)
def test_what_deepspeed_does_not_run_is_refused_with_the_reason(
    kind: str, values: dict[str, Any], reason: str
) -> None:
    with pytest.raises(ConfigError, match=reason) as info:
        build_config(kind, values)
    assert info.value.key == "strategy"


@pytest.mark.parametrize(("kind", "stage"), [("rm", 2), ("dpo", 3)])
def test_rm_and_dpo_under_zero_follow_the_one_process_curve(
    tmp_path: Path,
    kind: str,
    stage: int,
    causal_lm: str,
    encoder_without_dropout: str,
    data: dict[str, str],
) -> None:
    model = encoder_without_dropout if kind == "rm" else causal_lm
    steps = 4

    def cfg(processes: int) -> dict[str, Any]:
        return _base(model, data[kind], 8 // processes, steps)

    in_process(kind, cfg(1), tmp_path / "one")
    two = tmp_path / "two"
    launch(kind, deepspeed(cfg(2), 2, stage), two, processes=2, command=torchrun)
    assert_same_curve(tmp_path / "one", two)
    assert_same_curve(tmp_path / "one", two, "reward_margin" if kind == "dpo" else "accuracy")
    skip = ("classifier.bias",) if kind == "rm" else ()  # see test_multiprocess
    assert_same_weights(tmp_path / "one", two, skip)
    summary = json.loads((two / "summary.json").read_text())
    assert summary["strategy"] == "deepspeed" and summary["world_size"] == 2


def test_sft_zero_cancel_and_resume(tmp_path: Path, causal_lm: str, data: dict[str, str]) -> None:
    """A SIGTERM to torchrun's group (the worker's cancel) stops both ranks after the same step
    with a DeepSpeed checkpoint; the run resumes from it on the same layout."""
    steps = 40  # long enough for a SIGTERM sent after step 1 to land inside the loop

    def cfg(processes: int) -> dict[str, Any]:
        return _base(causal_lm, data["sft"], 4 // processes, steps) | {"max_length": 64}

    in_process("sft", cfg(1), tmp_path / "one")
    two = tmp_path / "two"
    stopped = cancel_after_first_step(
        "sft", deepspeed(cfg(2), 2, 2), two, processes=2, command=torchrun
    )
    assert stopped < steps
    launch("sft", deepspeed(cfg(2), 2, 2), two, processes=2, command=torchrun)
    assert [r["step"] for r in read_metrics(two)] == list(range(1, steps + 1))
    assert_same_curve(tmp_path / "one", two)
    assert_same_weights(tmp_path / "one", two)
