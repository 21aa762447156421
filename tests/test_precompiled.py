"""app/precompiled.py: the hot path's statements give the same rows as SQLAlchemy's execute."""

import asyncio
from datetime import timedelta

from sqlalchemy import select

from app import precompiled
from app.base import utcnow
from app.labeling import submitting
from app.labeling.models import Assignment
from app.projects import service as project_service
from app.projects.models import Prompt
from tests.helpers import ranking_items


def test_precompiled_rows_equal_sqlalchemys(factory, session, tmp_path, backend) -> None:  # type: ignore[no-untyped-def]
    """JSON, timestamps, booleans and literal values bound in the statement, on the asyncio
    engine (asyncpg on PostgreSQL: precompiled; SQLite: SQLAlchemy's own execute)."""
    from app.db_async import dispose_async_engines, get_async_engine, read_connection

    project = factory.project(kind="ranking", k=2, overlap=1, criteria=["unsafe"])
    factory.items(project, ranking_items(2, k=2), tmp_path)
    labeler = factory.user()
    prompt_id = session.scalars(select(Prompt.id).where(Prompt.project_id == project.id)).first()
    session.add(
        Assignment(
            project_id=project.id,
            prompt_id=prompt_id,
            user_id=labeler.id,
            status="leased",
            response_ids=[2, 1],
            expires_at=utcnow() + timedelta(hours=1),
        )
    )
    session.commit()
    assignment_id = session.scalars(select(Assignment.id)).one()
    statements = [
        (
            submitting._assignment_query(True),
            {
                "p_assignment_id": assignment_id,
                "p_user_id": labeler.id,
                "p_key": "k",
                "p_is_admin": False,
            },
        ),
        (
            project_service.labeling_query(),
            project_service.labeling_parameters(project_id=project.id, user=labeler),
        ),
    ]

    def both(conn):  # type: ignore[no-untyped-def]
        out = []
        for statement, parameters in statements:
            typed = conn.execute(statement, parameters).mappings().all()
            quick = precompiled.execute(conn, statement, parameters).mappings().all()
            out.append((typed, quick))
        return out

    async def main():  # type: ignore[no-untyped-def]
        try:
            async with read_connection(get_async_engine()) as conn:
                return await conn.run_sync(both), conn.dialect.driver
        finally:
            await dispose_async_engines()

    results, driver = asyncio.run(main())
    assert driver == ("asyncpg" if backend == "postgresql" else "aiosqlite")
    for typed, quick in results:
        assert typed and [dict(r) for r in typed] == [dict(r) for r in quick]
    row = results[0][1][0]
    assert row["response_ids"] == [2, 1] and row["expires_at"].tzinfo is not None
    assert row["replay"] is None and row["criteria"] == ["unsafe"]
