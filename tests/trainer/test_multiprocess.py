"""Two CPU processes under `accelerate launch` (gloo) train as one process with the same batch.

Each kind runs with the same global batch on both layouts: one process with batch_size B, two
with B/2 each. SFT, RM and DPO then follow the same loss curve and end with the same weights,
within float round-off (the two halves' gradients are summed by an all-reduce instead of inside
one matmul); tolerances below. Dropout is off for the comparison (the tiny Llama has none; the
encoder's is switched off): each process draws its own masks, so with dropout the layouts are
equal only in distribution. PPO samples its responses from each process's own random stream,
so its two layouts are different draws of the same algorithm: what must agree there is the
global batch, the step count, the KL at the first step (exactly 0: the policy is still the
reference) and a finite score and KL at every step.

Checkpoints are written once (the main process writes the model, the metric lines and the
summary; each rank adds only its own RNG state) and a checkpoint of either layout resumes on
the other. A SIGTERM to the launcher's process group (what the worker's cancel sends) stops
every rank after the same step with a checkpoint, and nothing of the run is left running.

`accelerate launch --cpu --num_processes 2` starts ONE process (accelerate's --cpu launcher
without mpirun ignores the count); several CPU processes come from `--multi_gpu
--num_processes 2` on a machine without a GPU, where the trainer asks accelerate for CPU ranks.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from tests.trainer.trainer_testdata import children, read_metrics
from trainer import EXIT_OK, EXIT_PREEMPTED, PREEMPTED_FILE
from trainer.configs import load_config

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
LOSS_RTOL = 1e-3
"""Loss curves of the two layouts agree to 0.1% (or 1e-5 absolute) at every step."""
WEIGHT_ATOL = 1e-4
"""Final weights agree to 1e-4 (a step trained on other data moves them by ~lr = 1e-3)."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env() -> dict[str, str]:
    return os.environ | {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def _write_config(out: Path, cfg: dict[str, Any]) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out.with_name(out.name + ".json")
    path.write_text(json.dumps(cfg | {"output_dir": str(out)}))
    return path


def _command(kind: str, config: Path, processes: int) -> list[str]:
    if processes == 1:
        return [sys.executable, "-m", "trainer", kind, "--config", str(config)]
    return [
        *(sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu"),
        *("--num_processes", str(processes), "--num_machines", "1"),
        *("--mixed_precision", "no", "--dynamo_backend", "no"),
        *("--main_process_port", str(_free_port())),
        *("-m", "trainer", kind, "--config", str(config)),
    ]


Command = Callable[[str, Path, int], list[str]]


def launch(
    kind: str, cfg: dict[str, Any], out: Path, processes: int, command: Command = _command
) -> None:
    """Train `kind` in `processes` processes to the end; fail with the log otherwise."""
    config = _write_config(out, cfg)
    res = subprocess.run(
        command(kind, config, processes), env=_env(), capture_output=True, text=True, timeout=600
    )
    assert res.returncode == EXIT_OK, res.stdout[-3000:] + res.stderr[-6000:]


def in_process(kind: str, cfg: dict[str, Any], out: Path) -> None:
    """Train `kind` in this process (one process, the reference layout)."""
    module = {"sft": "sft", "rm": "reward", "ppo": "ppo", "dpo": "dpo"}[kind]
    train = __import__(f"trainer.{module}", fromlist=["train"]).train
    assert train(load_config(kind, str(_write_config(out, cfg)), {})) == EXIT_OK


def cancel_after_first_step(
    kind: str, cfg: dict[str, Any], out: Path, processes: int, command: Command = _command
) -> int:
    """Start a run, SIGTERM its process group once step 1 is logged; return the checkpoint step.

    Asserts that every process of the group, and every rank (torchrun starts each in a session
    of its own), has exited within a minute.
    """
    config = _write_config(out, cfg)
    log = (out.parent / f"{out.name}.log").open("w")
    proc = subprocess.Popen(
        command(kind, config, processes),
        env=_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # as the worker starts a trainer: the group is the run
    )
    metrics = out / "metrics.jsonl"
    deadline = time.monotonic() + 300
    while not (metrics.exists() and metrics.read_text().strip()):
        assert proc.poll() is None, (out.parent / f"{out.name}.log").read_text()[-4000:]
        assert time.monotonic() < deadline, "no step logged within 5 minutes"
        time.sleep(0.01)
    ranks = children(proc.pid) if processes > 1 else []
    assert processes == 1 or len(ranks) == processes, ranks
    os.killpg(proc.pid, signal.SIGTERM)  # the worker's cancel
    try:
        code = proc.wait(timeout=60)
    finally:
        log.close()
    time.sleep(0.5)
    with pytest.raises(ProcessLookupError):  # no rank and no launcher left in the group
        os.killpg(proc.pid, 0)
    for rank in ranks:
        with pytest.raises(ProcessLookupError):
            os.kill(rank, 0)
    if processes == 1:
        assert code == EXIT_PREEMPTED
    # The launcher exits 1 whatever its ranks returned: the marker tells the worker it was a stop.
    assert (out / PREEMPTED_FILE).exists()
    state = json.loads(_latest_checkpoint(out).joinpath("trainer_state.json").read_text())
    assert 1 <= state["step"] < cfg["max_steps"], "the signal did not land inside the loop"
    return int(state["step"])


def _latest_checkpoint(out: Path) -> Path:
    found = sorted((out / "checkpoints").glob("step-*"))
    assert found, f"no checkpoint in {out}"
    return found[-1]


def weights(directory: Path) -> dict[str, torch.Tensor]:
    return load_file(str(directory / "model.safetensors"))


def assert_same_weights(a: Path, b: Path, skip: tuple[str, ...] = ()) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    worst = max(float((wa[k] - wb[k]).abs().max()) for k in wa if k not in skip)
    assert worst <= WEIGHT_ATOL, f"weights differ by {worst:.2e}"


def assert_same_curve(a: Path, b: Path, key: str = "loss") -> None:
    ra, rb = read_metrics(a), read_metrics(b)
    assert [r["step"] for r in ra] == [r["step"] for r in rb]  # one line per step: one writer
    for x, y in zip(ra, rb, strict=True):
        assert x[key] == pytest.approx(y[key], rel=LOSS_RTOL, abs=1e-5), (x["step"], x[key], y[key])


def assert_written_once(out: Path, steps: int) -> None:
    """The main process alone wrote the metric lines, the summary and the checkpoint's model."""
    assert [r["step"] for r in read_metrics(out)] == list(range(1, steps + 1))
    assert json.loads((out / "summary.json").read_text())["steps"] == steps
    ckpt = _latest_checkpoint(out)
    state = sorted(p.name for p in (ckpt / "state").iterdir())
    assert "model.safetensors" in state and "optimizer.bin" in state
    assert [p for p in state if p.startswith("random_states_")] == [
        "random_states_0.pkl",
        "random_states_1.pkl",
    ]


def _base(model: str, train_file: str, batch_size: int, steps: int) -> dict[str, Any]:
    return {
        "model": model,
        "train_file": train_file,
        "eval_fraction": 0.0,
        "batch_size": batch_size,
        "max_steps": steps,
        "learning_rate": 1e-3,
        "save_every": 1000,
    }


def test_sft_cancel_and_resume_across_layouts(
    tmp_path: Path, causal_lm: str, data: dict[str, str]
) -> None:
    steps = 60  # long enough for a SIGTERM sent after step 1 to land inside the loop

    def cfg(processes: int) -> dict[str, Any]:
        return _base(causal_lm, data["sft"], 4 // processes, steps) | {"max_length": 64}

    reference = tmp_path / "one"
    in_process("sft", cfg(1), reference)

    # Two processes, cancelled; one process resumes and finishes: the uninterrupted weights.
    two_then_one = tmp_path / "two-then-one"
    cancel_after_first_step("sft", cfg(2), two_then_one, processes=2)
    in_process("sft", cfg(1), two_then_one)
    assert_same_curve(reference, two_then_one)
    assert_same_weights(reference, two_then_one)

    # One process, cancelled; two processes resume and finish.
    one_then_two = tmp_path / "one-then-two"
    stopped = cancel_after_first_step("sft", cfg(1), one_then_two, processes=1)
    launch("sft", cfg(2), one_then_two, processes=2)
    assert_same_curve(reference, one_then_two)
    assert_same_weights(reference, one_then_two)
    assert_written_once(one_then_two, steps)
    assert stopped < steps


@pytest.mark.parametrize("kind", ["rm", "dpo"])
def test_two_processes_follow_the_one_process_curve(
    tmp_path: Path, kind: str, causal_lm: str, encoder_without_dropout: str, data: dict[str, str]
) -> None:
    model = encoder_without_dropout if kind == "rm" else causal_lm
    steps = 6

    def cfg(processes: int) -> dict[str, Any]:
        return _base(model, data[kind], 8 // processes, steps)

    in_process(kind, cfg(1), tmp_path / "one")
    launch(kind, cfg(2), tmp_path / "two", processes=2)
    assert_same_curve(tmp_path / "one", tmp_path / "two")
    # Over the global batch. DPO's accuracy at step 1 counts margins of exactly 0 ± round-off
    # (the policy is the reference): its margin is compared instead.
    assert_same_curve(
        tmp_path / "one", tmp_path / "two", "reward_margin" if kind == "dpo" else "accuracy"
    )
    # The reward head's bias cancels in every pairwise difference: its gradient is round-off,
    # which Adam scales up to full-size steps in either direction.
    skip = ("classifier.bias",) if kind == "rm" else ()
    assert_same_weights(tmp_path / "one", tmp_path / "two", skip)
    assert_written_once(tmp_path / "two", steps)


def test_ppo_runs_the_same_global_batch_on_two_processes(
    tmp_path: Path, causal_lm: str, data: dict[str, str]
) -> None:
    # A reward model on the policy's own tokenizer: "more marker words" from the RM data.
    rm = tmp_path / "rm"
    in_process("rm", _base(causal_lm, data["rm"], 8, 6), rm)
    steps = 3

    def cfg(processes: int) -> dict[str, Any]:
        return _base(causal_lm, data["dpo"], 8 // processes, steps) | {
            "reward_model": str(rm),
            "mini_batch_size": 4 // processes,
            "response_length": 8,
            "ppo_epochs": 2,
        }

    in_process("ppo", cfg(1), tmp_path / "one")
    launch("ppo", cfg(2), tmp_path / "two", processes=2)
    one, two = read_metrics(tmp_path / "one"), read_metrics(tmp_path / "two")
    assert len(one) == len(two) == steps
    for rows in (one, two):
        assert rows[0]["kl"] == pytest.approx(0.0, abs=1e-5)  # the policy is the reference
        assert all(r["score"] is not None and r["kl"] is not None for r in rows)
    assert_written_once(tmp_path / "two", steps)
