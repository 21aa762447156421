"""Aggregates read from the database: consensus, exclusions, supersession, leaderboard."""

import random

import pytest
from sqlalchemy import func, select

from app.aggregation import service
from app.labeling.models import Annotation
from tests.helpers import annotate, prompts_of, ranking_items


@pytest.fixture
def ranked(factory, session, tmp_path):  # type: ignore[no-untyped-def]
    project = factory.project(kind="ranking", k=3)
    factory.items(project, ranking_items(1, k=3), tmp_path)
    (prompt_id, (a, b, c)), *_ = prompts_of(session, project)
    return project, prompt_id, (a, b, c)


def test_condorcet_winner_and_cycle_through_the_service(session, factory, ranked) -> None:
    project, prompt_id, (a, b, c) = ranked
    # A cycle A>B (6:3), B>C (7:2), C>A (5:4): ranked pairs locks B>C, A>B, drops C>A.
    profile = [(4, [a, b, c]), (3, [b, c, a]), (2, [c, a, b])]
    for count, ranking in profile:
        for _ in range(count):
            annotate(session, project, prompt_id, factory.user(), {"ranking": ranking})
    result = service.prompt_consensus(session=session, project=project, prompt_id=prompt_id)
    assert result is not None and result.ranking == (a, b, c)
    assert result.n_rankings == 9
    assert -1 < result.agreement < 1  # type: ignore[operator]


def test_condorcet_winner_wins_ranked_pairs_not_borda(session, factory, ranked) -> None:
    project, prompt_id, (a, b, c) = ranked
    for count, ranking in [(3, [a, b, c]), (2, [b, c, a])]:
        for _ in range(count):
            annotate(session, project, prompt_id, factory.user(), {"ranking": ranking})

    def consensus(method: str) -> tuple:
        result = service.prompt_consensus(
            session=session, project=project, prompt_id=prompt_id, method=method
        )
        assert result is not None
        return result.ranking

    assert consensus("ranked-pairs") == (a, b, c)  # A beats B and C 3:2
    assert consensus("borda") == (b, a, c)  # net scores B +4, A +2, C -6


def test_partial_rankings_and_imports_count_as_voters(session, factory, ranked) -> None:
    project, prompt_id, (a, b, c) = ranked
    annotate(session, project, prompt_id, None, {"ranking": [c, a]})
    annotate(session, project, prompt_id, factory.user(), {"ranking": [c, b]})
    result = service.prompt_consensus(session=session, project=project, prompt_id=prompt_id)
    assert result is not None and result.ranking[0] == c and result.n_rankings == 2


def test_excluded_labeler_is_left_out_but_kept(session, factory, ranked) -> None:
    project, prompt_id, (a, b, _) = ranked
    annotate(session, project, prompt_id, factory.user(), {"ranking": [a, b]})
    annotate(session, project, prompt_id, factory.user(), {"ranking": [b, a]})
    troll = factory.user()
    annotate(session, project, prompt_id, troll, {"ranking": [b, a]})

    def top() -> int:
        result = service.prompt_consensus(session=session, project=project, prompt_id=prompt_id)
        assert result is not None
        return result.ranking[0]

    assert top() == b  # the troll's vote decides
    exclusion = service.exclude_labeler(session=session, user_id=troll.id, project_id=project.id)
    session.commit()
    assert top() == a  # 1:1, the tie-break puts the smaller id first
    assert session.scalar(select(func.count()).select_from(Annotation)) == 3
    service.remove_exclusion(session=session, exclusion_id=exclusion.id)
    service.exclude_labeler(session=session, user_id=troll.id, project_id=None)  # global
    session.commit()
    assert top() == a
    assert troll.id in service.excluded_user_ids(session=session, project_id=project.id + 999)


def test_superseded_annotation_is_left_out(session, factory, ranked) -> None:
    project, prompt_id, (a, b, _) = ranked
    user = factory.user()
    first = annotate(session, project, prompt_id, user, {"ranking": [b, a]})
    annotate(session, project, prompt_id, user, {"ranking": [a, b]}, supersedes=first)
    result = service.prompt_consensus(session=session, project=project, prompt_id=prompt_id)
    assert result is not None and result.ranking == (a, b) and result.n_rankings == 1


