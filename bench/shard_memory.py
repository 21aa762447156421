"""Peak memory per rank: SFT of a ~150M-parameter random Llama on 2 CPU processes, fsdp vs ddp.

Each layout is started as the worker starts a run (`trainer.launch.command`: `torchrun` for
2 processes, `python -m trainer` for 1) with a config file of default settings except the
model, the data, the steps, the batch and the distribution. Figures per layout:

- peak RSS of each rank, as the trainer records it (`peak_memory_mb` in summary.json, taken
  before the final model is gathered and saved) and as seen from outside (the largest VmHWM
  of each rank process, polled from /proc until it exits: includes the final save);
- the final step's loss and the held-out loss (fsdp must learn what ddp learns on the same
  global batch), and the largest weight difference of the saved models against ddp's;
- seconds per step (the mean of the steps after the first).

The 1-process baseline trains the same global batch (2 × batch_size) for reference.

`--malloc-mmap-threshold N` starts every layout with glibc's MALLOC_MMAP_THRESHOLD_=N (a fixed
threshold: blocks of N bytes and more are mmapped and go back to the system when freed), which
a CPU fsdp rank keeps instead of its own default of 64 KiB (`fix_mmap_threshold`); results in
shard_memory_mmapN.json. The verdict on the defaults is the one that counts.

    .venv/bin/python bench/shard_memory.py
    .venv/bin/python bench/shard_memory.py --layers 2 --steps 2      # a quick smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import metrics_rows, save, sentence, table, write_jsonl  # noqa: E402
from trainer import launch  # noqa: E402

TARGET = 0.65
"""fsdp's peak RSS per rank must be at most this share of ddp's (issue 30)."""


def build_model(path: Path, args: argparse.Namespace) -> int:
    """A random Llama of the asked shape plus the tiny BPE tokenizer; its parameter count."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from trainer.tiny import SEED, build_tokenizer

    build_tokenizer(path)
    tok = PreTrainedTokenizerFast.from_pretrained(path)
    torch.manual_seed(SEED)
    config = LlamaConfig(
        vocab_size=args.vocab,  # larger than the tokenizer's: rows it never emits stay unused
        hidden_size=args.hidden,
        intermediate_size=args.intermediate,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        num_key_value_heads=args.heads,
        max_position_embeddings=512,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)
    model.save_pretrained(path)
    return sum(p.numel() for p in model.parameters())


def records(n: int, seed: int) -> list[dict]:
    """Conversational prompt/completion pairs of ~20 and ~30 words."""
    r = random.Random(seed)
    return [
        {
            "prompt": [{"role": "user", "content": sentence(r, 20)}],
            "completion": [{"role": "assistant", "content": sentence(r, 30)}],
        }
        for _ in range(n)
    ]


def rank_processes(launcher: psutil.Process, processes: int) -> list[psutil.Process]:
    """The trainer processes: the launcher's children under torchrun, else the launcher."""
    if processes == 1:
        return [launcher]
    try:
        kids = launcher.children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    return [p for p in kids if "trainer" in " ".join(_cmdline(p))]


def _cmdline(p: psutil.Process) -> list[str]:
    try:
        return p.cmdline()
    except psutil.Error:
        return []


