"""Small synthetic data files for the trainer tests."""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

WORDS = str.split("the cat dog good bad answer question hello world yes no tree river")
MARKER = "python"


def write_jsonl(path: Path, records: list[dict]) -> str:
    """Write records one per line; return the path as a string."""
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def sentence(r: random.Random, n: int) -> str:
    return " ".join(r.choice(WORDS) for _ in range(n))


def sft_records(n: int, seed: int = 0) -> list[dict]:
    """Prompt/completion and conversation records whose completions are easy to learn."""
    r = random.Random(seed)
    out = []
    for i in range(n):
        p = sentence(r, 5)
        if i % 4 == 0:
            out.append(
                {
                    "messages": [
                        {"role": "user", "content": p},
                        {"role": "assistant", "content": "hello world"},
                    ]
                }
            )
        else:
            out.append({"prompt": p, "completion": "yes " + p.split()[0]})
    return out


def ranking_records(n: int, k: int, seed: int = 0) -> list[dict]:
    """Rankings where a response with more marker words is better (best first)."""
    r = random.Random(seed)
    out = []
    for _ in range(n):
        responses = []
        for rank in range(k):
            words = [r.choice(WORDS) for _ in range(6)]
            for _ in range(k - 1 - rank):
                words.insert(r.randrange(len(words) + 1), MARKER)
            responses.append(" ".join(words))
        out.append({"prompt": sentence(r, 4), "responses": responses})
    return out


def pair_records(n: int, seed: int = 0) -> list[dict]:
    """Pairs where the chosen response starts with the marker word."""
    r = random.Random(seed)
    return [
        {
            "prompt": sentence(r, 4),
            "chosen": f"{MARKER} {sentence(r, 4)}",
            "rejected": sentence(r, 5),
        }
        for _ in range(n)
    ]


def read_metrics(out: str | Path) -> list[dict]:
    """Rows of metrics.jsonl."""
    return [json.loads(line) for line in (Path(out) / "metrics.jsonl").read_text().splitlines()]


def _live(field: int, value: int) -> list[int]:
    """Live (not zombie) processes whose /proc stat field after the name (1: parent, 2: process
    group) is `value` (Linux)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[field]) == value:
            found.append(int(proc.name))
    return found


def children(pid: int) -> list[int]:
    """Live processes whose parent is `pid` (a launcher's ranks, whatever session they are in)."""
    return _live(1, pid)


def group(pgid: int) -> list[int]:
    """Live processes of a process group."""
    return _live(2, pgid)


_RAY_CLUSTER = """
import sys, ray
ray.init(num_cpus=2, include_dashboard=False, _temp_dir=sys.argv[1])
print(ray.get_runtime_context().gcs_address, flush=True)
sys.stdin.read()  # until the test closes it
ray.shutdown()
"""
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
"""For a test cluster and its drivers: no usage report, no token file in the home directory."""


@contextlib.contextmanager
def local_ray_cluster(root: Path) -> Iterator[str]:
    """The address of a local Ray cluster of 2 CPUs (`ray.init(num_cpus=2)` in a process of its
    own) whose workers import the checkout at `root`; it ends with the block."""
    temp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))  # Ray's socket paths must be short
    env = os.environ | RAY_ENV | {"PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    with (temp / "cluster.log").open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", _RAY_CLUSTER, str(temp)],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            cwd=root,
        )
    assert proc.stdout is not None and proc.stdin is not None
    try:
        address = proc.stdout.readline().strip()
        assert address, (temp / "cluster.log").read_text()[-3000:]
        yield address
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(temp, ignore_errors=True)
