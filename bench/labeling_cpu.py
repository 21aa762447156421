"""CPU time of the labeling hot path per cycle (next → submit), in one process, no HTTP.

The ASGI app is called directly on uvloop, the event loop `rlhf serve` runs (no client, no
sockets, one labeler at a time), so the figure
is the app's own Python work per cycle: routing, authentication, the statements through
SQLAlchemy and the driver, validation, responses. It moves little with the machine's load,
unlike `labeling_load.py`; use it to compare two versions of the code back to back (the
minimum over --rounds is reported). Prints a table and writes bench/results/labeling_cpu.json.

    .venv/bin/python bench/labeling_cpu.py --database-url postgresql+psycopg://postgres@127.0.0.1/bench
    .venv/bin/python bench/labeling_cpu.py --database-url sqlite://
"""

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import uvloop

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import save, table  # noqa: E402
from bench.labeling_load import PG_URL, fresh_database, seed  # noqa: E402


async def call(app: Any, method: str, path: str, token: str, body: Any = None) -> Any:
    """One request through the ASGI app; returns (status, decoded JSON body)."""
    headers = [(b"host", b"bench"), (b"authorization", f"Bearer {token}".encode())]
    data = b""
    if body is not None:
        data = json.dumps(body).encode()
        headers += [
            (b"content-type", b"application/json"),
            (b"idempotency-key", os.urandom(8).hex().encode()),
        ]
        headers.append((b"content-length", str(len(data)).encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("bench", 80),
        "root_path": "",
    }
    received = False
    status, chunks = 0, []

    async def receive() -> dict[str, Any]:
        nonlocal received
        if not received:
            received = True
            return {"type": "http.request", "body": data, "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, json.loads(b"".join(chunks) or b"null")


async def cycle(app: Any, project_id: int, token: str) -> None:
    status, task = await call(app, "GET", f"/api/v1/projects/{project_id}/tasks/next", token)
    assert status == 200, (status, task)
    ranking = [r["id"] for r in task["responses"]]
    path = f"/api/v1/assignments/{task['assignment_id']}/annotations"
    status, stored = await call(app, "POST", path, token, {"ranking": ranking})
    assert status == 201, (status, stored)


async def measure(app: Any, project_id: int, tokens: list[str], cycles: int) -> float:
    """CPU milliseconds per cycle over `cycles` cycles (after a warm-up)."""
    async with app.router.lifespan_context(app):
        for i in range(50):
            await cycle(app, project_id, tokens[i % len(tokens)])
        started = time.process_time()
        for i in range(cycles):
            await cycle(app, project_id, tokens[i % len(tokens)])
        return 1000 * (time.process_time() - started) / cycles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", action="append", help=f"default: SQLite and {PG_URL}")
    parser.add_argument("--cycles", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("RLHF_DEV", "1")
    rows = []
    for url in args.database_url or ["sqlite://", PG_URL]:
        url = fresh_database(url)
        project_id, tokens = seed(url, 4, (50 + args.cycles) * args.rounds + 10, 4, 1)
        from app.config import get_settings
        from app.main import create_app

        get_settings.cache_clear()
        per_round = [
            uvloop.run(measure(create_app(), project_id, tokens, args.cycles))
            for _ in range(args.rounds)
        ]
        rows.append(
            {
                "backend": url.split(":", 1)[0].split("+")[0],
                "cycles": args.cycles,
                "cpu_ms_per_cycle_min": round(min(per_round), 2),
                "cpu_ms_per_cycle_max": round(max(per_round), 2),
            }
        )
    print(table(rows, list(rows[0])))
    print("per round (ms per cycle):", [round(x, 2) for x in per_round])
    print("written to", save("labeling_cpu", {"points": rows, "load_average": os.getloadavg()[0]}))


if __name__ == "__main__":
    main()
