"""Snapshots without train or test rows say so, and a run on 0 train rows is refused early."""

from sqlalchemy import func, select

from app.datasets import service as datasets_service
from app.datasets.schemas import SnapshotCreate
from app.runs.models import TrainingRun
from tests.runs.conftest import label_all
from tests.test_pages import login


def _sft_project(factory, session, tmp_path, n: int):  # type: ignore[no-untyped-def]
    project = factory.project(kind="demonstration", k=1)
    factory.items(project, [{"id": f"t{i}", "prompt": f"hi {i}"} for i in range(n)], tmp_path)
    label_all(session, project, factory.user(), lambda t: {"demonstration": "hello"})
    return project


def test_a_tiny_project_always_has_train_rows(factory, session, tmp_path, artifacts) -> None:
    project = _sft_project(factory, session, tmp_path, 1)
    for split in (0.9, 0.01):
        snapshot, _ = datasets_service.create_snapshot(
            session=session, project=project, data=SnapshotCreate(kind="sft", split=split)
        )
        assert (snapshot.train_rows, snapshot.test_rows) == (1, 0)
        files = datasets_service.snapshot_files(snapshot=snapshot)
        assert files["train.jsonl"].read_text().count("\n") == 1
        assert files["test.jsonl"].read_text() == ""


def test_a_run_on_0_train_rows_is_refused_before_it_is_queued(
    client, factory, session, tmp_path, artifacts
) -> None:
    project = factory.project(kind="demonstration", k=1)  # nothing labeled: 0 rows
    empty, _ = datasets_service.create_snapshot(
        session=session, project=project, data=SnapshotCreate(kind="sft")
    )
    admin = factory.user("admin")
    answer = client.post(
        "/api/v1/runs",
        json={"kind": "sft", "snapshot_id": empty.id, "model": "m"},
        headers=admin.headers,
    )
    assert answer.status_code == 422
    assert answer.json()["field"] == "snapshot_id" and "0 train rows" in answer.json()["detail"]
    assert session.scalar(select(func.count()).select_from(TrainingRun)) == 0

    token = login(client, admin)
    form = client.get(f"/admin/runs/new?snapshot={empty.id}")
    assert "has 0 train rows: it has no rows at all, so there is nothing to train on" in form.text
    posted = client.post(
        "/admin/runs",
        data={"csrf_token": token, "kind": "sft", "snapshot_id": empty.id, "model": "m"},
    )
    assert posted.status_code == 422 and "0 train rows" in posted.text
    for answer in (form, posted):
        assert answer.text.count("nothing to train on") == 1  # said once, in one wording
        assert "train fraction" not in answer.text  # a bigger train fraction cannot help
    page = client.get(f"/admin/projects/{project.id}/snapshots")
    assert "0 train rows: nothing to train on" in page.text
    assert f"/admin/runs/new?snapshot={empty.id}" not in page.text
    assert "0 train rows: nothing to train on" in client.get("/admin/snapshots").text


def test_0_test_rows_are_named_on_the_snapshot_page_and_the_form(
    client, factory, session, tmp_path, artifacts
) -> None:
    project = _sft_project(factory, session, tmp_path, 3)
    snapshot, _ = datasets_service.create_snapshot(
        session=session, project=project, data=SnapshotCreate(kind="sft", split=1.0)
    )
    assert snapshot.test_rows == 0
    login(client, factory.user("admin"))
    assert (
        "0 test rows: runs on it report no eval metrics"
        in client.get(f"/admin/projects/{project.id}/snapshots").text
    )
    assert (
        "0 test rows: the run trains, but reports no eval metrics"
        in client.get(f"/admin/runs/new?snapshot={snapshot.id}").text
    )
