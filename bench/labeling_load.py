"""Load test of the labeling API: N concurrent simulated labelers doing next → submit.

For each number of labelers (--labelers 50,100,200): a fresh database with a seeded ranking
project, users and API tokens; the server started exactly as `rlhf serve` starts it by default
(processes from the cores); the labelers (`bench.lean_http`, one keep-alive connection each,
async) in separate client processes for
--seconds; then the database is checked: zero double assignments, zero overfilled prompts, zero
lost acknowledged annotations. Reports cycles/s, p50/p99 (all requests and next-task alone),
the CPU time per cycle of the server, of PostgreSQL (its backends for the bench database) and
of the load generator. Prints
a table and writes bench/results/labeling_load.json.
Profile the server with py-spy (bench extra): `py-spy record -p <pid of a web process>`.

    .venv/bin/python bench/labeling_load.py      # 50, 100, 200 labelers on SQLite and PostgreSQL
    .venv/bin/python bench/labeling_load.py --database-url postgresql+psycopg://postgres@127.0.0.1/bench

With no --database-url, the matrix runs on a SQLite file and on PostgreSQL at PG_URL (a
database of that name is dropped and created for each point).
"""

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import table  # noqa: E402
from bench.lean_http import Connection, HttpError  # noqa: E402

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/labeling_load"


def fresh_database(url: str) -> str:
    """Drop and create the PostgreSQL database named in `url` (SQLite: a new temp file)."""
    if url.startswith("sqlite"):
        return f"sqlite:///{tempfile.mkdtemp()}/bench.db"
    parsed = make_url(url)
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{parsed.database}"'))
    admin.dispose()
    return url


def seed(url: str, labelers: int, prompts: int, k: int, overlap: int) -> tuple[int, list[str]]:
    """Migrate, then create the project, its prompts and the labelers' tokens."""
    os.environ["RLHF_DATABASE_URL"] = url
    from alembic import command

    from app.auth import service as auth_service
    from app.cli import alembic_config
    from app.config import get_settings
    from app.db import get_engine, get_sessionmaker
    from app.projects import importer
    from app.projects import service as project_service
    from app.projects.schemas import ProjectCreate

    if get_engine.cache_info().currsize:  # the previous point's database
        get_engine().dispose()
    for cached in (get_settings, get_engine, get_sessionmaker):
        cached.cache_clear()
    command.upgrade(alembic_config(), "head")
    with get_sessionmaker()() as session:
        project = project_service.create(
            session=session,
            data=ProjectCreate(name="bench", kind="ranking", k=k, overlap=overlap),
        )
        session.commit()
        items = Path(tempfile.mkdtemp()) / "items.jsonl"
        with open(items, "w") as f:
            for i in range(prompts):
                responses = [f"response {j} to prompt {i}" for j in range(k)]
                f.write(json.dumps({"id": str(i), "prompt": f"prompt {i}", "responses": responses}))
                f.write("\n")
        importer.import_file(session=session, project=project, path=items)
        tokens = []
        for n in range(labelers):
            user = auth_service.create_user(
                session=session, email=f"bench{n}@example.com", role="labeler"
            )
            tokens.append(auth_service.create_token(session=session, user=user)[1])
        session.commit()
        return project.id, tokens


async def labeler(conn: Connection, project_id, token, deadline, stats, chained) -> None:  # type: ignore[no-untyped-def]
    """One simulated labeler on its own connection until the deadline (or nothing is left):
    next → submit, or with `chained` one request per label (submit with ?next=1, whose answer
    carries the next task; a next-task call only to start)."""
    headers = {"Authorization": f"Bearer {token}"}
    task = None
    while time.perf_counter() < deadline:
        try:
            if task is None:
                t0 = time.perf_counter()
                r = await conn.request("GET", f"/api/v1/projects/{project_id}/tasks/next", headers)
                stats["latency"].append(time.perf_counter() - t0)
                stats["next_latency"].append(stats["latency"][-1])
                if r.status == 204:
                    stats["exhausted"] += 1
                    return
                if r.status != 200:
                    stats["errors"] += 1
                    stats["error_kinds"][str(r.status)] += 1
                    continue
                task = r.json()
            ranking = [resp["id"] for resp in task["responses"]]
            key = f"{token[-8:]}-{task['assignment_id']}"
            path = f"/api/v1/assignments/{task['assignment_id']}/annotations"
            t0 = time.perf_counter()
            r = await conn.request(
                "POST",
                path + ("?next=1" if chained else ""),
                headers | {"Idempotency-Key": key},
                json={"ranking": ranking},
            )
            stats["latency"].append(time.perf_counter() - t0)
            if chained:
                stats["next_latency"].append(stats["latency"][-1])
        except HttpError as error:
            stats["errors"] += 1
            stats["error_kinds"][str(error)[:40]] += 1
            task = None
            continue
        if r.status in (200, 201):
            answer = r.json()
            stats["acknowledged"].append(answer["id"])
            task = answer.get("next_task") if chained else None
            if chained and task is None:
                stats["exhausted"] += 1
                return
        else:
            stats["errors"] += 1
            stats["error_kinds"][str(r.status)] += 1
            task = None


