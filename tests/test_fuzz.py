"""Schemathesis over the whole OpenAPI description: no 5xx, nothing that breaks the schema."""

import os

import pytest
from sqlalchemy import update

from tests.fuzz_api import fuzz
from tests.helpers import ranking_items

EXAMPLES = int(os.environ.get("RLHF_FUZZ_EXAMPLES", "2"))


@pytest.fixture
def fuzz_world(app, factory, session, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    """An admin and a labeler with tokens, and a project of each kind with items."""
    from app.auth.models import ApiToken, User

    monkeypatch.setenv("RLHF_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    admin = factory.user("admin")
    labeler = factory.user("labeler")
    for kind in ("ranking", "rating", "demonstration"):
        project = factory.project(kind=kind, k=2 if kind == "ranking" else 1)
        factory.items(project, ranking_items(5, k=2, prefix=kind), tmp_path)

    def repair() -> None:
        session.execute(update(ApiToken).values(revoked_at=None))
        session.execute(
            update(User).where(User.id == admin.id).values(is_active=True, role="admin")
        )
        session.execute(
            update(User).where(User.id == labeler.id).values(is_active=True, role="labeler")
        )
        session.commit()

    return {"admin": admin.token, "labeler": labeler.token}, repair


def test_fuzz_finds_no_server_error_and_no_schema_break(app, fuzz_world):  # type: ignore[no-untyped-def]
    tokens, repair = fuzz_world
    tally = fuzz(app, tokens, examples=EXAMPLES, seed_value=12, repair=repair)
    print(tally.summary())
    assert tally.requests > 0
    assert not tally.failures, tally.summary()
