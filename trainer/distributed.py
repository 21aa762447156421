"""Sharded training (strategy fsdp): FSDP2 applied by the trainer itself, its checkpoints, and
per-rank peak memory; the DeepSpeed plugin of strategy deepspeed (`deepspeed_plugin`).

Why the trainer shards the model itself rather than through accelerate's FSDP plugin: under
`torchrun` on CPU, `Accelerator(cpu=True, fsdp_plugin=…)` ignores the plugin (its distributed
type is MULTI_CPU and the model comes back wrapped in DDP), so accelerate cannot shard on CPU.
`torch.distributed.fsdp.fully_shard` on each transformer block and then on the root, over a
device mesh of the run's processes, is one code path on CPU (gloo) and GPU (nccl): the CPU
tests exercise what GPUs run. Accelerate keeps the process group, the devices, the reductions
of metrics and (under ddp) the model; under fsdp the model is never passed to
`accelerator.prepare` (it would be wrapped in DDP as well).

What is sharded: every parameter, its gradient and its AdamW states, per transformer block
(the model's `_no_split_modules` classes, else the layers of its module lists) and the rest
(embeddings, head) as the root's group. A block's parameters are gathered for its forward and
backward only. Each rank still loads the whole starting model on CPU before sharding it.

Checkpoints are torch.distributed.checkpoint (DCP) directories: each rank writes its shards,
and a load reshards them onto however many processes the resumed run has. The final model is
gathered to rank 0 and saved whole (safetensors, loadable with `from_pretrained`).
"""

from __future__ import annotations

import os
import pickle
import random
import resource
import socket
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

SHARDED_DIR = "sharded"
SCHEDULER_FILE = "scheduler.pt"


def init_single_process_group(device: torch.device) -> None:
    """A process group of one rank, so a one-process fsdp run shards (and loads a sharded
    checkpoint) exactly as a rank of several does."""
    if dist.is_initialized():
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)


def set_single_rank_env() -> None:
    """The environment torchrun gives a rank, for a process started alone (rank 0 of 1, on a
    free port): DeepSpeed initialises its process group only from a launcher's environment."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "LOCAL_WORLD_SIZE": "1"}
    for key, value in (env | {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}).items():
        os.environ.setdefault(key, value)


def block_classes(model: torch.nn.Module) -> tuple[type, ...]:
    """The classes of the blocks each sharded on their own: the model's `_no_split_modules`
    (a transformer layer for most Hugging Face models), else the members of its module lists."""
    names = set(getattr(model, "_no_split_modules", None) or ())
    if names:
        return tuple({type(m) for m in model.modules() if type(m).__name__ in names})
    return tuple(
        {type(child) for m in model.modules() if isinstance(m, torch.nn.ModuleList) for child in m}
    )


MMAP_THRESHOLD = 64 * 1024
"""Bytes from which glibc serves a CPU fsdp rank's allocations by mmap (bench/shard_memory.py)."""
_M_MMAP_THRESHOLD = -3  # mallopt's parameter number, <malloc.h>