def _model_project(factory, session, tmp_path, kind: str):  # type: ignore[no-untyped-def]
    project = factory.project(kind=kind, k=3, rating_scale="0-5" if kind == "rating" else "thumbs")
    items = [
        {
            "id": f"q{i}",
            "prompt": f"question {i}",
            "responses": [{"text": f"a{i}-{m}", "model": m} for m in ("weak", "good", "best")],
        }
        for i in range(60)
    ]
    factory.items(project, items, tmp_path)
    return project, prompts_of(session, project)


def test_leaderboard_ranks_the_better_model_first(session, factory, tmp_path) -> None:
    project, prompts = _model_project(factory, session, tmp_path, "ranking")
    rng = random.Random(0)
    quality = {0: 0.0, 1: 1.0, 2: 2.0}  # position -> model quality (weak, good, best)
    labelers = [factory.user(), factory.user()]
    for pid, rids in prompts:
        for user in labelers:
            noisy = sorted(range(3), key=lambda i: -(quality[i] + rng.gauss(0, 0.8)))
            annotate(session, project, pid, user, {"ranking": [rids[i] for i in noisy]})
    board = service.model_leaderboard(session=session, project=project, rounds=200, seed=1)
    assert [r.model for r in board.rows] == ["best", "good", "weak"]
    assert board.rows[0].rank == 1 and board.rows[-1].rank == 3
    assert board.comparisons == 60 * 2 * 3
    assert all(r.lower <= r.rating <= r.upper for r in board.rows)
    assert board.rows[0].elo > board.rows[-1].elo
    again = service.model_leaderboard(session=session, project=project, rounds=200, seed=1)
    assert again == board  # seeded


def test_leaderboard_from_ratings_counts_ties(session, factory, tmp_path) -> None:
    project, prompts = _model_project(factory, session, tmp_path, "rating")
    user = factory.user()
    for pid, (weak, good, best) in prompts:
        scores = {str(weak): 1, str(good): 3, str(best): 3}
        annotate(session, project, pid, user, {"scores": scores}, kind="rating")
    comparisons = service.model_comparisons(session=session, project=project)
    assert comparisons.models == ("best", "good", "weak")
    wins = comparisons.win_matrix()
    assert wins[0, 1] == wins[1, 0] == 30  # 60 ties, half each
    assert wins[0, 2] == 60 and wins[2, 0] == 0


def test_api_leaderboard_consensus_exclusions(client, session, factory, ranked) -> None:
    admin = factory.user("admin")
    project, prompt_id, (a, b, c) = ranked
    labeler = factory.user()
    annotate(session, project, prompt_id, labeler, {"ranking": [c, b, a]})
    rows = client.get(f"/api/v1/projects/{project.id}/consensus", headers=admin.headers).json()
    assert rows == [
        {"prompt_id": prompt_id, "ranking": [c, b, a], "tied": [], "unranked": [],
         "agreement": None, "rankings": 1}
    ]  # fmt: skip
    board = client.get(
        f"/api/v1/projects/{project.id}/leaderboard?rounds=50", headers=admin.headers
    )
    assert board.status_code == 200 and [r["model"] for r in board.json()["rows"]][0] == "m2"
    made = client.post(
        f"/api/v1/projects/{project.id}/exclusions",
        json={"user_id": labeler.id, "reason": "random clicks"},
        headers=admin.headers,
    )
    assert made.status_code == 201, made.text
    again = client.post(
        f"/api/v1/projects/{project.id}/exclusions",
        json={"user_id": labeler.id},
        headers=admin.headers,
    )
    assert again.status_code == 409
    assert (
        client.get(f"/api/v1/projects/{project.id}/consensus", headers=admin.headers).json() == []
    )
    listed = client.get(f"/api/v1/projects/{project.id}/exclusions", headers=admin.headers).json()
    assert [e["user_id"] for e in listed] == [labeler.id]
    gone = client.delete(f"/api/v1/exclusions/{made.json()['id']}", headers=admin.headers)
    assert gone.status_code == 204
    page = client.get(f"/admin/projects/{project.id}/leaderboard", headers=admin.headers)
    assert page.status_code == 200 and "<svg" in page.text and "m2" in page.text
