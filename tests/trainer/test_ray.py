"""Runs on a Ray cluster (trainer/ray_cluster.py): a local cluster of two CPUs, started once for
the module as `ray.init(num_cpus=2)` in a process of its own, takes the worker's launch command.

Two Ray Train workers (gloo, the process group Ray sets up) train SFT as one process with the
same global batch does: the loss curve and the final weights follow the one-process run within
test_multiprocess.py's tolerances, and the run directory holds what a torchrun run leaves there
(one metric line per step, the model and summary.json, each rank's RNG state in the
checkpoint). A SIGTERM to the driver (the worker's cancel) stops both workers after the same
step with a checkpoint and exit code 75; a SIGKILL (the worker's last resort) takes the workers
down with the driver.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.trainer.test_multiprocess import (
    ROOT,
    _base,
    _env,
    _write_config,
    assert_same_curve,
    assert_same_weights,
    assert_written_once,
    in_process,
    launch,
)
from tests.trainer.trainer_testdata import RAY_ENV, local_ray_cluster
from trainer import EXIT_PREEMPTED, EXIT_UNAVAILABLE, PREEMPTED_FILE
from trainer import launch as launcher
from trainer.ray_cluster import ClusterTooSmall, scaling

RANK_PID = re.compile(r"ray worker rank (\d+): pid (\d+)")


def test_scaling_follows_the_run_config_and_refuses_a_cluster_too_small() -> None:
    two_by_two = {"processes": 2, "machines": 2}
    assert scaling(two_by_two, {"CPU": 8}) == (4, False)
    assert scaling(two_by_two, {"CPU": 8, "GPU": 4}) == (4, True)
    assert scaling({}, {"CPU": 1}) == (1, False)
    with pytest.raises(ClusterTooSmall, match="4 processes, one per GPU, .* has 2 GPUs"):
        scaling(two_by_two, {"CPU": 8, "GPU": 2})
    with pytest.raises(ClusterTooSmall, match="4 processes, one CPU each, .* has 2 CPUs"):
        scaling(two_by_two, {"CPU": 2})


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """The address of a local Ray cluster of 2 CPUs whose workers import this checkout."""
    pytest.importorskip("ray.train.torch", reason="ray[train] is not installed (the ray extra)")
    with local_ray_cluster(ROOT) as address:
        yield address


@pytest.mark.slow
def test_a_run_the_cluster_cannot_hold_fails_at_start_with_the_count(
    tmp_path: Path, cluster: str, causal_lm: str, data: dict[str, str]
) -> None:
    cfg = _base(causal_lm, data["sft"], 1, 2) | {"processes": 3}
    config = _write_config(tmp_path / "run", cfg)
    res = subprocess.run(
        launcher.ray_command("sft", config, cluster),
        env=_env() | RAY_ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == EXIT_UNAVAILABLE, res.stderr[-3000:]
    assert "error: the run needs 3 processes, one CPU each, and the Ray cluster has 2 CPUs" in (
        res.stderr
    )
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def on_ray(address: str) -> Any:
    """The worker's launch command for a Ray cluster, in the signature launch() takes."""
    return lambda kind, config, processes: launcher.ray_command(kind, config, address)


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["ddp", "fsdp", "deepspeed"])
def test_two_ray_workers_follow_the_one_process_curve(
    tmp_path: Path, cluster: str, causal_lm: str, data: dict[str, str], strategy: str
) -> None:
    """Under every strategy: Ray sets up the process group the strategy then uses."""
    if strategy == "deepspeed" and importlib.util.find_spec("deepspeed") is None:
        pytest.skip("the deepspeed package is not installed (its extra)")
    steps = 6

    def cfg(processes: int) -> dict[str, Any]:
        return _base(causal_lm, data["sft"], 4 // processes, steps) | {
            "max_length": 64,
            "processes": processes,
        }

    in_process("sft", cfg(1), tmp_path / "one")
    two = cfg(2) | {"strategy": strategy}
    launch("sft", two, tmp_path / "two", processes=2, command=on_ray(cluster))
    assert_same_curve(tmp_path / "one", tmp_path / "two")
    assert_same_weights(tmp_path / "one", tmp_path / "two")
    if strategy == "ddp":
        assert_written_once(tmp_path / "two", steps)
    summary = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert summary["world_size"] == 2 and len(summary["peak_memory_mb"]) == 2
    assert summary["strategy"] == strategy
    config = json.loads((tmp_path / "two" / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]  # a from_pretrained model, as always


def start_on_ray(cluster: str, cfg: dict[str, Any], out: Path) -> tuple[subprocess.Popen, dict]:
    """Start a 2-worker SFT run through the Ray driver, as the worker does; once step 1 is
    logged, return the driver and {rank: pid} of its Ray workers (from the run's log)."""
    config = _write_config(out, cfg)
    log = out.parent / f"{out.name}.log"
    with log.open("w") as sink:
        proc = subprocess.Popen(
            launcher.ray_command("sft", config, cluster),
            env=_env() | RAY_ENV,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # as the worker starts a trainer: the group is the run
        )
    metrics = out / "metrics.jsonl"
    deadline = time.monotonic() + 300
    ranks: dict[int, int] = {}
    # Ray forwards the workers' lines to the driver as it reads them: wait for both as well.
    while not (metrics.exists() and metrics.read_text().strip() and len(ranks) == 2):
        assert proc.poll() is None, log.read_text()[-4000:]
        assert time.monotonic() < deadline, "no step and both ranks logged within 5 minutes"
        time.sleep(0.05)
        ranks = {int(r): int(p) for r, p in RANK_PID.findall(log.read_text())}
    assert sorted(ranks) == [0, 1]
    return proc, ranks


def wait_gone(pids: list[int], limit: float = 60.0) -> list[int]:
    """The pids still alive after up to `limit` seconds (Ray reaps its workers asynchronously)."""
    deadline = time.monotonic() + limit
    alive = pids
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [p for p in alive if _alive(p)]
    return alive


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def sft_cfg(causal_lm: str, train_file: str) -> dict[str, Any]:
    # Long enough that a stop sent after step 1 lands inside the loop.
    return _base(causal_lm, train_file, 2, 400) | {"max_length": 64, "processes": 2}


@pytest.mark.slow
def test_sigterm_to_the_driver_stops_every_ray_worker_after_a_checkpoint(
    tmp_path: Path, cluster: str, causal_lm: str, data: dict[str, str]
) -> None:
    out = tmp_path / "run"
    proc, ranks = start_on_ray(cluster, sft_cfg(causal_lm, data["sft"]), out)
    os.killpg(proc.pid, signal.SIGTERM)  # the worker's cancel
    code = proc.wait(timeout=120)
    assert code == EXIT_PREEMPTED, (out.parent / "run.log").read_text()[-4000:]
    assert (out / PREEMPTED_FILE).exists()
    ckpt = sorted((out / "checkpoints").glob("step-*"))[-1]
    step = json.loads((ckpt / "trainer_state.json").read_text())["step"]
    assert 1 <= step < 400
    rngs = sorted(p.name for p in (ckpt / "state").glob("random_states_*"))
    assert rngs == ["random_states_0.pkl", "random_states_1.pkl"]  # both ranks stopped there
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == list(range(1, step + 1))
    assert wait_gone(list(ranks.values())) == []


@pytest.mark.slow
def test_a_killed_driver_takes_its_ray_workers_with_it(
    tmp_path: Path, cluster: str, causal_lm: str, data: dict[str, str]
) -> None:
    proc, ranks = start_on_ray(cluster, sft_cfg(causal_lm, data["sft"]), tmp_path / "run")
    os.killpg(proc.pid, signal.SIGKILL)  # the worker's last resort
    proc.wait(timeout=60)
    assert wait_gone(list(ranks.values())) == []
