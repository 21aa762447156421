"""Fixtures for training runs: tiny models, labeled projects and their snapshots."""

from pathlib import Path

import pytest

from app.datasets import service as datasets_service
from app.datasets.schemas import SnapshotCreate
from app.labeling import service as labeling_service
from app.labeling.schemas import AnnotationIn


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny random models saved with save_pretrained, as a user's models would be."""
    from trainer.tiny import build_all

    return build_all(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def policy_dir(tiny_models: dict[str, Path]) -> str:
    """A causal LM's directory: what a policy (sft, dpo, ppo, generate) starts from."""
    return str(tiny_models["causal-lm"])


@pytest.fixture(scope="session")
def reward_dir(tiny_models: dict[str, Path]) -> str:
    """A one-label sequence classifier's directory: a reward model (and an rm backbone)."""
    return str(tiny_models["encoder"])


@pytest.fixture
def artifacts(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    from app.config import get_settings

    monkeypatch.setenv("RLHF_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    monkeypatch.setenv("RLHF_RUN_STALE_SECONDS", "3")
    monkeypatch.setenv("RLHF_WORKER_HEARTBEAT_SECONDS", "0.5")
    monkeypatch.setenv("RLHF_RUN_RETRY_SECONDS", "0.2")
    get_settings.cache_clear()
    yield tmp_path / "artifacts"
    get_settings.cache_clear()


def label_all(session, project, labeler, body_for) -> int:  # type: ignore[no-untyped-def]
    """Label every prompt a labeler can get; returns how many."""
    n = 0
    while task := labeling_service.next_task(session=session, project=project, user=labeler):
        labeling_service.submit(
            session=session,
            assignment_id=task.assignment_id,
            user=labeler,
            body=AnnotationIn(**body_for(task)),
        )
        n += 1
    return n


@pytest.fixture
def sft_snapshot(factory, session, tmp_path, artifacts):  # type: ignore[no-untyped-def]
    project = factory.project(kind="demonstration", k=1)
    items = [{"id": f"d{i}", "prompt": f"say hello number {i}"} for i in range(24)]
    factory.items(project, items, tmp_path)
    labeler = factory.user()
    label_all(session, project, labeler, lambda t: {"demonstration": "hello there, friend"})
    snapshot, _ = datasets_service.create_snapshot(
        session=session, project=project, data=SnapshotCreate(kind="sft", split=0.8)
    )
    return snapshot


@pytest.fixture
def rankings_snapshot(factory, session, tmp_path, artifacts):  # type: ignore[no-untyped-def]
    project = factory.project(kind="ranking", k=3)
    items = [
        {
            "id": f"r{i}",
            "prompt": f"question {i}",
            "responses": [f"good answer {i} python", f"fine answer {i}", f"bad {i}"],
        }
        for i in range(24)
    ]
    factory.items(project, items, tmp_path)
    labeler = factory.user()

    def best_first(task):  # type: ignore[no-untyped-def]
        order = sorted(task.responses, key=lambda r: ("good" not in r.text, "bad" in r.text))
        return {"ranking": [r.id for r in order]}

    label_all(session, project, labeler, best_first)
    snapshot, _ = datasets_service.create_snapshot(
        session=session, project=project, data=SnapshotCreate(kind="rankings", split=0.8)
    )
    return snapshot
