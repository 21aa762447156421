"""A retired prompt leaves what feeds training and the next round: `prompts` snapshots and
exports (PPO's prompts, a round's source), the prompts a generation run answers, and a next
round drawn from its project; its labels stay in every labels snapshot."""

import json

from sqlalchemy import select

from app.datasets import service as datasets_service
from app.datasets.schemas import SnapshotCreate
from app.labeling import service as labeling
from app.labeling.schemas import AnnotationIn
from app.projects.generated import missing_samples
from app.projects.models import Prompt
from app.prompts import service
from tests.helpers import ranking_items, row_id


def _pid(session, external_id: str) -> int:  # type: ignore[no-untyped-def]
    return session.scalar(select(Prompt.id).where(Prompt.external_id == external_id))


def test_a_retired_prompt_leaves_prompts_snapshots_exports_generation_and_rounds(
    client, factory, session, tmp_path, monkeypatch
) -> None:
    from app.config import get_settings
    from app.runs import rounds

    monkeypatch.setenv("RLHF_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    get_settings.cache_clear()
    project = factory.project(kind="ranking", k=2, overlap=1)
    factory.items(project, ranking_items(3, k=2), tmp_path)
    admin, ada = factory.user("admin"), factory.user()
    task = labeling.next_task(session=session, project=project, user=ada)
    labeling.submit(
        session=session,
        assignment_id=task.assignment_id,
        user=ada,
        body=AnnotationIn(ranking=[r.id for r in task.responses]),
    )
    p0 = _pid(session, "p0")
    assert row_id("prompt", task.prompt_id) == p0
    service.retire(session=session, project=project, by=admin, prompt_id=p0)
    session.commit()

    snapshot, _ = datasets_service.create_snapshot(
        session=session, project=project, data=SnapshotCreate(kind="prompts", split=1.0)
    )
    files = datasets_service.snapshot_files(snapshot=snapshot)
    rows = [json.loads(line) for line in files["train.jsonl"].read_text().splitlines()]
    assert rows == [{"prompt": "question 1"}, {"prompt": "question 2"}]
    exported = client.get(
        f"/api/v1/projects/{project.id}/export?kind=prompts", headers=admin.headers
    )
    assert [json.loads(x) for x in exported.text.splitlines()] == rows
    # its labels stay: the rankings snapshot still holds p0's ranking
    ranked, _ = datasets_service.create_snapshot(
        session=session, project=project, data=SnapshotCreate(kind="rankings", split=1.0)
    )
    assert ranked.train_rows == 1
    missing = missing_samples(
        session=session, project_id=project.id, model_id=1, model_name="m", n=1
    )
    assert sorted(missing) == [_pid(session, "p1"), _pid(session, "p2")]
    lines = rounds._prompt_lines(session, None, project.id)
    assert [line["id"] for line in lines] == ["p1", "p2"]
    get_settings.cache_clear()
