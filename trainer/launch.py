"""How a run's processes are started: the command on one machine, and the launch config that
says the same for a cluster.

One machine, several processes: `torchrun` (`python -m torch.distributed.run`) starts them on a
free port; each rank finds its device (a GPU, or the CPU over gloo when there is none) in
trainer/runtime.py. One process: `python -m trainer` as it is. Several machines: the launch
config written beside the run's config (LAUNCH_FILE, with the equivalent accelerate config in
ACCELERATE_FILE) is the one source for launching it by hand, e.g. under SLURM:

    accelerate launch --config_file accelerate_config.yaml \\
        --num_machines M --machine_rank $SLURM_NODEID \\
        --main_process_ip HOST --main_process_port PORT \\
        -m trainer KIND --config config.json

On a Ray cluster (`ray_command`): `python -m trainer.ray_cluster` is the launcher instead of
torchrun; it starts processes × machines Ray Train workers wherever the cluster has room
(trainer/ray_cluster.py).
"""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path
from typing import Any

LAUNCH_FILE = "launch.json"
ACCELERATE_FILE = "accelerate_config.yaml"


def plan(config: dict[str, Any]) -> dict[str, Any]:
    """The distribution a run config asks for: strategy, processes, machines, world size."""
    processes = int(config.get("processes", 1))
    machines = int(config.get("machines", 1))
    out: dict[str, Any] = {
        "strategy": config.get("strategy", "ddp"),
        "processes": processes,
        "machines": machines,
        "world_size": processes * machines,
    }
    if out["strategy"] == "deepspeed":
        out["zero_stage"] = int(config.get("zero_stage") or 2)
    return out


def accelerate_config(config: dict[str, Any]) -> str:
    """The accelerate config YAML of the same distribution (for `accelerate launch` on each
    machine of a cluster). Under fsdp the trainer shards the model itself, so accelerate only
    starts the processes (MULTI_GPU) and the strategy travels in the run's config."""
    p = plan(config)
    lines = [
        "compute_environment: LOCAL_MACHINE",
        "distributed_type: " + ("MULTI_GPU" if p["world_size"] > 1 else "NO"),
        f"num_machines: {p['machines']}",
        f"num_processes: {p['world_size']}",  # all machines together, as accelerate counts
        "machine_rank: 0  # overridden per machine: --machine_rank",
        f"mixed_precision: {config.get('mixed_precision', 'no')}",
        "dynamo_config: {}",
        "rdzv_backend: static",
        "same_network: true",
        "use_cpu: false",
        "main_training_function: main",
    ]
    if p["strategy"] == "deepspeed":
        lines += [
            "deepspeed_config:",
            f"  zero_stage: {p['zero_stage']}",
            "  gradient_accumulation_steps: " + str(config.get("gradient_accumulation_steps", 1)),
        ]
        lines[1] = "distributed_type: DEEPSPEED"
    return "\n".join(lines) + "\n"


def write_launch_files(run_dir: Path, config: dict[str, Any]) -> dict[str, Any]:
    """Write LAUNCH_FILE and ACCELERATE_FILE into `run_dir`; return the plan."""
    p = plan(config)
    (run_dir / LAUNCH_FILE).write_text(json.dumps(p | {"accelerate_config": ACCELERATE_FILE}))
    (run_dir / ACCELERATE_FILE).write_text(accelerate_config(config))
    return p


def free_port() -> int:
    """A TCP port free on this machine now (for the ranks' rendezvous)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def command(kind: str, config_path: Path | str, processes: int) -> list[str]:
    """The command that trains `kind` in `processes` processes on this machine."""
    args = ["-m", "trainer", kind, "--config", str(config_path)]
    if processes <= 1:
        return [sys.executable, *args]
    return [
        *(sys.executable, "-m", "torch.distributed.run"),
        *("--nproc_per_node", str(processes), "--nnodes", "1"),
        *("--master_addr", "127.0.0.1", "--master_port", str(free_port())),
        *args,
    ]


def ray_command(kind: str, config_path: Path | str, address: str) -> list[str]:
    """The command that trains `kind` on the Ray cluster at `address`, with as many workers as
    the config's processes × machines (trainer/ray_cluster.py is the driver)."""
    return [
        *(sys.executable, "-m", "trainer.ray_cluster", kind),
        *("--config", str(config_path), "--address", address),
    ]