def vm_hwm_mb(pid: int) -> float | None:
    """A process's peak RSS so far (VmHWM) in MiB, or None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def run_layout(name: str, cfg: dict, processes: int, work: Path, env: dict[str, str]) -> dict:
    """Train one layout as the worker would; its figures."""
    out = work / name
    out.mkdir(parents=True)
    config = out.parent / f"{name}.json"
    config.write_text(json.dumps(cfg | {"output_dir": str(out)}))
    cmd = launch.command("sft", config, processes)
    log = (work / f"{name}.log").open("w")
    env = os.environ | {"PYTHONPATH": str(ROOT)} | env
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    launcher = psutil.Process(proc.pid)
    hwm: dict[int, float] = {}  # pid → VmHWM, in the order the ranks appear
    while proc.poll() is None:
        for p in rank_processes(launcher, processes):
            mb = vm_hwm_mb(p.pid)
            if mb is not None:
                hwm[p.pid] = max(hwm.get(p.pid, 0.0), mb)
        time.sleep(0.1)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"{name} failed ({proc.returncode}); see {work / (name + '.log')}")
    summary = json.loads((out / "summary.json").read_text())
    rows = metrics_rows(out)
    per_step = cfg["batch_size"] * processes
    step_s = [per_step / r["samples_per_s"] for r in rows]
    later = step_s[1:] or step_s
    peaks = summary["peak_memory_mb"]
    return {
        "layout": name,
        "strategy": summary["strategy"],
        "world_size": summary["world_size"],
        "peak_rss_mb": peaks,
        "peak_rss_max_mb": max(peaks),
        "vm_hwm_mb": [round(v, 1) for v in hwm.values()],
        "vm_hwm_max_mb": round(max(hwm.values()), 1) if hwm else None,
        "final_loss": rows[-1]["loss"],
        "eval_loss": summary.get("eval_loss"),
        "s_per_step": sum(later) / len(later),
        "wall_s": wall,
        "out": str(out),
    }


def max_weight_diff(a: str, b: str) -> float:
    """Largest absolute difference between two saved models' tensors."""
    from safetensors.torch import load_file

    wa, wb = load_file(Path(a) / "model.safetensors"), load_file(Path(b) / "model.safetensors")
    return max(float((wa[k] - wb[k]).abs().max()) for k in wa)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--hidden", type=int, default=768)
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--heads", type=int, default=12)
    p.add_argument("--intermediate", type=int, default=2560)
    p.add_argument("--vocab", type=int, default=32000)
    p.add_argument("--examples", type=int, default=64)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=2, help="per rank")
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--no-baseline", action="store_true", help="skip the 1-process run")
    p.add_argument(
        "--malloc-mmap-threshold", type=int, default=0, help="glibc's, in bytes (0: unset)"
    )
    args = p.parse_args()
    env = {}
    if args.malloc_mmap_threshold:
        env["MALLOC_MMAP_THRESHOLD_"] = str(args.malloc_mmap_threshold)

    work = Path(tempfile.mkdtemp(prefix="bench-shard-"))
    n_params = build_model(work / "model", args)
    print(f"model: random Llama, {n_params / 1e6:.1f}M parameters ({work / 'model'})")
    data = write_jsonl(work / "sft.jsonl", records(args.examples, seed=0))
    base = {
        "model": str(work / "model"),
        "train_file": data,
        "max_steps": args.steps,
        "max_length": args.max_length,
        "learning_rate": 1e-4,
    }
    layouts = [
        ("ddp-2", base | {"batch_size": args.batch_size, "processes": 2}, 2),
        ("fsdp-2", base | {"batch_size": args.batch_size, "processes": 2, "strategy": "fsdp"}, 2),
    ]
    if not args.no_baseline:  # the same global batch in one process
        layouts.insert(0, ("one-1", base | {"batch_size": 2 * args.batch_size}, 1))
    results = []
    for name, cfg, processes in layouts:
        results.append(run_layout(name, cfg, processes, work, env))
        print(f"{name}: done in {results[-1]['wall_s']:.0f} s", flush=True)
    ddp = next(r for r in results if r["layout"] == "ddp-2")
    fsdp = next(r for r in results if r["layout"] == "fsdp-2")
    for r in results:
        r["rss_vs_ddp"] = r["peak_rss_max_mb"] / ddp["peak_rss_max_mb"]
        r["hwm_vs_ddp"] = (r["vm_hwm_max_mb"] or 0) / (ddp["vm_hwm_max_mb"] or 1)
        r["weights_vs_ddp"] = max_weight_diff(r["out"], ddp["out"])
    cols = [
        "layout",
        "peak_rss_mb",
        "rss_vs_ddp",
        "vm_hwm_mb",
        "hwm_vs_ddp",
        "final_loss",
        "eval_loss",
        "weights_vs_ddp",
        "s_per_step",
    ]
    print(table(results, cols))
    ratio = fsdp["rss_vs_ddp"]
    verdict = "met" if ratio <= TARGET else "MISSED"
    setting = f" (with {env})" if env else ""
    print(
        f"fsdp/ddp peak RSS per rank (max over ranks){setting}: {ratio:.3f}"
        f" — target ≤ {TARGET}: {verdict}"
    )
    print(f"final loss ddp {ddp['final_loss']:.5g}, fsdp {fsdp['final_loss']:.5g}")
    name = "shard_memory" + (f"_mmap{args.malloc_mmap_threshold}" if env else "")
    path = save(
        name,
        {
            "date": time.strftime("%Y-%m-%d"),
            "parameters": n_params,
            "args": vars(args),
            "env": env,
            "target": TARGET,
            "fsdp_vs_ddp": ratio,
            "met": ratio <= TARGET,
            "results": results,
        },
    )
    print(f"results: {path}")
    print(f"load average at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
