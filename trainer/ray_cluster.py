"""A training run on an existing Ray cluster: `python -m trainer.ray_cluster KIND --config
config.json --address HOST:PORT`.

This process is the Ray driver, and the launcher the worker starts in place of torchrun: it
connects to the cluster, starts a Ray Train `TorchTrainer` of processes × machines workers (the
run's config is the one source of the distribution; Ray only places the processes) and waits.
Ray Train sets up the torch process group (gloo on CPU, nccl on GPU) and the torchrun
environment (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT) in each
worker, which then runs the trainer's own entry point (`trainer.__main__.main`) as a torchrun
rank does: accelerate and the fsdp code find the process group already there.

Files: every worker reads the run's config, data and model from the paths the config names, and
rank 0 writes metrics.jsonl, checkpoints, the final model and summary.json into output_dir,
as under torchrun; the worker that started this run tails and registers them from there. So on
a cluster of several machines the run directory must be on storage every node mounts at the
same path (an NFS or similar mount). Streaming only the metrics back would not be enough: the
checkpoints that a retry resumes from, every rank's shards under fsdp and the final model must
land where the worker and the next attempt find them. A worker that cannot see the config file
fails at start with that cause. The log comes back through Ray: each worker's stdout and stderr
are forwarded to this driver's, which is the run's train.log.

Stopping: SIGTERM (the worker's cancel, a stopping worker) sets a flag in a small actor that
every rank polls; each rank then asks its trainer to stop (`runtime.request_stop`: the trainer
runs off the main thread in a Ray worker, so no signal handler of its own), and all stop after
the same step with a checkpoint; the driver exits with the trainer's code (75). A run still
going STOP_GRACE_SECONDS later is abandoned: the driver exits and Ray kills the actors it owns
(the controller, the workers, the flag) with it, as it does when the driver is killed outright.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from trainer import ATTEMPT_ENV, EXIT_UNAVAILABLE, SUPERVISOR_ENV, launch
from trainer.reporting import log

STOP_GRACE_SECONDS = 30.0
"""How long the ranks get to checkpoint after a stop (as torchrun gives them)."""
POLL_SECONDS = 0.5
PASSED_ENV = (ATTEMPT_ENV, SUPERVISOR_ENV, "PYTHONUNBUFFERED")
"""The driver's environment the workers get (the fence's attempt and supervisor lock)."""
EXIT_LAUNCH_FAILED = 1


class ClusterTooSmall(RuntimeError):
    """The cluster cannot hold the run's processes (it would wait for them forever); the driver
    exits EXIT_UNAVAILABLE with the cause."""


def scaling(config: dict[str, Any], resources: dict[str, float]) -> tuple[int, bool]:
    """(workers, use_gpu) for a run config on a cluster with `resources` (ray.cluster_resources).

    One worker per process of the run (processes × machines). A cluster with GPUs gives each
    worker one (nccl), as torchrun gives each rank one; a cluster without any trains on CPU
    workers over gloo.
    """
    workers = int(launch.plan(config)["world_size"])
    gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 0))
    if gpus and gpus < workers:
        raise ClusterTooSmall(
            f"the run needs {workers} processes, one per GPU, and the Ray cluster has {gpus} GPUs"
        )
    if cpus < workers:
        raise ClusterTooSmall(
            f"the run needs {workers} processes, one CPU each, and the Ray cluster has {cpus} CPUs"
        )
    return workers, gpus > 0


class Control:
    """The driver's flag and the trainer's exit code, shared with the workers (a Ray actor)."""

    def __init__(self) -> None:
        self._stop = False
        self._code: int | None = None

    def stop(self) -> None:
        self._stop = True

    def stopped(self) -> bool:
        return self._stop

    def ended(self, code: int) -> None:
        self._code = code

    def code(self) -> int | None:
        return self._code


def train_per_worker(args: dict[str, Any]) -> None:
    """One Ray Train worker: the trainer's entry point, as one torchrun rank runs it."""
    import ray
    import ray.train

    from trainer import runtime
    from trainer.__main__ import main

    rank = ray.train.get_context().get_world_rank()
    log(f"ray worker rank {rank}: pid {os.getpid()} on {socket.gethostname()}")
    config = Path(args["config"])
    if not config.is_file():
        raise FileNotFoundError(
            f"{config} is not visible on {socket.gethostname()}: a Ray cluster of several "
            "machines needs the run directory on storage every node mounts at the same path"
        )
    control = args["control"]
    done = threading.Event()

    def watch() -> None:
        while not done.wait(POLL_SECONDS):
            try:
                if ray.get(control.stopped.remote(), timeout=10):
                    runtime.request_stop()
                    return
            except Exception:  # noqa: BLE001, S112 — the driver gone: Ray ends this worker
                continue

    threading.Thread(target=watch, name="ray-stop", daemon=True).start()
    try:
        code = main([args["kind"], "--config", str(config)])
    finally:
        done.set()
    if rank == 0:
        ray.get(control.ended.remote(code))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m trainer.ray_cluster", description=__doc__)
    p.add_argument("kind", choices=["sft", "rm", "ppo", "dpo"])
    p.add_argument("--config", required=True, help="the run's config file (output_dir in it)")
    p.add_argument("--address", required=True, help="the Ray cluster (ray.init's address)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the trainer on the cluster; the trainer's exit code (75 after a stop)."""
    args = parse_args(argv)
    config_path = Path(args.config).resolve()
    config = json.loads(config_path.read_text())
    # Every worker's line as it came (no "[repeated 2x]" folding, no colour codes in the log).
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ.setdefault("RAY_COLOR_PREFIX", "0")
    import ray
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    env = {k: os.environ[k] for k in PASSED_ENV if k in os.environ}
    env["RAY_TRAIN_ENABLE_PRINT_PATCH"] = "0"  # print as it is: Ray's patch logs each line twice
    ray.init(address=args.address, runtime_env={"env_vars": env}, log_to_driver=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())  # after ray.init, which sets its own
    try:
        workers, use_gpu = scaling(config, ray.cluster_resources())
    except ClusterTooSmall as e:  # the cluster may grow: a retry can get further
        print(f"error: {e}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    log(f"ray: {workers} workers ({'GPU' if use_gpu else 'CPU'}) on {args.address}")
    control: Any = ray.remote(num_cpus=0)(Control).remote()  # an actor handle
    per_worker = {"CPU": 1, "GPU": 1} if use_gpu else {"CPU": 1}
    trainer = TorchTrainer(
        train_per_worker,
        train_loop_config={"kind": args.kind, "config": str(config_path), "control": control},
        scaling_config=ScalingConfig(
            num_workers=workers, use_gpu=use_gpu, resources_per_worker=per_worker
        ),
        run_config=RunConfig(
            name="ray",
            # Ray Train's own records; nothing the trainer writes goes there.
            storage_path=str(Path(config["output_dir"]).resolve().parent),
            failure_config=FailureConfig(max_failures=0),  # the worker decides on retries
        ),
    )
    failed: list[BaseException] = []

    def fit() -> None:
        try:
            trainer.fit()
        except BaseException as e:  # noqa: BLE001 — reported by the main thread
            failed.append(e)

    fitting = threading.Thread(target=fit, name="ray-fit", daemon=True)
    fitting.start()
    deadline: float | None = None
    while fitting.is_alive():
        fitting.join(POLL_SECONDS)
        if stop.is_set() and deadline is None:
            log("SIGTERM received: asking every Ray worker to stop after this step")
            control.stop.remote()
            deadline = time.monotonic() + STOP_GRACE_SECONDS
        if deadline is not None and time.monotonic() > deadline:
            log(f"the Ray workers did not stop within {STOP_GRACE_SECONDS:g} s: abandoning them")
            sys.stderr.flush()
            os._exit(EXIT_LAUNCH_FAILED)  # Ray kills the actors this driver owns
    if failed:
        traceback.print_exception(failed[0])
        return EXIT_LAUNCH_FAILED
    code = ray.get(control.code.remote())
    return EXIT_LAUNCH_FAILED if code is None else int(code)


if __name__ == "__main__":
    sys.exit(main())
