"""Ranking candidate next turns at any assistant turn of a conversation."""

import json

import pytest

from app.datasets import service
from app.datasets.schemas import SnapshotCreate
from app.projects.importer import ImportFailed
from app.projects.models import Prompt
from tests.helpers import prompts_of

CONVERSATION = [
    {"role": "system", "content": "be kind"},
    {"role": "user", "content": "hi"},
    {"role": "assistant", "content": "hello!"},
    {"role": "user", "content": "a joke?"},
    {"role": "assistant", "content": "why did the chicken…"},
]


@pytest.fixture
def artifacts(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    from app.config import get_settings

    monkeypatch.setenv("RLHF_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    get_settings.cache_clear()
    yield tmp_path / "artifacts"
    get_settings.cache_clear()


def _line(**extra) -> dict:  # type: ignore[no-untyped-def]
    return {
        "id": "chat1",
        "messages": CONVERSATION,
        "candidates": [
            {"turn": 2, "responses": ["hey there", {"text": "go away", "model": "m1"}]},
            {"turn": 4, "responses": ["knock knock", "no"]},
        ],
    } | extra


def test_candidates_attach_at_any_assistant_turn(
    client, session, factory, tmp_path, artifacts
) -> None:
    project = factory.project(kind="ranking", k=2)
    report = factory.items(project, [_line()], tmp_path)
    assert report.imported == 2 and report.lines == 1
    prompts = session.query(Prompt).filter_by(project_id=project.id).order_by(Prompt.id).all()
    assert [p.external_id for p in prompts] == ["chat1:turn2", "chat1:turn4"]
    assert [p.messages for p in prompts] == [CONVERSATION[:2], CONVERSATION[:4]]
    assert [p.meta["turn"] for p in prompts] == [2, 4]

    # A labeler ranks the candidates of the middle turn: the task shows the conversation up to it.
    labeler = factory.user()
    tasks = []
    for _ in range(2):
        task = client.get(f"/api/v1/projects/{project.id}/tasks/next", headers=labeler.headers)
        tasks.append(task.json())
        ids = [r["id"] for r in task.json()["responses"]]
        submitted = client.post(
            f"/api/v1/assignments/{task.json()['assignment_id']}/annotations",
            json={"ranking": ids},
            headers=labeler.headers,
        )
        assert submitted.status_code == 201
    assert [t["messages"] for t in tasks] == [CONVERSATION[:2], CONVERSATION[:4]]

    made, _ = service.create_snapshot(
        session=session, project=project, data=SnapshotCreate(kind="pairs", split=1)
    )
    rows = [
        json.loads(line)
        for line in service.snapshot_files(snapshot=made)["train.jsonl"].read_text().splitlines()
    ]
    assert sorted(r["prompt"] for r in rows) == [CONVERSATION[:2], CONVERSATION[:4]]
    for row in rows:
        assert row["chosen"][0]["role"] == "assistant" and len(row["chosen"]) == 1
    # Importing the same file again adds nothing.
    assert factory.items(project, [_line()], tmp_path).imported == 0


@pytest.mark.parametrize(
    ("candidates", "words"),
    [
        ([{"turn": 3, "responses": ["a", "b"]}], "messages[3] is a user turn"),
        ([{"turn": 5, "responses": ["a", "b"]}], "ends with the assistant's turn"),
        ([{"turn": 0, "responses": ["a", "b"]}], "candidates[0].turn must be a message index"),
        ([{"turn": 9, "responses": ["a", "b"]}], "from 1 to 5"),
        ([{"turn": 2, "responses": ["a", "b"]}, {"turn": 2, "responses": ["c", "d"]}], "already"),
        ([{"turn": 2, "responses": ["a", 7]}], "candidates[0].responses[1] must be a string"),
        ([{"turn": 2, "responses": ["a"]}], "at least 2"),
        ([], "non-empty list"),
    ],
)
def test_bad_candidates_are_refused_naming_the_line(
    session, factory, tmp_path, candidates, words
) -> None:
    project = factory.project(kind="ranking", k=2)
    with pytest.raises(ImportFailed) as failed:
        factory.items(project, [_line(candidates=candidates)], tmp_path)
    assert "line 1" in str(failed.value) and words in str(failed.value)
    assert prompts_of(session, project) == []  # nothing half-imported


def test_responses_beside_candidates_are_refused(session, factory, tmp_path) -> None:
    project = factory.project(kind="ranking", k=2)
    with pytest.raises(ImportFailed, match='"responses" cannot be given with "candidates"'):
        factory.items(project, [_line(responses=["x", "y"])], tmp_path)
