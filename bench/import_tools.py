"""Importing another tool's export with its labels, as a user meets it: `rlhf import` of a Label
Studio JSON export run as a subprocess, on PostgreSQL (and SQLite if asked).

1. A Label Studio export: --tasks pairwise tasks (prompt, answer1, answer2), each with
   --annotations annotations by 30 annotators (`completed_by`, `lead_time`, `created_at`), one in
   20 cancelled; one JSON array, written streaming.
2. `rlhf import` of it (timed): prompts, responses, source annotators, assignments and labels.
3. `rlhf import` of it again (timed): it must add nothing.

Prints tasks, labels, seconds, labels/s, the child's own CPU seconds and its peak RSS (wait4);
writes bench/results/<--name>.json.

    PYTHONPATH=. .venv/bin/python bench/import_tools.py                     # 100k × 3
    PYTHONPATH=. nice -n 10 .venv/bin/python bench/import_tools.py --tasks 20000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import import_export  # noqa: E402
from bench.common import WORDS, save, table  # noqa: E402

ANNOTATORS = 30


def make_export(path: Path, tasks: int, annotations: int, seed: int = 0) -> tuple[int, int]:
    """Write a Label Studio JSON export; (labels, skips) it holds."""
    r = random.Random(seed)

    def text(n: int) -> str:
        return " ".join(r.choice(WORDS) for _ in range(n))

    labels = skips = 0
    with open(path, "w") as out:
        out.write("[\n")
        for t in range(tasks):
            who = r.sample(range(1, ANNOTATORS + 1), annotations)
            anns = []
            for a, user in enumerate(who):
                cancelled = r.random() < 0.05
                skips += cancelled
                labels += not cancelled
                result = (
                    []
                    if cancelled
                    else [
                        {
                            "id": f"r{t}.{a}",
                            "from_name": "pw",
                            "to_name": "pw",
                            "type": "pairwise",
                            "value": {"selected": r.choice(["left", "right"])},
                        }
                    ]
                )
                anns.append(
                    {
                        "id": t * annotations + a + 1,
                        "completed_by": user,
                        "result": result,
                        "was_cancelled": cancelled,
                        "ground_truth": False,
                        "created_at": f"2024-03-{1 + t % 28:02d}T10:{a:02d}:00.000000Z",
                        "updated_at": f"2024-03-{1 + t % 28:02d}T10:{a:02d}:00.000000Z",
                        "lead_time": round(r.uniform(2, 60), 3),
                        "task": t + 1,
                    }
                )
            task = {
                "id": t + 1,
                "data": {"prompt": text(12), "answer1": text(40), "answer2": text(40)},
                "annotations": anns,
                "predictions": [],
                "meta": {},
            }
            out.write(("," if t else "") + json.dumps(task) + "\n")
        out.write("]\n")
    return labels, skips


def bench_backend(
    backend: str, args: argparse.Namespace, data: Path, workdir: Path, labels: int
) -> list[dict[str, Any]]:
    url = import_export.fresh_database(backend, workdir)
    env = os.environ | {
        "RLHF_DATABASE_URL": url,
        "RLHF_ARTIFACTS_DIR": str(workdir / f"artifacts-{backend}"),
        "RLHF_SECRET_KEY": os.environ.get("RLHF_SECRET_KEY", "bench-secret-key-0123456789abcdef"),
        "RLHF_IMPORT_MAX_BYTES": str(8 * 1024**3),
    }
    timed = import_export.timed
    timed(env, "db", "upgrade")
    project = timed(env, "projects", "create", "bench", "--kind", "ranking", "--k", "2")
    project_id = project["stdout"].strip()
    results = []
    for step in ("import", "import again"):
        run = timed(env, "import", project_id, str(data), "--format", "labelstudio", "--json")
        report = json.loads(run.pop("stdout"))
        stored = report["labels"]
        if step == "import":
            assert report["imported"] == args.tasks and stored == labels, report
        else:
            assert report["imported"] == 0 and stored == 0, report
        results.append(
            {"backend": backend, "step": step, "tasks": args.tasks, "labels": labels}
            | run
            | {"labels_per_s": labels / run["seconds"], "labels_per_cpu_s": labels / run["cpu_s"]}
        )
        print(f"[{backend}] {step}: {run['seconds']:.1f} s, {run['rss_mib']:.0f} MiB", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--annotations", type=int, default=3, help="per task")
    parser.add_argument("--backends", nargs="+", default=["postgresql"])
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--name", default="import_tools", help="results file name")
    args = parser.parse_args()
    import_export.PG_URL = os.environ.get(
        "RLHF_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/rlhf_bench_tools"
    )
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="rlhf-bench-tools-"))
    workdir.mkdir(parents=True, exist_ok=True)
    data = workdir / f"labelstudio-{args.tasks}x{args.annotations}.json"
    labels, skips = make_export(data, args.tasks, args.annotations)
    print(f"wrote {data} ({data.stat().st_size / 1e6:.0f} MB, {labels} labels)", flush=True)
    results = []
    for backend in args.backends:
        results += bench_backend(backend, args, data, workdir, labels)
    columns = ["backend", "step", "tasks", "labels", "seconds", "labels_per_s", "cpu_s"]
    columns += ["labels_per_cpu_s", "rss_mib"]
    print(table(results, columns))
    payload = {
        "tasks": args.tasks,
        "annotations": args.annotations,
        "labels": labels,
        "skips": skips,
        "file_mb": round(data.stat().st_size / 1e6, 1),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "results": results,
    }
    print(f"results: {save(args.name, payload)}")
    data.unlink()


if __name__ == "__main__":
    main()
