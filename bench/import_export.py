"""Import, export and snapshot speed as a user meets them: `rlhf import`, `rlhf export` and
`rlhf snapshot` run as subprocesses with default settings, on PostgreSQL and SQLite.

1. A ranking project's JSONL: --prompts prompts × --k responses (100k × 4 ≈ 138 MB).
2. `rlhf import` of it (timed).
3. --annotations rankings of those prompts by synthetic labelers, stored in bulk straight
   into the database (data preparation, not timed as a product figure).
4. `rlhf export --kind rankings` (one row per annotation), `rlhf snapshot --kind rankings
   --method all` (one row per annotation, JSONL + Parquet) and `rlhf snapshot --kind rankings`
   (the default consensus, ranked-pairs: one row per prompt) (timed).

Prints rows, seconds, rows/s, the child's own CPU seconds (user + system; the database
server's work is not in them) and rows per CPU second, and its peak RSS (from wait4) per step;
writes bench/results/<--name>.json. On a busy machine rows per CPU second says more than wall
time; `--code` runs another checkout's `rlhf` for a back-to-back ratio.

    PYTHONPATH=. .venv/bin/python bench/import_export.py                 # 100k × 4, 1M labels
    PYTHONPATH=. .venv/bin/python bench/import_export.py --prompts 10000 --annotations 100000
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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import WORDS, save, table  # noqa: E402

PG_URL = os.environ.get(
    "RLHF_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/rlhf_bench_io"
)


def make_file(path: Path, prompts: int, k: int, seed: int = 0) -> int:
    """The import file: `prompts` lines of a prompt (~35 words) and k responses (~50 words)."""
    r = random.Random(seed)
    pool = [" ".join(r.choices(WORDS, k=400)) for _ in range(64)]

    def text(n_chars: int) -> str:
        start = r.randrange(1000)
        return (pool[r.randrange(64)] * 3)[start : start + n_chars].strip() or "x"

    with open(path, "w", encoding="utf-8") as out:
        for i in range(prompts):
            line = {
                "id": f"p{i}",
                "prompt": text(200),
                "responses": [{"text": text(290), "model": f"m{j}"} for j in range(k)],
            }
            out.write(json.dumps(line) + "\n")
    return path.stat().st_size


def rlhf_command() -> list[str]:
    script = Path(sys.executable).parent / "rlhf"
    return [str(script)] if script.exists() else [sys.executable, "-m", "app"]


def timed(env: dict[str, str], *args: str) -> dict[str, Any]:
    """Run `rlhf args…`; its wall time, its own peak RSS (MiB, from wait4) and its output."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        child = subprocess.Popen([*rlhf_command(), *args], env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
        child.returncode = code = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if code != 0:
        raise SystemExit(f"rlhf {' '.join(args)} failed ({code}):\n{stderr}")
    cpu = usage.ru_utime + usage.ru_stime
    return {"seconds": seconds, "cpu_s": cpu, "rss_mib": usage.ru_maxrss / 1024, "stdout": stdout}


