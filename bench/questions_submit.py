"""What extra questions cost a labeler's submit on the hot path (app/labeling/hot.py).

Two ranking projects (K responses each) in one fresh database, identical but for the questions:
one asks none, the other a Likert, a yes/no and a multi-label question per response plus a
single choice and a rationale per task. One labeler leases a task (`hot.next_task`) and submits
it (`hot.submit`, the async path the API runs), alternating between the projects so both see
the same machine load; only the submit is timed. Also times answer validation alone. Prints a
table and writes bench/results/questions_submit.json.

    .venv/bin/python bench/questions_submit.py --database-url postgresql+psycopg://postgres@127.0.0.1/bench
"""

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import rankings, save, table  # noqa: E402
from bench.labeling_load import fresh_database  # noqa: E402

QUESTIONS = [
    {"name": "helpfulness", "type": "likert", "min": 1, "max": 7},
    {"name": "honest", "type": "yes_no"},
    {"name": "issues", "type": "multi_label", "options": ["rude", "long", "off topic"]},
    {"name": "style", "type": "single_choice", "options": ["formal", "casual"]},
    {"name": "why", "type": "text", "required": True},
]


def answers(ids: list[int]) -> dict:
    """Answers to every question for the responses `ids`."""
    return {
        "helpfulness": {str(i): 1 + n % 7 for n, i in enumerate(ids)},
        "honest": {str(i): n % 2 == 0 for n, i in enumerate(ids)},
        "issues": {str(i): ["long"] if n else [] for n, i in enumerate(ids)},
        "style": "casual",
        "why": "the first response answers the question and the others do not",
    }


def seed(url: str, prompts: int, k: int) -> tuple[list[int], object]:
    """Migrate; create both projects with their prompts and one labeler."""
    os.environ["RLHF_DATABASE_URL"] = url
    from alembic import command

    from app.auth import service as auth_service
    from app.cli import alembic_config
    from app.db import get_sessionmaker
    from app.projects import importer
    from app.projects import service as project_service
    from app.projects.schemas import ProjectCreate

    command.upgrade(alembic_config(), "head")
    with get_sessionmaker()() as session:
        ids = []
        for name, questions in (("plain", []), ("questions", QUESTIONS)):
            data = ProjectCreate(name=name, kind="ranking", k=k, questions=questions)
            project = project_service.create(session=session, data=data)
            session.commit()
            path = Path(tempfile.mkdtemp()) / "items.jsonl"
            path.write_text("".join(json.dumps(r) + "\n" for r in rankings(prompts, k, seed=1)))
            importer.import_file(session=session, project=project, path=path)
            ids.append(project.id)
        user = auth_service.create_user(
            session=session, email="bench@example.com", role="labeler", password="x" * 12
        )
        session.commit()
        session.expunge(user)
    return ids, user


async def measure(project_ids: list[int], user: object, rounds: int) -> dict[int, list[float]]:
    """Seconds per submit, per project, alternating between them."""
    from app.labeling import hot
    from app.labeling.schemas import AnnotationIn
    from app.memory import Memory

    memory = Memory()  # one web process's
    times: dict[int, list[float]] = {pid: [] for pid in project_ids}
    for _ in range(rounds):
        for pid in project_ids:
            task = await hot.next_task(project_id=pid, user=user, memory=memory)  # type: ignore[arg-type]
            assert task is not None, "not enough prompts for the rounds asked"
            ids = [r.id for r in task.responses]
            body = {"ranking": ids}
            if pid == project_ids[1]:
                body["answers"] = answers(ids)
            annotation = AnnotationIn(**body)
            start = time.perf_counter()
            await hot.submit(
                assignment_id=task.assignment_id,
                user=user,  # type: ignore[arg-type]
                body=annotation,
                idempotency_key=None,
                memory=memory,
            )
            times[pid].append(time.perf_counter() - start)
    return times


def validation_only(k: int, n: int = 20_000) -> float:
    """Microseconds to check one submit's answers (app/labeling/answers.py)."""
    from app.labeling import answers as checks
    from app.projects.schemas import ProjectCreate

    stored = ProjectCreate(name="x", kind="ranking", questions=QUESTIONS).stored_questions()
    ids = list(range(1, k + 1))
    given = answers(ids)
    start = time.perf_counter()
    for _ in range(n):
        checks.validate(stored, given, ids)
    return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default="sqlite://")
    parser.add_argument("--rounds", type=int, default=300, help="submits per project")
    parser.add_argument("--k", type=int, default=4)
    args = parser.parse_args()
    url = fresh_database(args.database_url)
    project_ids, user = seed(url, args.rounds, args.k)
    times = asyncio.run(measure(project_ids, user, args.rounds))
    backend = url.split(":", 1)[0].split("+", 1)[0]
    rows = []
    for name, pid in zip(("no questions", "5 questions"), project_ids, strict=True):
        ms = sorted(t * 1000 for t in times[pid][10:])  # the first few warm caches up
        rows.append(
            {
                "project": name,
                "backend": backend,
                "submits": len(ms),
                "p50_ms": statistics.median(ms),
                "p90_ms": ms[int(0.9 * len(ms))],
                "mean_ms": statistics.fmean(ms),
            }
        )
    ratio = rows[1]["p50_ms"] / rows[0]["p50_ms"]
    check_us = validation_only(args.k)
    print(table(rows, ["project", "backend", "submits", "p50_ms", "p90_ms", "mean_ms"]))
    print(f"p50 ratio (questions / none): {ratio:.3f}; answer validation alone: {check_us:.1f} µs")
    path = save(
        "questions_submit",
        {"k": args.k, "rows": rows, "p50_ratio": ratio, "validation_us": check_us},
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
