"""The worker runs real tiny trainings end to end, and survives what goes wrong."""

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from app.datasets import service as datasets_service
from app.db import get_sessionmaker
from app.runs import registry, service, worker_steps
from app.runs.models import RunMetric, TrainingRun
from app.runs.worker import Worker
from tests.trainer.trainer_testdata import RAY_ENV, children, local_ray_cluster

FAST = {"batch_size": 4, "eval_batch_size": 8, "max_length": 64, "learning_rate": 0.002}


def _queue(session, snapshot, model, kind="sft", **config) -> TrainingRun:  # type: ignore[no-untyped-def]
    run = service.create_run(
        session=session,
        kind=kind,
        snapshot_id=snapshot.id,
        model=str(model),
        config=FAST | config,
    )
    session.commit()
    return run


def _reload(run_id: int) -> TrainingRun:
    with get_sessionmaker()() as s:
        run = s.get(TrainingRun, run_id)
        s.expunge(run)
        return run


def _steps(run_id: int) -> list[int]:
    with get_sessionmaker()() as s:
        return list(
            s.scalars(
                select(RunMetric.step).where(RunMetric.run_id == run_id).order_by(RunMetric.step)
            )
        )


def _wait(condition, timeout: float = 120.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def _in_thread(worker: Worker) -> threading.Thread:
    thread = threading.Thread(target=worker.run_once, daemon=True)
    thread.start()
    return thread


def test_worker_trains_sft_and_reward_model_and_registers_them(
    session, sft_snapshot, rankings_snapshot, tiny_models
) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    sft = _queue(session, sft_snapshot, tiny_models["causal-lm"], max_steps=6)
    rm = _queue(session, rankings_snapshot, tiny_models["encoder"], kind="rm", max_steps=6)
    worker = Worker(poll_seconds=0.2, heartbeat_seconds=0.5)
    assert [worker.run_once(), worker.run_once(), worker.run_once()] == [sft.id, rm.id, None]

    for run, auto, kind in (
        (sft, AutoModelForCausalLM, "policy"),
        (rm, AutoModelForSequenceClassification, "reward"),
    ):
        done = _reload(run.id)
        assert done.status == "succeeded", done.error
        assert done.attempt == 1 and done.exit_code == 0
        assert _steps(run.id) == list(range(1, 7))
        model = registry.get_model(session=session, model_id=done.output_model_id)
        assert model.kind == kind and model.run_id == run.id
        assert (
            model.snapshot_content_hash
            == (sft_snapshot if run is sft else rankings_snapshot).content_hash
        )
        assert model.base_model == str(tiny_models["causal-lm" if run is sft else "encoder"])
        # the registered output loads back and is the trained model, not the base one
        trained, base = auto.from_pretrained(model.path), auto.from_pretrained(model.base_model)
        moved = [
            not torch.equal(p, q)
            for p, q in zip(trained.parameters(), base.parameters(), strict=True)
        ]
        assert any(moved)
        # the snapshot's files were frozen into the run directory
        snapshot = sft_snapshot if run is sft else rankings_snapshot
        source = datasets_service.snapshot_files(snapshot=snapshot)["train.jsonl"]
        frozen = Path(done.run_dir) / "data" / "train.jsonl"
        assert frozen.read_bytes() == source.read_bytes() and frozen.stat().st_size > 0
    rm_model = registry.get_model(session=session, model_id=_reload(rm.id).output_model_id)
    assert "accuracy" in " ".join(rm_model.metrics)


def test_a_killed_trainer_on_its_last_attempt_fails_the_run_with_its_log(
    session, sft_snapshot, tiny_models
) -> None:
    run = _queue(session, sft_snapshot, tiny_models["causal-lm"], max_steps=100_000)
    run.max_attempts = 1
    session.commit()
    worker = Worker(poll_seconds=0.2, heartbeat_seconds=0.5)
    thread = _in_thread(worker)
    _wait(lambda: _steps(run.id))
    os.kill(worker.process.pid, signal.SIGKILL)  # what the OOM killer does
    thread.join(timeout=60)
    failed = _reload(run.id)
    assert failed.status == "failed" and failed.exit_code == -signal.SIGKILL
    assert "killed by signal 9 SIGKILL (out of memory?)" in failed.error
    assert "no retries left" in failed.error
    assert re.search(r"step \d+: loss=", failed.error)  # the log tail came along
    assert worker.run_once() is None  # and the worker still works


def test_cancel_stops_a_running_trainer_which_keeps_a_checkpoint(
    session, sft_snapshot, tiny_models
) -> None:
    run = _queue(
        session, sft_snapshot, tiny_models["causal-lm"], max_steps=100_000, save_every=100_000
    )
    worker = Worker(poll_seconds=0.2, heartbeat_seconds=0.5)
    thread = _in_thread(worker)
    _wait(lambda: _steps(run.id))
    service.cancel_run(session=session, run=run)
    session.commit()
    thread.join(timeout=120)
    cancelled = _reload(run.id)
    assert cancelled.status == "cancelled" and cancelled.exit_code == 75
    assert list((Path(cancelled.run_dir) / "output" / "checkpoints").iterdir())


def test_a_dead_worker_run_is_requeued_and_resumes_from_its_checkpoint(
    session, sft_snapshot, tiny_models, artifacts
) -> None:
    run = _queue(
        session,
        sft_snapshot,
        tiny_models["causal-lm"],
        max_steps=200,
        save_every=5,
        learning_rate=0.0005,
    )
    log_path = artifacts.parent / "worker.log"
    with open(log_path, "w") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "app", "worker", "--poll", "0.2"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    checkpoints = artifacts / "runs" / str(run.id) / "output" / "checkpoints"
    try:
        _wait(
            lambda: any(checkpoints.glob("*/trainer_state.json")) and _steps(run.id),
            timeout=60,
        )
    except AssertionError:
        raise AssertionError(log_path.read_text()[-3000:]) from None
    # the machine dies: the worker and its trainer vanish without a word
    worker.kill()
    subprocess.run(["pkill", "-9", "-f", str(artifacts / "runs" / str(run.id))], check=False)
    worker.wait()
    interrupted = _steps(run.id)
    assert _reload(run.id).status == "running" and max(interrupted) < 200

    time.sleep(3.5)  # RLHF_RUN_STALE_SECONDS=3: the heartbeat goes stale
    worker = Worker(poll_seconds=0.2)
    _wait(lambda: worker.run_once() == run.id, timeout=30)  # retried after a short backoff
    resumed = _reload(run.id)
    assert resumed.status == "succeeded", resumed.error
    assert resumed.attempt == 2
    assert _steps(run.id) == list(range(1, 201))
    log = (artifacts / "runs" / str(run.id) / "train.log").read_text()
    assert "--- attempt 2" in log and "resumed from" in log


def test_concurrent_workers_never_claim_the_same_run(session, sft_snapshot, policy_dir) -> None:
    runs = [_queue(session, sft_snapshot, policy_dir) for _ in range(12)]
    claimed: list[int] = []
    barrier = threading.Barrier(6)

    def claim(name: str) -> None:
        barrier.wait()
        with get_sessionmaker()() as s:
            while (run := worker_steps.claim_next(session=s, worker=name)) is not None:
                claimed.append(run.id)

    threads = [threading.Thread(target=claim, args=(f"w{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(claimed) == sorted(r.id for r in runs)


def test_worker_runs_ppo_with_a_registered_reward_model_and_dpo_on_pairs(
    session, factory, tmp_path, artifacts, tiny_models
) -> None:
    from app.datasets.schemas import SnapshotCreate
    from tests.runs.conftest import label_all

    project = factory.project(kind="ranking", k=2)
    factory.items(
        project,
        [
            {"id": f"q{i}", "prompt": f"question {i}", "responses": [f"good {i}", f"bad {i}"]}
            for i in range(12)
        ],
        tmp_path,
    )
    label_all(
        session,
        project,
        factory.user(),
        lambda t: {"ranking": [r.id for r in sorted(t.responses, key=lambda r: "bad" in r.text)]},
    )
    prompts, _ = datasets_service.create_snapshot(
        session=session, project=project, data=SnapshotCreate(kind="prompts", split=1.0)
    )
    pairs, _ = datasets_service.create_snapshot(
        session=session, project=project, data=SnapshotCreate(kind="pairs", split=1.0)
    )
    reward = registry.register_model(
        session=session, name="rm", kind="reward", path=str(tiny_models["encoder"])
    )
    session.commit()
    ppo = service.create_run(
        session=session,
        kind="ppo",
        snapshot_id=prompts.id,
        model=str(tiny_models["causal-lm"]),
        reward_model="rm",
        config={"max_steps": 2, "batch_size": 4, "mini_batch_size": 2},
    )
    dpo = _queue(session, pairs, tiny_models["causal-lm"], kind="dpo", max_steps=2)
    session.commit()
    worker = Worker(poll_seconds=0.2, heartbeat_seconds=0.5)
    assert [worker.run_once(), worker.run_once()] == [ppo.id, dpo.id]
    for run, metric in ((ppo, "kl"), (dpo, "reward_margin")):
        done = _reload(run.id)
        assert done.status == "succeeded", done.error
        assert done.kind != "ppo" or done.reward_model_id == reward.id
        with get_sessionmaker()() as s:
            last = s.scalars(
                select(RunMetric).where(RunMetric.run_id == run.id).order_by(RunMetric.step.desc())
            ).first()
        assert metric in last.values
        assert registry.get_model(session=session, model_id=done.output_model_id).kind == "policy"


def test_a_run_of_two_processes_launches_through_torchrun_with_its_launch_config(
    session, sft_snapshot, tiny_models, monkeypatch
) -> None:
    import json

    # The ranks import this checkout's trainer, whichever one the environment installed.
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[2]))
    run = _queue(
        session,
        sft_snapshot,
        tiny_models["causal-lm"],
        max_steps=3,
        batch_size=2,
        strategy="fsdp",
        processes=2,
    )
    worker = Worker(poll_seconds=0.2, heartbeat_seconds=0.5)
    assert worker._command(run, Path("/r"))[1:3] == ["-m", "torch.distributed.run"]
    assert worker.run_once() == run.id
    done = _reload(run.id)
    assert done.status == "succeeded", done.error
    assert done.run_dir and done.output_model_id
    assert _steps(run.id) == [1, 2, 3]
    run_dir = Path(done.run_dir)
    plan = json.loads((run_dir / "launch.json").read_text())
    assert plan | {"accelerate_config": None} == {
        "strategy": "fsdp",
        "processes": 2,
        "machines": 1,
        "world_size": 2,
        "accelerate_config": None,
    }
    yaml = (run_dir / plan["accelerate_config"]).read_text()
    assert "num_processes: 2" in yaml and "num_machines: 1" in yaml
    model = registry.get_model(session=session, model_id=done.output_model_id)
    assert model.metrics["strategy"] == "fsdp" and model.metrics["world_size"] == 2
    assert len(model.metrics["peak_memory_mb"]) == 2


def test_with_a_ray_cluster_set_a_run_trains_there_and_comes_back_as_a_local_one(
    session, sft_snapshot, tiny_models, monkeypatch
) -> None:
    """RLHF_RAY_ADDRESS: the worker's trainer is the Ray driver; the metrics, the log and the
    model arrive as from torchrun (the cluster shares this machine's filesystem)."""
    pytest.importorskip("ray.train.torch", reason="ray[train] is not installed (the ray extra)")
    from app.config import get_settings
    from app.runs.run_config import check_config

    root = Path(__file__).resolve().parents[2]
    monkeypatch.setenv("PYTHONPATH", str(root))
    for key, value in RAY_ENV.items():
        monkeypatch.setenv(key, value)
    run = _queue(session, sft_snapshot, tiny_models["causal-lm"], max_steps=3, processes=2)
    with local_ray_cluster(root) as address:
        monkeypatch.setenv("RLHF_RAY_ADDRESS", address)
        get_settings.cache_clear()
        assert check_config("sft", {"machines": 2}) == {"machines": 2}  # Ray places them
        worker = Worker(poll_seconds=0.2, heartbeat_seconds=0.5)
        assert worker._command(run, Path("/r"))[1:4] == ["-m", "trainer.ray_cluster", "sft"]
        assert worker.run_once() == run.id
    get_settings.cache_clear()
    done = _reload(run.id)
    assert done.status == "succeeded", done.error
    assert _steps(run.id) == [1, 2, 3]
    model = registry.get_model(session=session, model_id=done.output_model_id)
    assert model.kind == "policy" and model.metrics["world_size"] == 2
    log = (Path(done.run_dir) / "train.log").read_text()
    assert "(RayTrainWorker pid=" in log and "ray worker rank 1" in log


def test_cancel_stops_every_rank_of_a_sharded_run_with_a_checkpoint(
    session, sft_snapshot, tiny_models, monkeypatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[2]))
    run = _queue(
        session,
        sft_snapshot,
        tiny_models["causal-lm"],
        max_steps=100_000,
        save_every=100_000,
        batch_size=2,
        strategy="fsdp",
        processes=2,
    )
    worker = Worker(poll_seconds=0.2, heartbeat_seconds=0.5)
    thread = _in_thread(worker)
    _wait(lambda: _steps(run.id))
    assert worker.process is not None
    launcher = worker.process.pid
    ranks = children(launcher)  # torchrun starts each rank in a session of its own
    assert len(ranks) == 2, ranks
    service.cancel_run(session=session, run=run)
    session.commit()
    thread.join(timeout=120)
    cancelled = _reload(run.id)
    assert cancelled.status == "cancelled" and cancelled.exit_code == 75  # torchrun exits 1
    assert cancelled.run_dir
    checkpoints = list((Path(cancelled.run_dir) / "output" / "checkpoints").iterdir())
    assert len(checkpoints) == 1
    assert len(list((checkpoints[0] / "state" / "sharded").glob("*.distcp"))) == 2
    assert not [
        rank for rank in ranks if rank in children(launcher) or Path(f"/proc/{rank}").exists()
    ]


def test_a_launchers_exit_after_a_checkpointed_stop_reads_as_preempted(tmp_path) -> None:
    """accelerate exits 1 when its ranks stopped on SIGTERM with 75: the trainer's marker for
    this attempt turns it back into 75 (requeue); an older attempt's marker or none does not."""
    from types import SimpleNamespace

    from app.runs.worker import _launcher_code
    from trainer import EXIT_PREEMPTED, PREEMPTED_FILE

    run = SimpleNamespace(attempt=3)
    (tmp_path / "output").mkdir()
    assert _launcher_code(1, run, tmp_path) == 1  # no marker: a failure stays a failure
    (tmp_path / "output" / PREEMPTED_FILE).write_text("2")
    assert _launcher_code(1, run, tmp_path) == 1  # an older attempt's stop
    (tmp_path / "output" / PREEMPTED_FILE).write_text("3")
    assert _launcher_code(1, run, tmp_path) == EXIT_PREEMPTED
    assert _launcher_code(0, run, tmp_path) == 0  # a finished run is never turned back
