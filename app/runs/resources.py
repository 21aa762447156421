"""What a worker's machine offers a run, and whether a run's distribution fits a live worker.

A worker measures its machine once when it starts (`measure`: CPU cores, memory, GPUs, the
strategies its trainer can run, whether it hands runs to a Ray cluster) and keeps it on its
heartbeat row (`Worker.resources`). The start form shows the live workers' resources beside
the distribution fields, and `refusal` refuses, where the run is typed, a distribution no live
worker can run — the rule the trainer applies when it starts (one process per GPU on a GPU
machine; CPU ranks may share cores), so no run is queued to fail later. With no live worker
nothing is known and nothing is refused: the run waits for one.
"""

import importlib.util
import os
import shutil
import subprocess
from typing import Any

STRATEGIES = ("ddp", "fsdp", "deepspeed")


def gpus() -> list[dict[str, Any]]:
    """This machine's NVIDIA GPUs as `nvidia-smi` lists them (the ones CUDA_VISIBLE_DEVICES
    leaves visible, when it names indices): asked of the driver's tool rather than through torch,
    which would stay resident in the long-lived worker process for one question."""
    tool = shutil.which("nvidia-smi")
    if tool is None:
        return []
    query = [tool, "--query-gpu=index,name,memory.total", "--format=csv,noheader,nounits"]
    try:
        lines = subprocess.run(query, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    shown = None if visible is None else {v.strip() for v in visible.split(",") if v.strip()}
    found = []
    for line in lines.splitlines():
        index, name, mib = (part.strip() for part in line.split(",", 2))
        if shown is None or index in shown:
            found.append({"name": name, "memory_gib": round(float(mib) / 1024, 1)})
    return found


def measure(ray_address: str = "") -> dict[str, Any]:
    """This machine's resources."""
    pages, page = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    deepspeed = importlib.util.find_spec("deepspeed") is not None
    return {
        "cpus": os.cpu_count() or 1,
        "memory_gib": round(pages * page / 2**30, 1),
        "gpus": gpus(),
        "strategies": [s for s in STRATEGIES if s != "deepspeed" or deepspeed],
        "ray": bool(ray_address),
    }


def describe(resources: dict[str, Any] | None) -> str:
    """One line a person reads: "2 CPU cores, 23.4 GiB, no GPU; ddp, fsdp"."""
    if not resources:
        return "resources not reported (a worker of an older version)"
    gpus = resources.get("gpus") or []
    on_gpus = (
        f"{len(gpus)} GPU{'s' if len(gpus) != 1 else ''} ({gpus[0]['name']}, "
        f"{gpus[0]['memory_gib']:g} GiB each)"
        if gpus
        else "no GPU"
    )
    ray = "; hands runs to a Ray cluster" if resources.get("ray") else ""
    return (
        f"{resources['cpus']} CPU cores, {resources['memory_gib']:g} GiB, {on_gpus}; "
        f"{', '.join(resources['strategies'])}{ray}"
    )


def refusal(
    reported: list[dict[str, Any]], strategy: str, processes: int, machines: int
) -> tuple[str, str] | None:
    """(why, the config key to blame) when no live worker that reported its resources can run
    `processes` per machine × `machines` with `strategy`; None when one can, or none reported."""
    if not reported:
        return None
    if machines > 1 or any(r.get("ray") for r in reported):
        return None  # a Ray cluster places the ranks; its launcher checks the cluster's size
    with_strategy = [r for r in reported if strategy in r.get("strategies", ())]
    if not with_strategy:
        return (
            f"strategy {strategy}: no live worker can run it ("
            + "; ".join(describe(r) for r in reported)
            + ")",
            "strategy",
        )
    if not any(not r.get("gpus") or len(r["gpus"]) >= processes for r in with_strategy):
        most = max(len(r["gpus"]) for r in with_strategy)
        return (
            f"processes {processes}: a GPU worker runs one process per GPU and the live workers "
            f"have at most {most}; ask for {most} or fewer",
            "processes",
        )
    return None