def fix_mmap_threshold(nbytes: int = MMAP_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold for this process, so freed large blocks go back to the system.

    FSDP allocates and frees every block's gathered parameters and gradients on each forward
    and backward. glibc raises its threshold to the size of a large block once one is freed;
    from then on those buffers come from the heap, whose freed space stays resident, fragmented:
    a CPU fsdp rank then peaks as high as a ddp rank holding the whole model
    (bench/shard_memory.py). A fixed threshold also stops the raising. A threshold the user set
    (MALLOC_MMAP_THRESHOLD_) is kept; False where there is no glibc (nothing changed).
    """
    if "MALLOC_MMAP_THRESHOLD_" in os.environ or not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, nbytes))


def shard(model: torch.nn.Module, device: torch.device, mixed_precision: str) -> torch.nn.Module:
    """fully_shard every block of `model`, then the root, over a mesh of all the run's ranks.

    The shards land on `device`; with bf16/fp16 the blocks compute in that type and reduce
    gradients in float32 (the parameters stay float32). On CPU the process's allocator gives
    the gathered buffers back when they are freed (`fix_mmap_threshold`).
    """
    if device.type == "cpu":
        fix_mmap_threshold()
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import (
        MixedPrecisionPolicy,
        fully_shard,
        register_fsdp_forward_method,
    )

    mesh = init_device_mesh(device.type, (dist.get_world_size(),))
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(mixed_precision)
    policy = MixedPrecisionPolicy(param_dtype=dtype, reduce_dtype=torch.float32)
    blocks = block_classes(model)
    for module in list(model.modules()):
        if blocks and isinstance(module, blocks) and module is not model:
            fully_shard(module, mesh=mesh, mp_policy=policy)
    fully_shard(model, mesh=mesh, mp_policy=policy)
    if callable(getattr(model, "generate", None)):
        register_fsdp_forward_method(model, "generate")  # gathers the root's own parameters
    return model


def clip_grad_norm(model: torch.nn.Module, max_norm: float) -> torch.Tensor:
    """Clip the (sharded, DTensor) gradients by their global norm; return the norm before."""
    norm = torch.nn.utils.clip_grad_norm_(
        [p for p in model.parameters() if p.grad is not None], max_norm
    )
    full = getattr(norm, "full_tensor", None)
    return full() if full is not None else norm


def save_sharded(
    path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any
) -> None:
    """Every rank writes its shards of the model and optimizer (DCP), and its RNG states."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    model_sd, optim_sd = get_state_dict(model, optimizer)
    dcp.save({"model": model_sd, "optimizer": optim_sd}, checkpoint_id=str(path / SHARDED_DIR))
    rank = dist.get_rank()
    if rank == 0:
        torch.save(scheduler.state_dict(), path / SCHEDULER_FILE)
    rng = {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "python": random.getstate(),
        "numpy": np.random.get_state(),
    }
    with open(path / f"random_states_{rank}.pkl", "wb") as f:
        pickle.dump(rng, f)


def load_sharded(
    path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any
) -> None:
    """Load a sharded checkpoint written by any number of ranks (DCP reshards on load); a rank
    that did not exist when it was written keeps its own RNG states."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    model_sd, optim_sd = get_state_dict(model, optimizer)
    state = {"model": model_sd, "optimizer": optim_sd}
    dcp.load(state, checkpoint_id=str(path / SHARDED_DIR))
    set_state_dict(
        model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optimizer"]
    )
    scheduler.load_state_dict(torch.load(path / SCHEDULER_FILE, weights_only=False))
    rng_file = path / f"random_states_{dist.get_rank()}.pkl"
    if rng_file.exists():
        with open(rng_file, "rb") as f:
            rng = pickle.load(f)  # noqa: S301 — written by this run's own ranks
        torch.set_rng_state(rng["torch"])
        if rng["cuda"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        random.setstate(rng["python"])
        np.random.set_state(rng["numpy"])


def consolidated(model: torch.nn.Module) -> torch.nn.Module | None:
    """The whole model, unsharded on CPU, on rank 0 (None on the other ranks); every rank must
    call it (the shards are gathered)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
    from torch.distributed.fsdp import FSDPModule

    full = get_model_state_dict(
        model, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
    )
    if dist.get_rank() != 0:
        return None
    # fully_shard swapped the model's class for an FSDP subclass; save_pretrained would record
    # that name as the architecture. A plain instance takes the gathered tensors instead.
    cls = next(c for c in type(model).__mro__ if not issubclass(c, FSDPModule))
    with torch.device("meta"):
        plain = cls(model.config)
    plain.load_state_dict(full, assign=True)
    if hasattr(plain, "tie_weights"):
        plain.tie_weights()
    return plain


def peak_memory_mb(device: torch.device) -> float:
    """This process's peak memory in MiB: allocated on its GPU, else its maximum RSS."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10


def zero_stage(cfg: Any) -> int:
    """The ZeRO stage of a deepspeed run (2 unless the config names one)."""
    return int(cfg.zero_stage or 2)


def deepspeed_plugin(cfg: Any) -> Any:
    """accelerate's DeepSpeedPlugin for strategy deepspeed: ZeRO at the run's stage, no offload.

    The optimizer is the trainer's own torch AdamW (no DeepSpeed optimizer, so no compiled
    cpu_adam) and the learning-rate schedule stays the trainer's. Batch size, gradient
    accumulation and clipping come from the run's config; at stage 3 the final save gathers the
    whole weights on rank 0.
    """
    from accelerate.utils import DeepSpeedPlugin

    stage = zero_stage(cfg)
    config = {
        "train_micro_batch_size_per_gpu": cfg.batch_size,
        "gradient_accumulation_steps": cfg.gradient_accumulation_steps,
        "gradient_clipping": float(cfg.max_grad_norm),  # 0: none
        "zero_optimization": {"stage": stage}
        | ({"stage3_gather_16bit_weights_on_model_save": True} if stage == 3 else {}),
        "zero_allow_untested_optimizer": False,
        "steps_per_print": 2**31 - 1,  # the trainer logs its own metrics
        "wall_clock_breakdown": False,
    }
    return DeepSpeedPlugin(hf_ds_config=config)


def gathered(value: float) -> list[float]:
    """`value` of every rank, in rank order (collective when there are several ranks)."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return [value]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, value)
    return [float(v) for v in out]


def local_processes() -> int:
    """Processes the launcher started on this machine."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1")))


def die_with_launcher() -> None:
    """Under torchrun, die (SIGKILL) when the launcher does (Linux).

    torchrun starts each rank in a session of its own, so a kill of the launcher's process
    group (the worker's last resort) does not reach the ranks; without this they would train
    on, orphaned, until the fence stops them. A SIGTERM to the launcher is different: torchrun
    passes it on to every rank and waits for them (their checkpoint after the step).
    """
    if "TORCHELASTIC_RUN_ID" not in os.environ or not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    launcher = os.getppid()
    ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    if os.getppid() != launcher:  # it died before the call
        os.kill(os.getpid(), signal.SIGKILL)


def leave() -> None:
    """After a run that ended on every rank (finished or preempted): wait for the others, then
    take the process group down, so no rank exits while another is still in a collective or
    writing, and none tears the group down at interpreter exit."""
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