def fresh_database(backend: str, workdir: Path) -> str:
    if backend == "sqlite":
        path = workdir / "bench.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return f"sqlite:///{path}"
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(PG_URL)
    admin = url.set(database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{url.database}"')
    return PG_URL


def add_annotations(
    url: str, project_id: int, user_ids: list[int], total: int, layout: str = "labeler-major"
) -> None:
    """`total` rankings (shuffled response ids). "labeler-major": each labeler in turn ranks
    every prompt, so a batch of the export holds no two labels of one prompt (the worst case
    for fetching a batch's texts once); "leased": a prompt's labels one after another, as the
    app's leases hand a prompt to its overlap's labelers before the next prompt."""
    from sqlalchemy import create_engine, text

    r = random.Random(1)
    engine = create_engine(url)
    with engine.begin() as conn:
        rows = conn.execute(
            text(
                "SELECT r.prompt_id, r.id FROM responses r JOIN prompts p ON p.id = r.prompt_id "
                "WHERE p.project_id = :p ORDER BY r.prompt_id, r.position"
            ),
            {"p": project_id},
        )
        responses: dict[int, list[int]] = {}
        for prompt_id, response_id in rows:
            responses.setdefault(prompt_id, []).append(response_id)
        now = datetime.now(UTC)
        stamp: Any = (
            now if engine.dialect.name == "postgresql" else now.strftime("%Y-%m-%d %H:%M:%S.%f")
        )
        columns = "project_id, prompt_id, user_id, kind, payload, flags, source, created_at"

        def batches() -> Any:
            batch = []
            pairs = [(u, p) for u in user_ids for p in responses]
            if layout == "leased":
                pairs = [(u, p) for p in responses for u in user_ids]
            for user_id, prompt_id in pairs[:total]:
                ids = responses[prompt_id]
                ranking = ids[:]
                r.shuffle(ranking)
                payload = json.dumps({"ranking": ranking})
                batch.append(
                    (project_id, prompt_id, user_id, "ranking", payload, "{}", "labeler", stamp)
                )
                if len(batch) == 50_000:
                    yield batch
                    batch = []
            if batch:
                yield batch

        raw: Any = conn.connection.driver_connection
        for batch in batches():
            if engine.dialect.name == "postgresql":
                with (
                    raw.cursor() as cursor,
                    cursor.copy(f"COPY annotations ({columns}) FROM STDIN") as copy,
                ):
                    for row in batch:
                        copy.write_row(row)
            else:
                raw.executemany(
                    f"INSERT INTO annotations ({columns}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", batch
                )
        if engine.dialect.name == "postgresql":
            conn.execute(text("ANALYZE annotations"))
    engine.dispose()


def bench_backend(backend: str, args: argparse.Namespace, data: Path, workdir: Path) -> list[dict]:
    url = fresh_database(backend, workdir)
    env = os.environ | {
        "RLHF_DATABASE_URL": url,
        "RLHF_ARTIFACTS_DIR": str(workdir / f"artifacts-{backend}"),
        "RLHF_SECRET_KEY": os.environ.get("RLHF_SECRET_KEY", "bench-secret-key-0123456789abcdef"),
        "PYTHONPATH": str(args.code),
    }
    timed(env, "db", "upgrade")
    project = timed(env, "projects", "create", "bench", "--kind", "ranking", "--k", str(args.k))
    project_id = int(project["stdout"].strip())
    results = []

    step = timed(env, "import", str(project_id), str(data), "--json")
    report = json.loads(step["stdout"])
    assert report["imported"] == args.prompts, report
    results.append({"backend": backend, "step": "import", "rows": args.prompts} | step)

    if args.annotations:
        labelers = -(-args.annotations // args.prompts)
        user_ids = []
        for j in range(labelers):
            made = timed(env, "users", "create", f"labeler{j}@bench.example", "--json")
            user_ids.append(json.loads(made["stdout"])["id"])
        started = time.perf_counter()
        add_annotations(url, project_id, user_ids, args.annotations, args.layout)
        print(
            f"[{backend}] stored {args.annotations} annotations "
            f"in {time.perf_counter() - started:.1f} s",
            flush=True,
        )
        out = workdir / f"export-{backend}.jsonl"
        step = timed(env, "export", str(project_id), "--kind", "rankings", "-o", str(out))
        with open(out, "rb") as handle:
            rows = sum(1 for _ in handle)
        assert rows == args.annotations, rows
        out.unlink()
        results.append({"backend": backend, "step": "export rankings", "rows": rows} | step)
        step = timed(
            env, "snapshot", str(project_id), "--kind", "rankings", "--method", "all", "--json"
        )
        snap = json.loads(step["stdout"])
        rows = snap["train_rows"] + snap["test_rows"]
        assert rows == args.annotations, snap
        results.append({"backend": backend, "step": "snapshot (all)", "rows": rows} | step)
        step = timed(env, "snapshot", str(project_id), "--kind", "rankings", "--json")
        snap = json.loads(step["stdout"])
        rows = snap["train_rows"] + snap["test_rows"]
        results.append({"backend": backend, "step": "snapshot (ranked-pairs)", "rows": rows} | step)
    for row in results:
        row["rows_per_s"] = row["rows"] / row["seconds"]
        row["rows_per_cpu_s"] = row["rows"] / row["cpu_s"]
        row.pop("stdout")
        print(
            f"[{backend}] {row['step']}: {row['rows']} rows in {row['seconds']:.1f} s", flush=True
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=100_000)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--annotations", type=int, default=1_000_000, help="0: import only")
    parser.add_argument("--backends", nargs="+", default=["postgresql", "sqlite"])
    parser.add_argument(
        "--layout",
        choices=["labeler-major", "leased"],
        default="labeler-major",
        help="the order the synthetic labels are stored in (see add_annotations)",
    )
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument(
        "--code",
        type=Path,
        default=Path(__file__).resolve().parent.parent,
        help="the checkout whose `rlhf` runs (e.g. an older one, for a back-to-back ratio)",
    )
    parser.add_argument("--name", default="import_export", help="results file name")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="rlhf-bench-io-"))
    workdir.mkdir(parents=True, exist_ok=True)
    data = workdir / f"ranking-{args.prompts}x{args.k}.jsonl"
    if not data.exists():
        size = make_file(data, args.prompts, args.k)
        print(f"wrote {data} ({size / 1e6:.0f} MB)", flush=True)
    results = []
    for backend in args.backends:
        results += bench_backend(backend, args, data, workdir)
    commit = subprocess.run(
        ["git", "-C", str(args.code), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    columns = ["backend", "step", "rows", "seconds", "rows_per_s", "cpu_s", "rows_per_cpu_s"]
    columns.append("rss_mib")
    print(table(results, columns))
    payload = {
        "prompts": args.prompts,
        "k": args.k,
        "annotations": args.annotations,
        "layout": args.layout,
        "file_mb": round(data.stat().st_size / 1e6, 1),
        "code": str(args.code),
        "commit": commit,
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "results": results,
    }
    print(f"results: {save(args.name, payload)}")


if __name__ == "__main__":
    main()
