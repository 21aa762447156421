"""Fixtures: every database test runs on SQLite, and on PostgreSQL when
RLHF_TEST_DATABASE_URL is set (CI sets it)."""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

os.environ.setdefault("RLHF_DEV", "1")
os.environ.setdefault("RLHF_SECRET_KEY", "test-secret-key-for-the-suite-only-0123456789")

from tests.helpers import BACKENDS, PG_URL, fresh_postgres_database, migrate, reset_caches  # noqa: E402


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated database for the session, one per backend."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
    else:
        url = fresh_postgres_database(make_url(PG_URL).database + "_suite")  # type: ignore[operator]
    migrate(url)
    return url


def _wipe(engine: Engine) -> None:
    from app.models import Base

    tables = list(reversed(Base.metadata.sorted_tables))
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            names = ", ".join(t.name for t in tables)
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                conn.execute(table.delete())


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """The app's engine on an empty, migrated database."""
    from app.db import get_engine

    os.environ["RLHF_DATABASE_URL"] = database_url
    reset_caches()
    engine = get_engine()
    _wipe(engine)
    yield engine


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    """The test's own session; on SQLite its reads do not hold the write lock the app needs."""
    from app.db import make_engine

    own = make_engine(str(engine.url), sqlite_immediate=False)
    with Session(own, expire_on_commit=False) as session:
        yield session
    own.dispose()


@pytest.fixture
def backend(engine: Engine) -> str:
    return engine.dialect.name


@pytest.fixture
def app(engine: Engine):  # type: ignore[no-untyped-def]
    from app.main import create_app

    return create_app()


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    with TestClient(app) as client:
        yield client


class Factory:
    """Makes users (with API tokens) and projects directly through the services."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.count = 0

    def user(self, role: str = "labeler", password: str = "correct-horse-battery"):  # type: ignore[no-untyped-def]
        from app.auth import service

        self.count += 1
        user = service.create_user(
            session=self.session,
            email=f"{role}{self.count}@example.com",
            role=role,
            password=password,
        )
        _, token = service.create_token(session=self.session, user=user)
        self.session.commit()
        user.token = token  # type: ignore[attr-defined]
        user.headers = {"Authorization": f"Bearer {token}"}  # type: ignore[attr-defined]
        return user

    def project(self, **fields):  # type: ignore[no-untyped-def]
        from app.projects import service
        from app.projects.schemas import ProjectCreate

        self.count += 1
        fields.setdefault("name", f"project {self.count}")
        fields.setdefault("kind", "ranking")
        project = service.create(session=self.session, data=ProjectCreate(**fields))
        self.session.commit()
        return project

    def items(self, project, lines: list[dict], tmp_path: Path, **kwargs):  # type: ignore[no-untyped-def]
        import json

        from app.projects import importer

        path = tmp_path / f"items-{self.count}.jsonl"
        self.count += 1
        path.write_text("".join(json.dumps(line) + "\n" for line in lines))
        return importer.import_file(session=self.session, project=project, path=path, **kwargs)


@pytest.fixture
def factory(session: Session) -> Factory:
    return Factory(session)
