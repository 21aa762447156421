"""Benchmark of the Prompts page's queries on a project of 1M prompts (keyset pages).

Run from the repository root:  .venv/bin/python bench/prompts_page.py [--prompts 1000000]
    [--database-url postgresql+psycopg://…]   (default: a fresh SQLite file in a temp folder)
Migrates the database as `rlhf db upgrade` does, inserts the prompts (every tenth complete,
some leased, skipped and retired; PostgreSQL then ANALYZEs, as autovacuum would), then times
one page deep in the project (id > N/2) and the count of matching prompts that the bulk form
shows, per filter. Prints a table and writes bench/results/prompts_page.json. Each figure is
the best of --repeat runs.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from datetime import timedelta
from typing import Any

from bench.common import save, table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=1_000_000)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    url = args.database_url or f"sqlite:///{tempfile.mkdtemp(prefix='rlhf-bench-')}/bench.db"
    os.environ.setdefault("RLHF_DEV", "1")
    os.environ["RLHF_DATABASE_URL"] = url

    from alembic import command
    from sqlalchemy import insert, text
    from sqlalchemy.orm import Session

    from app.auth.models import User
    from app.base import utcnow
    from app.cli import alembic_config
    from app.db import make_engine
    from app.labeling.models import Assignment
    from app.projects.models import Project, Prompt
    from app.prompts import service
    from app.prompts.service import PromptFilter

    command.upgrade(alembic_config(), "head")
    engine = make_engine(url)
    n = args.prompts
    with Session(engine, expire_on_commit=False) as session:
        user = User(email=f"bench-{time.time()}@example.com", role="labeler", password_hash="x")
        project = Project(name=f"bench {time.time()}", kind="ranking", k=2, overlap=3)
        session.add_all([user, project])
        session.commit()
        now = utcnow()
        started = time.perf_counter()
        for first in range(0, n, 50_000):
            session.execute(
                insert(Prompt),
                [
                    {
                        "project_id": project.id,
                        "external_id": f"p{i}",
                        "messages": [{"role": "user", "content": f"question number {i}"}],
                        "meta": {},
                        "done_count": 3 if i % 10 == 0 else (1 if i % 10 == 1 else 0),
                        "extra_labels": 0,
                        "is_gold": False,
                        "retired_at": now if i % 1000 == 7 else None,
                        "created_at": now,
                    }
                    for i in range(first, min(n, first + 50_000))
                ],
            )
        ids = [p for p in range(1, n + 1, max(n // 200, 1))]
        session.add_all(
            Assignment(
                project_id=project.id,
                prompt_id=pid,
                user_id=user.id,
                status="skipped" if j % 2 else "leased",
                skip_reason="unclear" if j % 2 else None,
                expires_at=now + timedelta(hours=1),
            )
            for j, pid in enumerate(ids)
        )
        session.commit()
        insert_s = time.perf_counter() - started
        if engine.dialect.name == "postgresql":
            # What autovacuum does soon after a bulk import; without it the planner
            # believes the table is empty and picks nested loops.
            session.execute(text("ANALYZE"))
            session.commit()

        def best(call: Any) -> tuple[float, Any]:
            times, out = [], None
            for _ in range(args.repeat):
                t = time.perf_counter()
                out = call()
                times.append(time.perf_counter() - t)
            return min(times) * 1000, out

        rows = []
        for status in [None, *service.STATUSES]:
            where = PromptFilter(status=status)
            page_ms, (page, _) = best(
                lambda w=where: service.list_prompts(
                    session=session, project=project, where=w, after=n // 2
                )
            )
            count_ms, count = best(
                lambda w=where: service.count_prompts(session=session, project=project, where=w)
            )
            rows.append(
                {"filter": status or "any", "page_ms": page_ms, "rows": len(page),
                 "count_ms": count_ms, "matching": count}
            )  # fmt: skip
        search = PromptFilter(q=f"question number {n - 1}")
        page_ms, (page, _) = best(
            lambda: service.list_prompts(session=session, project=project, where=search)
        )
        rows.append({"filter": "search (last prompt)", "page_ms": page_ms, "rows": len(page)})
    engine.dispose()
    print(f"{n} prompts on {engine.dialect.name}; inserted in {insert_s:.0f} s")
    print(table(rows, ["filter", "page_ms", "rows", "count_ms", "matching"]))
    path = save(
        "prompts_page",
        {
            "prompts": n,
            "backend": engine.dialect.name,
            "machine": platform.platform(),
            "cpus": os.cpu_count(),
            "loadavg": os.getloadavg(),
            "rows": rows,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
