"""Assignment rules hold under concurrency: many threads, many labelers, one project."""

import threading
from collections import Counter

import pytest
from sqlalchemy import func, select

from app.db import get_sessionmaker
from app.labeling import service
from app.labeling.models import Annotation, Assignment
from app.labeling.schemas import AnnotationIn
from app.projects.models import Project
from tests.helpers import ranking_items

PROMPTS, OVERLAP, LABELERS = 40, 3, 16


@pytest.mark.parametrize("ahead", [False, True], ids=["one-task", "a-task-held-ahead"])
def test_concurrent_labelers_never_break_overlap_or_get_a_prompt_twice(
    factory, session, tmp_path, backend, ahead
) -> None:
    """With `ahead`, each labeler also holds the next task ready (as the labeling page does)
    while labeling the current one: a second lease that every rule counts."""
    project = factory.project(kind="ranking", k=2, overlap=OVERLAP)
    factory.items(project, ranking_items(PROMPTS, k=2), tmp_path)
    labelers = [factory.user() for _ in range(LABELERS)]
    acknowledged: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(LABELERS)

    def work(user) -> None:  # type: ignore[no-untyped-def]
        start.wait()
        try:
            with get_sessionmaker()() as s:
                mine = s.get(Project, project.id)
                while (task := service.next_task(session=s, project=mine, user=user)) is not None:
                    if ahead:
                        held = service.next_task(session=s, project=mine, user=user, ahead=True)
                        assert held is None or held.assignment_id != task.assignment_id
                    body = AnnotationIn(ranking=[r.id for r in task.responses])
                    annotation, created = service.submit(
                        session=s,
                        assignment_id=task.assignment_id,
                        user=user,
                        body=body,
                        idempotency_key=f"{user.id}-{task.assignment_id}",
                    )
                    assert created
                    acknowledged.append(annotation.id)
        except BaseException as exc:  # noqa: BLE001 — reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(u,)) for u in labelers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors[:3]

    # every slot filled exactly: PROMPTS × OVERLAP labels, none lost, none extra
    assert len(acknowledged) == PROMPTS * OVERLAP
    stored = set(session.scalars(select(Annotation.id)))
    assert stored == set(acknowledged)
    per_prompt = Counter(session.scalars(select(Annotation.prompt_id)))
    assert set(per_prompt.values()) == {OVERLAP}
    pairs = session.execute(select(Assignment.prompt_id, Assignment.user_id)).all()
    assert len(pairs) == len(set(pairs))
    assert session.scalar(select(func.count()).select_from(Assignment)) == PROMPTS * OVERLAP


def test_the_async_hot_path_keeps_the_rules_under_concurrency(
    factory, session, tmp_path, backend
) -> None:
    """The JSON API's path (asyncio engine, one-statement lease and store on PostgreSQL)."""
    import asyncio

    from app.db_async import dispose_async_engines
    from app.labeling import hot
    from app.memory import Memory

    project = factory.project(kind="ranking", k=2, overlap=OVERLAP)
    factory.items(project, ranking_items(PROMPTS, k=2), tmp_path)
    labelers = [factory.user() for _ in range(LABELERS)]
    acknowledged: list[int] = []

    memory = Memory()  # one web process's

    async def work(user) -> None:  # type: ignore[no-untyped-def]
        while task := await hot.next_task(project_id=project.id, user=user, memory=memory):
            annotation, created = await hot.submit(
                assignment_id=task.assignment_id,
                user=user,
                body=AnnotationIn(ranking=[r.id for r in task.responses]),
                idempotency_key=f"{user.id}-{task.assignment_id}",
                memory=memory,
            )
            assert created
            acknowledged.append(annotation.id)

    async def main() -> None:
        try:
            await asyncio.gather(*(work(u) for u in labelers))
        finally:
            await dispose_async_engines()

    asyncio.run(main())
    assert len(acknowledged) == PROMPTS * OVERLAP
    assert set(session.scalars(select(Annotation.id))) == set(acknowledged)
    per_prompt = Counter(session.scalars(select(Annotation.prompt_id)))
    assert set(per_prompt.values()) == {OVERLAP}
    pairs = session.execute(select(Assignment.prompt_id, Assignment.user_id)).all()
    assert len(pairs) == len(set(pairs))


def test_a_burst_of_first_requests_never_overfills_a_prompt(factory, session, tmp_path) -> None:
    """Many labelers asking at the same moment: each lease sees the others' commits."""
    import asyncio

    from app.auth import service as auth_service
    from app.db_async import dispose_async_engines
    from app.labeling import hot
    from app.memory import Memory

    project = factory.project(kind="ranking", k=2, overlap=1)
    factory.items(project, ranking_items(30, k=2), tmp_path)
    labelers = [  # no passwords: hashing 60 of them would dominate the test's time
        auth_service.create_user(session=session, email=f"burst{i}@example.com", role="labeler")
        for i in range(60)
    ]
    session.commit()

    async def main() -> None:
        try:
            memory = Memory()
            await asyncio.gather(
                *(hot.next_task(project_id=project.id, user=u, memory=memory) for u in labelers)
            )
        finally:
            await dispose_async_engines()

    for _ in range(4):  # a race shows up in some rounds only: try several
        asyncio.run(main())
        per_prompt = Counter(session.scalars(select(Assignment.prompt_id)))
        assert len(per_prompt) == 30 and set(per_prompt.values()) == {1}
        session.execute(Assignment.__table__.delete())
        session.commit()
