"""Helpers of the serving tests: a real `rlhf serve` on PostgreSQL, a seeded project, and
labelers that loop next task → submit over HTTP."""

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, insert, select

from bench.lean_http import Connection, HttpError
from tests.browser.live import free_port, server_env
from tests.helpers import fresh_postgres_database, migrate, ranking_items, row_id


def seeded_database(name: str, *, prompts: int, labelers: int, overlap: int, tmp: Path) -> Any:
    """A fresh migrated PostgreSQL database with one ranking project and labelers' tokens."""
    from sqlalchemy.orm import Session

    from app.auth.models import ApiToken, User
    from app.auth.security import hash_token, new_api_token
    from app.projects import importer
    from app.projects import service as project_service
    from app.projects.schemas import ProjectCreate

    url = fresh_postgres_database(name)
    migrate(url)
    engine = create_engine(url)
    with Session(engine) as session:
        project = project_service.create(
            session=session, data=ProjectCreate(name="load", kind="ranking", k=2, overlap=overlap)
        )
        session.commit()
        path = tmp / "items.jsonl"
        path.write_text("".join(json.dumps(i) + "\n" for i in ranking_items(prompts)))
        importer.import_file(session=session, project=project, path=path)
        emails = [{"email": f"load{i}@example.com", "role": "labeler"} for i in range(labelers)]
        ids = session.scalars(insert(User).returning(User.id), emails).all()
        tokens = [new_api_token() for _ in ids]
        session.execute(
            insert(ApiToken),
            [
                {"user_id": uid, "token_hash": hash_token(t), "prefix": t[:9], "name": "load"}
                for uid, t in zip(ids, tokens, strict=True)
            ],
        )
        session.commit()
        project_id = project.id
    engine.dispose()
    return url, project_id, tokens


class Server:
    """`rlhf serve` with its defaults, in its own process group (kill -9 reaches all of it)."""

    def __init__(self, url: str, log: Path, port: int | None = None) -> None:
        self.url, self.log, self.port = url, log, port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> "Server":
        command = [sys.executable, "-c", "from app.cli import main; main()", "serve"]
        with open(self.log, "a") as out:
            self.process = subprocess.Popen(
                [*command, "--port", str(self.port)],
                env=server_env(self.url),
                stdout=out,
                stderr=out,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{self.base}/login", timeout=2)
                return self
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"the server did not start: {self.log.read_text()}"
                    ) from None
                time.sleep(0.2)

    def stop(self, sig: int = signal.SIGTERM) -> float:
        """Send `sig` (SIGKILL: to the whole process group); seconds until it exited."""
        assert self.process is not None
        started = time.monotonic()
        if sig == signal.SIGKILL:
            os.killpg(self.process.pid, signal.SIGKILL)
        else:
            self.process.send_signal(sig)
        try:
            self.process.wait(timeout=30)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)  # whatever is left
        return time.monotonic() - started


@dataclass
class Tally:
    statuses: dict[int, int] = field(default_factory=dict)
    slowest: float = 0.0
    acknowledged: set[int] = field(default_factory=set)
    errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)
    """Transport errors by exception type (a timeout, a connection the server closed, …)."""
    slow: list[tuple[float, float, str]] = field(default_factory=list)
    """(seconds, started at (monotonic), method and path) of requests over 2 s."""

    def error(self, error: Exception) -> None:
        self.errors += 1
        kind = str(error)[:60]
        self.error_kinds[kind] = self.error_kinds.get(kind, 0) + 1

    def count(self, status: int, seconds: float, what: str = "") -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1
        self.slowest = max(self.slowest, seconds)
        if seconds > 2:
            self.slow.append((seconds, time.monotonic() - seconds, what))


async def _call(
    conn: Connection, tally: Tally, method: str, url: str, headers: dict[str, str], **kw: Any
) -> Any:
    started = time.monotonic()
    response = await conn.request(method, url, headers, **kw)
    tally.count(response.status, time.monotonic() - started, f"{method} {url}")
    return response


async def labeler(
    conn: Connection, project_id: int, token: str, until: float, tally: Tally
) -> None:
    """next → submit (with an Idempotency-Key, retried until answered) until `until`, on one
    keep-alive connection (`bench.lean_http`: a browser's share of client CPU, not httpx's)."""
    headers = {"Authorization": f"Bearer {token}"}
    while time.monotonic() < until:
        try:
            got = await _call(
                conn, tally, "GET", f"/api/v1/projects/{project_id}/tasks/next", headers
            )
        except HttpError as error:
            tally.error(error)
            await asyncio.sleep(0.2)
            continue
        if got.status == 204:
            return
        if got.status != 200:
            await asyncio.sleep(0.2)
            continue
        task = got.json()
        body = {"ranking": [r["id"] for r in task["responses"]]}
        key = uuid.uuid4().hex
        url = f"/api/v1/assignments/{task['assignment_id']}/annotations"
        while True:  # a retry after a lost answer replays the key: stored once
            try:
                sent = await _call(
                    conn, tally, "POST", url, headers | {"Idempotency-Key": key}, json=body
                )
            except HttpError as error:
                tally.error(error)
                await asyncio.sleep(0.2)
                continue
            if sent.status in (200, 201):
                tally.acknowledged.add(row_id("annotation", sent.json()["id"]))  # public id
                break
            if sent.status < 500:
                break
            await asyncio.sleep(float(sent.headers.get("retry-after", "0.2")))


def stored(url: str) -> tuple[list[int], list[tuple[int, int]], list[int]]:
    """(annotation ids, (prompt, user) of every assignment, assignment id of each annotation)."""
    from app.labeling.models import Annotation, Assignment

    engine = create_engine(url)
    with engine.connect() as conn:
        ids = list(conn.scalars(select(Annotation.id)))
        pairs = [tuple(r) for r in conn.execute(select(Assignment.prompt_id, Assignment.user_id))]
        per_assignment = list(conn.scalars(select(Annotation.assignment_id)))
    engine.dispose()
    return ids, pairs, per_assignment  # type: ignore[return-value]
