"""Assignment rules hold under concurrency: many threads, many labelers, one project."""

import threading
from collections import Counter

from sqlalchemy import func, select

from app.db import get_sessionmaker
from app.labeling import service
from app.labeling.models import Annotation, Assignment
from app.labeling.schemas import AnnotationIn
from app.projects.models import Project
from tests.helpers import ranking_items

PROMPTS, OVERLAP, LABELERS = 40, 3, 16


def test_concurrent_labelers_never_break_overlap_or_get_a_prompt_twice(
    factory, session, tmp_path, backend
) -> None:
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
