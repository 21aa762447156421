"""KTO snapshots from each source, and preference strength as the `margin` of pairs."""

import json

import pytest
from typer.testing import CliRunner

from app.datasets import export, service
from app.datasets.schemas import SnapshotCreate
from app.projects.strength import DEFAULT_STRENGTH_SCALE
from tests.helpers import annotate, prompts_of, ranking_items


@pytest.fixture
def artifacts(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    from app.config import get_settings

    monkeypatch.setenv("RLHF_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    get_settings.cache_clear()
    yield tmp_path / "artifacts"
    get_settings.cache_clear()


def export_rows(**kwargs):  # type: ignore[no-untyped-def]
    """Every row of the raw export, its batches joined."""
    return [row for batch in export.row_batches(**kwargs) for row in batch]


def _rows(snapshot) -> list[dict]:  # type: ignore[no-untyped-def]
    files = service.snapshot_files(snapshot=snapshot)
    return [json.loads(line) for line in files["train.jsonl"].read_text().splitlines()]


def _kto(session, project, **params) -> list[tuple[str, bool]]:  # type: ignore[no-untyped-def]
    data = SnapshotCreate(kind="kto", split=1, **params)
    made, _ = service.create_snapshot(session=session, project=project, data=data)
    rows = _rows(made)
    assert all(set(r) == {"prompt", "completion", "label", "source"} for r in rows)
    return sorted((r["completion"], r["label"]) for r in rows)


def test_kto_from_thumbs(session, factory, tmp_path, artifacts) -> None:
    project = factory.project(kind="rating", k=3, rating_scale="thumbs")
    factory.items(project, ranking_items(1, k=3), tmp_path)
    (pid, (a, b, c)), = prompts_of(session, project)  # fmt: skip
    scores = {str(a): 1, str(b): -1, str(c): 1}
    annotate(session, project, pid, factory.user(), {"scores": scores}, kind="rating")
    other = {str(a): 1, str(b): -1, str(c): -1}  # c: one 👍 one 👎, mean 0: left out
    annotate(session, project, pid, factory.user(), {"scores": other}, kind="rating")
    assert _kto(session, project) == [("answer 0.0", True), ("answer 0.1", False)]
    assert _kto(session, project, method="all") == [
        ("answer 0.0", True), ("answer 0.0", True), ("answer 0.1", False), ("answer 0.1", False),
        ("answer 0.2", False), ("answer 0.2", True),
    ]  # fmt: skip


def test_kto_from_a_score_threshold(session, factory, tmp_path, artifacts) -> None:
    project = factory.project(kind="rating", k=4, rating_scale="0-5")
    factory.items(project, ranking_items(1, k=4), tmp_path)
    (pid, rids), = prompts_of(session, project)  # fmt: skip
    scores = {str(rid): s for rid, s in zip(rids, (5, 4, 3, 2), strict=True)}
    annotate(session, project, pid, factory.user(), {"scores": scores}, kind="rating")
    # Default: ≥ 4 desirable, ≤ 2 undesirable, 3 left out.
    assert _kto(session, project) == [
        ("answer 0.0", True), ("answer 0.1", True), ("answer 0.3", False)
    ]  # fmt: skip
    assert _kto(session, project, desirable_at=5, undesirable_at=3) == [
        ("answer 0.0", True), ("answer 0.2", False), ("answer 0.3", False)
    ]  # fmt: skip
    with pytest.raises(ValueError, match="undesirable_at must be below desirable_at"):
        SnapshotCreate(kind="kto", desirable_at=2, undesirable_at=3)


def test_kto_export_labels_ratings_as_the_snapshot_of_every_label(
    session, factory, tmp_path, artifacts
) -> None:
    """A 👍/👎 reads the same however it was stored (1/-1 by labelers; True/False or
    "up"/"down" from imports): the export's KTO labels are those of the kto snapshot of every
    label, row for row."""
    project = factory.project(kind="rating", k=2, rating_scale="thumbs")
    factory.items(project, ranking_items(1, k=2), tmp_path)
    (pid, (a, b)), = prompts_of(session, project)  # fmt: skip
    for up, down in ((1, -1), (True, False), ("up", "down")):
        scores = {str(a): up, str(b): down}
        annotate(session, project, pid, None, {"scores": scores}, kind="rating")
    exported = [
        (r["completion"], r["label"])
        for r in export_rows(session=session, project=project, kind="kto")
    ]
    assert exported == [("answer 0.0", True), ("answer 0.1", False)] * 3
    assert sorted(exported) == _kto(session, project, method="all")


@pytest.mark.parametrize("method", ["ranked-pairs", "all"])
def test_kto_from_rankings_top_and_bottom(session, factory, tmp_path, artifacts, method) -> None:
    project = factory.project(kind="ranking", k=4)
    factory.items(project, ranking_items(1, k=4), tmp_path)
    (pid, (a, b, c, d)), = prompts_of(session, project)  # fmt: skip
    annotate(session, project, pid, factory.user(), {"ranking": [[a, b], c, d]})
    rows = _kto(session, project, method=method)
    assert rows == [("answer 0.0", True), ("answer 0.1", True), ("answer 0.3", False)]


def test_kto_of_a_demonstration_project_is_refused(session, factory, artifacts) -> None:
    from app.errors import Invalid

    project = factory.project(kind="demonstration", k=1)
    with pytest.raises(Invalid, match="a kto snapshot of it would have no rows") as refused:
        service.create_snapshot(session=session, project=project, data=SnapshotCreate(kind="kto"))
    assert refused.value.field == "kind"
    with pytest.raises(Invalid, match="kto export needs a ranking or rating project"):
        export.row_batches(session=session, project=project, kind="kto")


def test_rlhf_snapshot_kind_kto(session, factory, tmp_path, artifacts) -> None:
    from app.cli import app as cli

    project = factory.project(kind="ranking", k=2)
    factory.items(project, ranking_items(2, k=2), tmp_path)
    for pid, (a, b) in prompts_of(session, project):
        annotate(session, project, pid, factory.user(), {"ranking": [b, a]})
    result = CliRunner().invoke(cli, ["snapshot", project.name, "--kind", "kto", "--json"])
    assert result.exit_code == 0, result.output
    made = json.loads(result.output)
    assert made["kind"] == "kto" and made["train_rows"] + made["test_rows"] == 4
    assert made["params"]["desirable_at"] == 4.0
    kto = export_rows(session=session, project=project, kind="kto")
    assert sorted((r["completion"], r["label"]) for r in kto) == [
        ("answer 0.0", False), ("answer 0.1", True), ("answer 1.0", False), ("answer 1.1", True)
    ]  # fmt: skip


@pytest.fixture
def strong(session, factory, tmp_path):  # type: ignore[no-untyped-def]
    project = factory.project(kind="ranking", k=2, strength_scale=DEFAULT_STRENGTH_SCALE)
    factory.items(project, ranking_items(1, k=2), tmp_path)
    return project


def test_strength_is_the_margin_of_pairs(session, factory, strong, artifacts) -> None:
    """Per annotation (method all) the margin is the level's; in a consensus the mean of the
    labelers' signed margins (a tie counts 0, an opposite choice its margin negated)."""
    (pid, (a, b)), = prompts_of(session, strong)  # fmt: skip
    annotate(session, strong, pid, factory.user(), {"ranking": [a, b], "strength": 3})  # 1
    annotate(session, strong, pid, factory.user(), {"ranking": [a, b], "strength": 1})  # 1/3
    annotate(session, strong, pid, factory.user(), {"ranking": [b, a], "strength": 2})  # -2/3
    annotate(session, strong, pid, factory.user(), {"ranking": [[a, b]]})  # 0
    each, _ = service.create_snapshot(
        session=session, project=strong, data=SnapshotCreate(kind="pairs", method="all", split=1)
    )
    rows = _rows(each)
    assert [(r["chosen"], r["margin"]) for r in rows] == [
        ("answer 0.0", 1.0),
        ("answer 0.0", 1 / 3),
        ("answer 0.1", 2 / 3),
    ]  # fmt: skip (the tie gives no pair)
    consensus, _ = service.create_snapshot(
        session=session, project=strong, data=SnapshotCreate(kind="pairs", split=1)
    )
    (row,) = _rows(consensus)
    assert row["chosen"] == "answer 0.0"
    assert row["margin"] == pytest.approx((1 + 1 / 3 - 2 / 3 + 0) / 4, abs=1e-6)
    raw = export_rows(session=session, project=strong, kind="pairs")
    assert [r["margin"] for r in raw] == [1.0, 1 / 3, 2 / 3]


def test_a_margin_from_strength_reaches_the_reward_loss(session, factory, strong, artifacts):  # type: ignore[no-untyped-def]
    """The pairs file's margin is what the reward trainer subtracts (read back by its reader)."""
    import torch

    from trainer.data import load_records
    from trainer.reward import kwise_loss

    (pid, (a, b)), = prompts_of(session, strong)  # fmt: skip
    annotate(session, strong, pid, factory.user(), {"ranking": [a, b], "strength": 2})
    made, _ = service.create_snapshot(
        session=session, project=strong, data=SnapshotCreate(kind="pairs", split=1)
    )
    (record,) = load_records(service.snapshot_files(snapshot=made)["train.jsonl"], "pairs")
    assert record["margin"] == pytest.approx(2 / 3)
    r = torch.tensor([1.0, 0.0])
    with_margin = kwise_loss(r, [2], [record["margin"]])
    assert float(with_margin) == pytest.approx(
        float(torch.nn.functional.softplus(torch.tensor(-1 / 3)))
    )