def client_process(base, project_id, tokens, seconds, chained, out) -> None:  # type: ignore[no-untyped-def]
    """One load-generating process (its own event loop) for a share of the labelers."""
    import uvloop

    out.put(uvloop.run(run_load(base, project_id, tokens, seconds, chained)))


def run_clients(
    base: str, project_id: int, tokens: list[str], seconds: float, processes: int, chained: bool
) -> dict:
    """Spread the labelers over several client processes (each its own event loop)."""
    import multiprocessing

    queue: multiprocessing.Queue = multiprocessing.Queue()
    shares = [tokens[i::processes] for i in range(processes)]
    workers = [
        multiprocessing.Process(
            target=client_process, args=(base, project_id, s, seconds, chained, queue)
        )
        for s in shares
        if s
    ]
    for w in workers:
        w.start()
    parts = [queue.get() for _ in workers]
    for w in workers:
        w.join()
    return {
        "latency": [x for p in parts for x in p["latency"]],
        "next_latency": [x for p in parts for x in p["next_latency"]],
        "acknowledged": [x for p in parts for x in p["acknowledged"]],
        "errors": sum(p["errors"] for p in parts),
        "error_kinds": dict(sum((Counter(p["error_kinds"]) for p in parts), Counter())),
        "exhausted": sum(p["exhausted"] for p in parts),
        "elapsed": max(p["elapsed"] for p in parts),
        "cpu": sum(p["cpu"] for p in parts),
    }


async def run_load(
    base: str, project_id: int, tokens: list[str], seconds: float, chained: bool
) -> dict:
    stats: dict = {
        "latency": [],
        "next_latency": [],
        "acknowledged": [],
        "errors": 0,
        "error_kinds": Counter(),
        "exhausted": 0,
    }
    parsed = urlsplit(base)
    conns = [Connection(parsed.hostname or "127.0.0.1", parsed.port or 80) for _ in tokens]
    start, cpu_start = time.perf_counter(), time.process_time()
    deadline = start + seconds
    await asyncio.gather(
        *(
            labeler(c, project_id, t, deadline, stats, chained)
            for c, t in zip(conns, tokens, strict=True)
        )
    )
    stats["elapsed"] = time.perf_counter() - start
    stats["cpu"] = time.process_time() - cpu_start
    for c in conns:
        c.close()
    return stats


def check(url: str, acknowledged: list[int], overlap: int) -> dict:
    from app.labeling import public
    from app.labeling.models import Annotation, Assignment

    engine = create_engine(url)
    with engine.connect() as conn:
        stored = set(conn.scalars(select(Annotation.id)))
        pairs = conn.execute(select(Assignment.prompt_id, Assignment.user_id)).all()
        per_prompt = Counter(conn.scalars(select(Annotation.prompt_id)))
    engine.dispose()
    # The API answers with public ids (app.labeling.public); the server shares this env's key.
    acknowledged = [public.decode(public.Kind.annotation, a) for a in acknowledged]
    return {
        "lost_acknowledged": len(set(acknowledged) - stored),
        "stored_not_acknowledged": len(stored - set(acknowledged)),
        "double_assignments": len(pairs) - len(set(pairs)),
        "overfilled_prompts": sum(1 for n in per_prompt.values() if n > overlap),
    }


