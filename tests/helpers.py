"""Helpers shared by the tests (the fixtures live in conftest.py)."""

import os

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app.labeling import public

PG_URL = os.environ.get("RLHF_TEST_DATABASE_URL")
BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])


def reset_caches() -> None:
    from app.config import get_settings
    from app.db import get_engine, get_sessionmaker

    if get_engine.cache_info().currsize:
        get_engine().dispose()
    for cached in (get_settings, get_engine, get_sessionmaker):
        cached.cache_clear()


def migrate(url: str, revision: str = "head") -> None:
    from alembic import command

    from app.cli import alembic_config

    os.environ["RLHF_DATABASE_URL"] = url
    reset_caches()
    command.upgrade(alembic_config(), revision)


def fresh_postgres_database(name: str) -> str:
    """Create (or re-create) a PostgreSQL database next to the CI one; returns its URL."""
    assert PG_URL
    url = make_url(PG_URL)
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


def ranking_items(n: int, k: int = 4, prefix: str = "p") -> list[dict]:
    return [
        {
            "id": f"{prefix}{i}",
            "prompt": f"question {i}",
            "responses": [{"text": f"answer {i}.{j}", "model": f"m{j}"} for j in range(k)],
        }
        for i in range(n)
    ]


TRICKY = ["100% sure: %s %b %% %", "ctrl \x01\x1f del \x7f", "sep \u2028 \u2029", 'q " b \\ /']
"""Texts that trip encoders and templates: %-format characters, control characters, line
separators, quotes and backslashes."""

TIE_SHAPES = [
    lambda r: r[::-1],
    lambda r: [[r[0], r[1]], r[2], r[3]],
    lambda r: [[x] for x in r],
    lambda r: [r[3], [r[2], r[1], r[0]]],
    lambda r: [list(r)],  # everything tied: no preference
]
"""Rankings of four response ids: flat, with a tie, singleton groups, a three-way tie, and
all tied."""


def tricky_items(n: int, conversation_every: int, suffix: str = "") -> list[dict]:
    """n ranking items of four responses holding `TRICKY` texts; every `conversation_every`-th
    prompt is a conversation (system and user turns), the others strings."""
    items = []
    for i in range(n):
        text = TRICKY[i % len(TRICKY)]
        chat = [{"role": "system", "content": "be kind"}, {"role": "user", "content": text}]
        prompt = chat if i % conversation_every == 0 else f"prompt {i} {text}{suffix}"
        responses = [f"{TRICKY[(i + j) % len(TRICKY)]} {j}" for j in range(4)]
        items.append({"id": f"t{i}", "prompt": prompt, "responses": responses})
    return items


def prompts_of(session, project) -> list[tuple[int, list[int]]]:  # type: ignore[no-untyped-def]
    """(prompt id, response ids in import order) of every prompt, in id order."""
    from sqlalchemy import select

    from app.projects.models import Prompt, Response

    out = []
    for pid in session.scalars(
        select(Prompt.id).where(Prompt.project_id == project.id).order_by(Prompt.id)
    ):
        rids = session.scalars(
            select(Response.id).where(Response.prompt_id == pid).order_by(Response.position)
        )
        out.append((pid, list(rids)))
    return out


def annotate(session, project, prompt_id, user, payload, kind="ranking", supersedes=None):  # type: ignore[no-untyped-def]
    """Store an annotation directly (user None: an imported one); returns it."""
    from app.labeling.models import Annotation

    annotation = Annotation(
        project_id=project.id,
        prompt_id=prompt_id,
        user_id=user.id if user is not None else None,
        kind=kind,
        payload=payload,
        source="labeler" if user is not None else "import",
        supersedes_id=supersedes.id if supersedes is not None else None,
    )
    session.add(annotation)
    session.commit()
    return annotation


def judge(session, model: str = "tiny-rm"):  # type: ignore[no-untyped-def]
    """The judge annotator of `model` (`judge:<model>`, users.source "ai"), as a judge run
    stores it: a labeler who cannot sign in (no password, no token)."""
    from sqlalchemy import select

    from app.auth.models import Role, User

    email = f"judge:{model}"
    found = session.scalar(select(User).where(User.email == email))
    if found is None:
        found = User(email=email, role=Role.labeler, password_hash=None, source="ai")
        session.add(found)
        session.commit()
    return found


def judge_label(  # type: ignore[no-untyped-def]
    session,
    project,
    prompt_id,
    judge_user,
    payload,
    kind="ranking",
    shown=None,
    ago=None,
    accepted=False,
):
    """Store a judge's label as a judge run does: the judge's assignment of the prompt (done,
    showing `shown` or every response; counted toward overlap only if `accepted`, as
    `judge_accepts` would decide) and its annotation, source "ai", made `ago` (a timedelta)
    before now; returns the annotation."""
    from sqlalchemy import select

    from app.base import utcnow
    from app.labeling.models import Annotation, AnnotationSource, Assignment, AssignmentStatus
    from app.projects.models import Response

    when = utcnow() - ago if ago is not None else utcnow()
    if shown is None:
        shown = list(
            session.scalars(
                select(Response.id)
                .where(Response.prompt_id == prompt_id)
                .order_by(Response.position)
            )
        )
    assignment = Assignment(
        project_id=project.id,
        prompt_id=prompt_id,
        user_id=judge_user.id,
        status=AssignmentStatus.done,
        response_ids=shown,
        expires_at=when,
        created_at=when,
        completed_at=when,
        counted=accepted,
    )
    session.add(assignment)
    session.flush()
    annotation = Annotation(
        project_id=project.id,
        prompt_id=prompt_id,
        assignment_id=assignment.id,
        user_id=judge_user.id,
        kind=kind,
        payload=payload,
        source=AnnotationSource.ai,
        created_at=when,
    )
    session.add(annotation)
    session.commit()
    return annotation


def row_id(kind: str, public_id: int) -> int:
    """The row id behind an id a labeler was shown (`app.labeling.public`)."""
    return public.decode(public.Kind(kind), public_id)


def public_id(kind: str, row: int) -> int:
    """The id a labeler is shown for a row id (`app.labeling.public`)."""
    return public.encode(public.Kind(kind), row)


def as_shown(annotation) -> dict:  # type: ignore[no-untyped-def]
    """A stored annotation's payload with the public ids its labeler saw and sent."""
    return public.to_public(annotation.payload, annotation.flags or {})[0]
