"""`rlhf snapshot`, `rlhf snapshots`, `rlhf leaderboard` and `rlhf exclude`."""

import json
from pathlib import Path

from typer.testing import CliRunner

from app.cli import app
from tests.helpers import annotate, prompts_of, ranking_items

runner = CliRunner()


def rlhf(*args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, list(args))


def test_snapshot_leaderboard_exclude(session, factory, tmp_path, monkeypatch) -> None:
    from app.config import get_settings

    monkeypatch.setenv("RLHF_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    get_settings.cache_clear()
    project = factory.project(name="cli ranks", kind="ranking", k=3)
    factory.items(project, ranking_items(10, k=3), tmp_path)
    labeler = factory.user()
    for pid, rids in prompts_of(session, project):
        annotate(session, project, pid, labeler, {"ranking": list(reversed(rids))})

    made = rlhf("snapshot", "cli ranks", "--kind", "pairs", "--split", "0.8", "--json")
    assert made.exit_code == 0, made.output
    first = json.loads(made.stdout)
    assert first["created"] and first["train_rows"] + first["test_rows"] == 30
    assert first["params"] == {
        "kind": "pairs",
        "split": 0.8,
        "method": "ranked-pairs",
        "sources": "human",
    }
    lines = Path(first["files"]["train.jsonl"]).read_text().splitlines()
    assert len(lines) == first["train_rows"]
    same = json.loads(rlhf("snapshot", str(project.id), "--kind", "pairs", "--split", "0.8",
                           "--json").stdout)  # fmt: skip
    assert not same["created"] and same["id"] == first["id"]
    human = rlhf("snapshot", "cli ranks", "--kind", "pairs", "--split", "0.8")
    assert "unchanged" in human.stdout

    listed = json.loads(rlhf("snapshots", "cli ranks", "--json").stdout)
    assert [s["id"] for s in listed] == [first["id"]]

    board = json.loads(rlhf("leaderboard", "cli ranks", "--rounds", "50", "--json").stdout)
    assert [r["model"] for r in board["rows"]] == ["m2", "m1", "m0"]
    assert "m2" in rlhf("leaderboard", "cli ranks", "--rounds", "50").stdout

    out = rlhf("exclude", labeler.email, "--project", "cli ranks", "--json")
    assert out.exit_code == 0, out.output
    empty = json.loads(rlhf("leaderboard", "cli ranks", "--rounds", "50", "--json").stdout)
    assert empty["rows"] == [] and empty["comparisons"] == 0
    assert rlhf("exclude", labeler.email, "--project", "cli ranks", "--undo").exit_code == 0
    again = rlhf("exclude", labeler.email, "--project", "cli ranks", "--undo")
    assert again.exit_code == 2 and f"{labeler.email} is not excluded there" in again.stderr
    nobody = rlhf("exclude", "nobody@example.com")
    assert (
        nobody.exit_code == 2 and "no user with id or email 'nobody@example.com'" in nobody.stderr
    )

    bad = rlhf("snapshot", "cli ranks", "--kind", "nope")
    assert bad.exit_code == 2 and "--kind" in bad.stderr


def test_snapshot_with_labelers_names_them_per_row(session, factory, tmp_path, monkeypatch) -> None:
    from app.config import get_settings
    from app.datasets import service
    from app.datasets.schemas import SnapshotCreate
    from app.labeling import service as labeling
    from app.labeling.schemas import AnnotationIn
    from tests.helpers import ranking_items

    monkeypatch.setenv("RLHF_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    get_settings.cache_clear()
    project = factory.project(kind="ranking", k=2, overlap=2)
    factory.items(project, ranking_items(2, k=2), tmp_path)
    ada, bob = factory.user(), factory.user()
    for user in (ada, bob):
        while task := labeling.next_task(session=session, project=project, user=user):
            ids = [r.id for r in task.responses]
            labeling.submit(
                session=session,
                assignment_id=task.assignment_id,
                user=user,
                body=AnnotationIn(ranking=ids),
            )
    plain, _ = service.create_snapshot(
        session=session, project=project, data=SnapshotCreate(kind="rankings", split=1.0)
    )
    named, created = service.create_snapshot(
        session=session,
        project=project,
        data=SnapshotCreate(kind="rankings", split=1.0, with_labelers=True),
    )
    assert created and named.content_hash != plain.content_hash
    read = lambda s: [  # noqa: E731
        json.loads(line)
        for line in service.snapshot_files(snapshot=s)["train.jsonl"].read_text().splitlines()
    ]
    assert all("labelers" not in row for row in read(plain))
    rows = read(named)
    assert [row["labelers"] for row in rows] == [[ada.email, bob.email]] * 2
    assert all(len(row["annotated_at"]) == 2 for row in rows)
    each = rlhf(
        "snapshot",
        str(project.id),
        "--kind",
        "pairs",
        "--method",
        "all",
        "--split",
        "1",
        "--with-labelers",
        "--json",
    )
    assert each.exit_code == 0, each.output
    pairs = service.get_snapshot(session=session, snapshot_id=json.loads(each.stdout)["id"])
    assert sorted(row["labelers"][0] for row in read(pairs)) == sorted([ada.email, bob.email] * 2)


def test_snapshot_of_a_kind_the_project_cannot_fill_exits_2(factory, tmp_path, monkeypatch) -> None:
    from app.config import get_settings

    monkeypatch.setenv("RLHF_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    get_settings.cache_clear()
    factory.project(name="cli writes", kind="demonstration", k=1)
    refused = rlhf("snapshot", "cli writes", "--kind", "pairs")
    assert refused.exit_code == 2
    assert "a pairs snapshot of it would have no rows" in refused.stderr
    assert not (tmp_path / "artifacts" / "snapshots").exists() or not any(
        p.name.isdigit() for p in (tmp_path / "artifacts" / "snapshots").iterdir()
    )
    get_settings.cache_clear()