def wait_for(base: str, proc: subprocess.Popen) -> None:
    for _ in range(100):
        if proc.poll() is not None:
            raise SystemExit("the server exited during start-up")
        try:
            httpx.get(base + "/login", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit("the server did not start")


def cpu_seconds(pgid: int | None = None, database: str | None = None) -> float:
    """CPU seconds (user + system) of every live process in a process group, or of the
    PostgreSQL backends serving `database` (on this machine: their title names it)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if database is not None:
                title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                if not title.startswith("postgres:") or f" {database} " not in title:
                    continue
            elif int(fields[2]) != pgid:
                continue
        except (OSError, UnicodeDecodeError):
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def run_point(args: argparse.Namespace, database_url: str, labelers: int) -> dict:
    """One measurement: a fresh database, `rlhf serve` as a user starts it, the load, checks."""
    started = time.perf_counter()
    url = fresh_database(database_url)
    project_id, tokens = seed(url, labelers, args.prompts, args.k, args.overlap)
    base = f"http://127.0.0.1:{args.port}"
    command = [sys.executable, "-c", "from app.cli import main; main()", "serve"]
    command += ["--port", str(args.port)]
    if args.workers:
        command += ["--workers", str(args.workers)]
    env = os.environ | {"RLHF_DATABASE_URL": url}
    server = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)
    try:
        wait_for(base, server)
        load = os.getloadavg()[0]
        database = make_url(url).database if url.startswith("postgresql") else None
        cpu_before = cpu_seconds(pgid=server.pid)
        db_before = cpu_seconds(database=database) if database else 0.0
        chained = args.mode == "chained"
        stats = run_clients(base, project_id, tokens, args.seconds, args.client_processes, chained)
        server_cpu = cpu_seconds(pgid=server.pid) - cpu_before
        db_cpu = cpu_seconds(database=database) - db_before if database else None
    finally:
        server.terminate()
        server.wait(timeout=30)
    integrity = check(url, stats["acknowledged"], args.overlap)
    latency = sorted(stats["latency"])
    next_latency = sorted(stats["next_latency"]) or [0.0]

    def pct(values: list[float], p: float) -> float:
        return round(1000 * values[min(len(values) - 1, int(p * len(values)))], 1)

    labels = len(stats["acknowledged"])
    return {
        "backend": make_url(url).get_backend_name(),
        "mode": args.mode,
        "labelers": labelers,
        "seconds": round(stats["elapsed"], 2),
        "cycles_per_s": round(labels / stats["elapsed"], 1),
        "p50_ms": pct(latency, 0.50),
        "p99_ms": pct(latency, 0.99),
        "next_p99_ms": pct(next_latency, 0.99),
        "max_ms": pct(latency, 1.0),
        "server_cpu_ms_per_cycle": round(1000 * server_cpu / max(labels, 1), 2),
        "db_cpu_ms_per_cycle": None if db_cpu is None else round(1000 * db_cpu / max(labels, 1), 2),
        "client_cpu_ms_per_cycle": round(1000 * stats["cpu"] / max(labels, 1), 2),
        "http_errors": stats["errors"],
        "error_kinds": stats["error_kinds"],
        "load_average": round(load, 1),
        "point_seconds": round(time.perf_counter() - started, 1),
        **integrity,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url",
        action="append",
        help=f"repeat for several backends (default: SQLite and {PG_URL})",
    )
    parser.add_argument("--labelers", default="50,100,200", help="comma-separated points")
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--prompts", type=int, default=5000)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--overlap", type=int, default=3)
    parser.add_argument("--workers", type=int, help="server processes (default: rlhf serve's)")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--client-processes", type=int, default=2, help="load generators")
    parser.add_argument(
        "--mode",
        choices=["next-submit", "chained"],
        default="next-submit",
        help="next-submit: GET next, then POST; chained: POST …?next=1 (one request per label)",
    )
    parser.add_argument("--out", default=str(ROOT / "bench/results/labeling_load.json"))
    args = parser.parse_args()
    os.environ.setdefault("RLHF_DEV", "1")
    urls = args.database_url or ["sqlite://", PG_URL]
    rows = [run_point(args, url, int(n)) for url in urls for n in args.labelers.split(",")]
    columns = [
        "backend",
        "mode",
        "labelers",
        "cycles_per_s",
        "p50_ms",
        "p99_ms",
        "next_p99_ms",
        "max_ms",
        "server_cpu_ms_per_cycle",
        "db_cpu_ms_per_cycle",
        "client_cpu_ms_per_cycle",
        "http_errors",
        "lost_acknowledged",
        "double_assignments",
        "overfilled_prompts",
        "load_average",
    ]
    print(table(rows, columns))
    machine = {"cpus": os.cpu_count(), "load_average": os.getloadavg()[0]}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"points": rows, **machine}, indent=2) + "\n")
    bad = any(
        r["lost_acknowledged"] or r["double_assignments"] or r["overfilled_prompts"] for r in rows
    )
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
