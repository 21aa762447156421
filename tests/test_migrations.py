"""The models and the migrations agree, and migrations run both ways."""

import os

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from app.cli import alembic_config
from app.models import Base
from tests.helpers import PG_URL, fresh_postgres_database, migrate


def _diff(url: str) -> list:
    engine = create_engine(url)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    engine.dispose()
    return diff


def test_autogenerate_finds_nothing(database_url: str) -> None:
    assert _diff(database_url) == []


def _round_trip(url: str) -> None:
    migrate(url)
    assert "annotations" in inspect(create_engine(url)).get_table_names()
    command.downgrade(alembic_config(), "base")
    assert "annotations" not in inspect(create_engine(url)).get_table_names()
    command.upgrade(alembic_config(), "head")
    assert _diff(url) == []


def test_upgrade_downgrade_upgrade_sqlite(tmp_path) -> None:
    _round_trip(f"sqlite:///{tmp_path / 'm.db'}")


@pytest.mark.skipif(not PG_URL, reason="RLHF_TEST_DATABASE_URL not set")
def test_upgrade_downgrade_upgrade_postgres() -> None:
    previous = os.environ.get("RLHF_DATABASE_URL")
    try:
        _round_trip(fresh_postgres_database("rlhf_migrations_check"))
    finally:
        if previous:
            os.environ["RLHF_DATABASE_URL"] = previous
