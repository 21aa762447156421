"""Ties through consensus, leaderboard, quality and the rankings/pairs snapshots and exports."""

import json

import pytest

from app.aggregation import service as aggregation
from app.aggregation.consensus import consensus_pairs, consensus_ranking, kendall_tau
from app.aggregation.leaderboard import Comparisons
from app.datasets import export, service
from app.datasets.schemas import SnapshotCreate
from app.labeling import ranks
from app.quality import service as quality
from app.quality.agreement import krippendorff_alpha, tau_b
from tests.helpers import annotate, prompts_of, ranking_items


@pytest.fixture
def artifacts(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    from app.config import get_settings

    monkeypatch.setenv("RLHF_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    get_settings.cache_clear()
    yield tmp_path / "artifacts"
    get_settings.cache_clear()


def test_ranks_reads_groups_pairs_and_mid_rank_values() -> None:
    ranking = [7, [3, 5], 1]
    assert ranks.groups(ranking) == [[7], [3, 5], [1]]
    assert ranks.order(ranking) == [7, 3, 5, 1] and ranks.ranks(ranking) == [0, 1, 1, 2]
    assert list(ranks.pairs(ranking)) == [
        (7, 3, False), (7, 5, False), (7, 1, False), (3, 5, True), (3, 1, False), (5, 1, False)
    ]  # fmt: skip
    assert ranks.values(ranking) == {7: 4.0, 3: 2.5, 5: 2.5, 1: 1.0}
    assert ranks.values([4, 3, 2]) == {4: 3.0, 3: 2.0, 2: 1.0}  # flat: n, n-1, …, 1 as before
    for each in (ranking, [4, 3, 2], [[4, 3], 2], ["4", 3, [2]], [[1, 2, 3]], []):
        assert ranks.order_and_ranks(each) == (ranks.order(each), ranks.ranks(each))


def test_a_tie_is_half_a_vote_each_way_in_the_consensus() -> None:
    # Two labelers tie b and c, one puts b above c: b wins the pair 2-1 (1 + ½ + ½ vs ½ + ½).
    result = consensus_ranking([["a", ["b", "c"]], ["a", ["b", "c"]], ["a", "b", "c"]])
    assert result.ranking == ("a", "b", "c")
    votes = dict(zip(result.ranking, result.votes, strict=True))
    assert votes["b"][2] == 2.0 and votes["c"][1] == 1.0
    assert result.groups == (("a",), ("b",), ("c",))  # a majority orders b and c
    pairs = {(p.chosen, p.rejected): p for p in consensus_pairs(result)}
    assert pairs["b", "c"].margin == pytest.approx(1 / 3) and not pairs["b", "c"].tied


@pytest.mark.parametrize("method", ["ranked-pairs", "borda"])
def test_responses_everyone_tied_are_tied_in_the_consensus(method) -> None:  # type: ignore[no-untyped-def]
    result = consensus_ranking([[1, [2, 3], 4], [[3, 2], 1, 4]], method=method)
    assert {2, 3} in [set(g) for g in result.groups]
    tied = [(p.chosen, p.rejected) for p in consensus_pairs(result) if p.tied]
    assert sorted(map(sorted, tied)) == [[2, 3]]
    # Split votes without a tie vote are no tie (as before ties existed).
    split = consensus_ranking([[1, 2], [2, 1]], method=method)
    assert not any(p.tied for p in consensus_pairs(split))


def test_agreement_is_kendall_tau_b_with_ties() -> None:
    # x ties b and c, y orders them: tau-b = (2 - 0) / sqrt(2 * 3).
    assert kendall_tau(["a", ["b", "c"]], ["a", "b", "c"]) == pytest.approx(2 / 6**0.5)
    assert kendall_tau([["a", "b"]], ["a", "b"]) is None  # x ties everything: undefined
    assert kendall_tau([1, 2, 3], [3, 2, 1]) == -1.0
    assert consensus_ranking([["a", ["b", "c"]], ["a", "b", "c"]]).agreement == pytest.approx(
        2 / 6**0.5
    )
    # The quality module's τ-b agrees, on values.
    assert tau_b(ranks.values([1, [2, 3]]), ranks.values([1, 2, 3])) == pytest.approx(2 / 6**0.5)


def test_krippendorff_alpha_counts_identical_ties_as_agreement() -> None:
    tied = [ranks.values([1, [2, 3], 4]) for _ in range(3)]
    assert krippendorff_alpha([tied, tied], rounds=0).value == pytest.approx(1.0)


def test_a_tie_counts_half_in_the_leaderboard(session, factory, tmp_path) -> None:
    project = factory.project(kind="ranking", k=3)
    factory.items(project, ranking_items(1, k=3), tmp_path)  # responses by m0, m1, m2
    (pid, (r0, r1, r2)), = prompts_of(session, project)  # fmt: skip
    annotate(session, project, pid, factory.user(), {"ranking": [r0, [r1, r2]]})
    comparisons = aggregation.model_comparisons(session=session, project=project)
    outcomes = {
        (comparisons.models[a], comparisons.models[b]): s
        for a, b, s in zip(comparisons.a, comparisons.b, comparisons.score_a, strict=True)
    }
    assert outcomes == {("m0", "m1"): 1.0, ("m0", "m2"): 1.0, ("m1", "m2"): 0.5}
    wins = Comparisons.win_matrix(comparisons)
    assert wins[1, 2] == wins[2, 1] == 0.5
    board = aggregation.model_leaderboard(session=session, project=project, rounds=20)
    rating = {row.model: row.rating for row in board.rows}
    assert rating["m1"] == pytest.approx(rating["m2"]) and rating["m0"] > rating["m1"]


def test_quality_handles_ties(session, factory, tmp_path) -> None:
    project = factory.project(kind="ranking", k=3, overlap=3)
    factory.items(project, ranking_items(12, k=3), tmp_path)
    labelers = [factory.user() for _ in range(3)]
    from app.base import utcnow
    from app.labeling.models import Assignment

    for pid, (a, b, c) in prompts_of(session, project):
        for user, payload in zip(labelers, ([a, [b, c]], [a, b, c], [[a, b], c]), strict=True):
            assignment = Assignment(
                project_id=project.id, prompt_id=pid, user_id=user.id, status="done",
                response_ids=[a, b, c], expires_at=utcnow(),
            )  # fmt: skip
            session.add(assignment)
            session.flush()
            annotation = annotate(session, project, pid, user, {"ranking": payload})
            annotation.assignment_id = assignment.id
            annotation.duration_ms = 4000
            session.commit()
    report = quality.project_quality(session=session, project=project, rounds=20)
    assert report.alpha is not None and 0 < report.alpha < 1
    by_user = {row.user_id: row for row in report.labelers}
    assert all(by_user[u.id].agreement is not None for u in labelers)
    assert all(by_user[u.id].reliability is not None for u in labelers)


def export_rows(**kwargs):  # type: ignore[no-untyped-def]
    """Every row of the raw export, its batches joined."""
    return [row for batch in export.row_batches(**kwargs) for row in batch]


def _rows(snapshot) -> list[dict]:  # type: ignore[no-untyped-def]
    files = service.snapshot_files(snapshot=snapshot)
    return [json.loads(line) for line in files["train.jsonl"].read_text().splitlines()]


def _tied_project(session, factory, tmp_path):  # type: ignore[no-untyped-def]
    project = factory.project(kind="ranking", k=3)
    factory.items(project, ranking_items(1, k=3), tmp_path)
    (pid, (r0, r1, r2)), = prompts_of(session, project)  # fmt: skip
    for _ in range(2):
        annotate(session, project, pid, factory.user(), {"ranking": [r0, [r1, r2]]})
    return project


@pytest.mark.parametrize("method", ["ranked-pairs", "borda", "all"])
def test_snapshots_skip_tied_pairs_and_keep_ties_in_rankings(
    session, factory, tmp_path, artifacts, method
) -> None:
    project = _tied_project(session, factory, tmp_path)
    pairs, _ = service.create_snapshot(
        session=session, project=project, data=SnapshotCreate(kind="pairs", method=method, split=1)
    )
    rows = _rows(pairs)
    assert {(r["chosen"], r["rejected"]) for r in rows} == {
        ("answer 0.0", "answer 0.1"),
        ("answer 0.0", "answer 0.2"),
    }  # the tied pair (0.1, 0.2) is in no row
    rankings, _ = service.create_snapshot(
        session=session,
        project=project,
        data=SnapshotCreate(kind="rankings", method=method, split=1),
    )
    for row in _rows(rankings):
        assert row["responses"][0] == "answer 0.0"
        assert set(row["responses"][1:]) == {"answer 0.1", "answer 0.2"}
        assert row["ranks"] == [0, 1, 1]


def test_a_ranking_without_ties_has_no_ranks_field(session, factory, tmp_path, artifacts) -> None:
    project = factory.project(kind="ranking", k=3)
    factory.items(project, ranking_items(1, k=3), tmp_path)
    (pid, rids), = prompts_of(session, project)  # fmt: skip
    annotate(session, project, pid, factory.user(), {"ranking": rids})
    made, _ = service.create_snapshot(
        session=session, project=project, data=SnapshotCreate(kind="rankings", split=1)
    )
    assert _rows(made) == [
        {
            "prompt": "question 0",
            "responses": ["answer 0.0", "answer 0.1", "answer 0.2"],
            "source": "human",
        }
    ]


def test_everything_tied_gives_no_preference_rows(session, factory, tmp_path, artifacts) -> None:
    project = factory.project(kind="ranking", k=3)
    factory.items(project, ranking_items(1, k=3), tmp_path)
    (pid, rids), = prompts_of(session, project)  # fmt: skip
    annotate(session, project, pid, factory.user(), {"ranking": [rids]})
    for kind in ("pairs", "rankings", "kto"):
        made, _ = service.create_snapshot(
            session=session, project=project, data=SnapshotCreate(kind=kind, split=1)
        )
        assert made.train_rows == 0, kind


def test_the_raw_export_reads_ties(session, factory, tmp_path) -> None:
    project = _tied_project(session, factory, tmp_path)
    pairs = export_rows(session=session, project=project, kind="pairs")
    assert len(pairs) == 4 and all(r["rejected"] != "answer 0.0" for r in pairs)
    assert all(r["chosen"] == "answer 0.0" for r in pairs)
    rankings = export_rows(session=session, project=project, kind="rankings")
    assert [r["ranks"] for r in rankings] == [[0, 1, 1], [0, 1, 1]]


def test_the_annotations_page_shows_a_tie(client, session, factory, tmp_path) -> None:
    project = _tied_project(session, factory, tmp_path)
    admin = factory.user("admin")
    page = client.get(f"/admin/annotations?project_id={project.id}", headers=admin.headers)
    assert page.status_code == 200
    assert page.text.count(">tied</span>") == 2 and "answer 0.2" in page.text


def test_parquet_keeps_ranks_as_integers(session, factory, tmp_path, artifacts) -> None:
    import pyarrow.parquet as pq

    project = _tied_project(session, factory, tmp_path)
    made, _ = service.create_snapshot(
        session=session, project=project, data=SnapshotCreate(kind="rankings", split=1)
    )
    table = pq.read_table(service.snapshot_files(snapshot=made)["train.parquet"])
    assert table.to_pylist()[0]["ranks"] == [0, 1, 1]
    assert (
        "ranks"
        not in json.loads(service.snapshot_files(snapshot=made)["manifest.json"].read_text())[
            "parquet_json_columns"
        ]
    )
