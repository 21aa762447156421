"""Simulated labelers through the real labeling service: the quality report names the bad ones
and leaves the careful ones alone; gold items are served at the rate, once, never exported."""

from app.labeling.gold import GoldStats
from app.quality import flags as flag_tests
from app.quality import service as quality
from tests.quality import sim


def test_random_position_biased_and_rushing_labelers_are_flagged(factory, session, tmp_path):  # type: ignore[no-untyped-def]
    project = factory.project(k=4, overlap=3, gold_rate=0.1)
    factory.items(project, sim.items(70, gold=8), tmp_path)
    behaviours = ["careful"] * 6 + ["random", "first", "rush"]
    crew = sim.crew(session, behaviours)
    sim.work(session, project, crew, seed=1)

    report = quality.project_quality(session=session, project=project, rounds=50)
    rows = {row.user_id: row for row in report.labelers}
    flags = {b: [] for b in behaviours}
    for user, behaviour in crew:
        flags[behaviour].append(set(rows[user.id].flags))
        assert rows[user.id].labels >= 10
    assert flags["careful"] == [set()] * 6
    assert "low-agreement" in flags["random"][0]
    assert "position-bias" in flags["first"][0]
    assert flags["rush"][0] == {"too-fast"}
    reliability = {b: rows[u.id].reliability for u, b in crew}
    careful = [rows[u.id].reliability for u, b in crew if b == "careful"]
    assert reliability["random"] < min(careful)
    assert reliability["first"] < min(careful)
    assert report.alpha is not None and report.alpha_interval is not None
    low, high = report.alpha_interval
    assert low <= report.alpha <= high
    first = next(u for u, b in crew if b == "first")
    evidence = {f.name: f.evidence for f in rows[first.id].evidence}
    assert "first shown response first" in evidence["position-bias"]


def test_a_new_labeler_with_three_labels_is_not_flagged(factory, session, tmp_path):  # type: ignore[no-untyped-def]
    project = factory.project(k=4, overlap=3, gold_rate=0)
    factory.items(project, sim.items(3), tmp_path)
    crew = sim.crew(session, ["careful", "careful", "random"])
    sim.work(session, project, crew, seed=2)
    report = quality.project_quality(session=session, project=project, rounds=20)
    assert [row.labels for row in report.labelers] == [3, 3, 3]
    assert all(row.flags == [] for row in report.labelers)


def test_a_straight_liner_on_a_rating_project_is_flagged(factory, session, tmp_path):  # type: ignore[no-untyped-def]
    project = factory.project(kind="rating", rating_scale="0-5", k=4, overlap=3, gold_rate=0.2)
    factory.items(project, sim.items(30, gold=4, kind="rating"), tmp_path)
    crew = sim.crew(session, ["careful"] * 4 + ["flat"])
    sim.work(session, project, crew, seed=9, shuffle=True)
    report = quality.project_quality(session=session, project=project, rounds=20)
    rows = {row.user_id: row for row in report.labelers}
    flat = rows[crew[-1][0].id]
    assert "straight-lining" in flat.flags and flat.gold_accuracy == 0.5  # a tie counts half
    assert all(rows[u.id].flags == [] for u, b in crew if b == "careful")
    assert flat.reliability < min(rows[u.id].reliability for u, b in crew if b == "careful")
    assert report.alpha is not None and report.alpha > 0.3


def test_follows_suggestions_needs_evidence() -> None:
    gold = GoldStats(seen=5, agree=21, pairs=30)  # 70%
    copied = [1.0] * 12
    accuracy = [(35.0, 50)] * 12  # a 70%-accurate judge
    assert flag_tests.follows_suggestions(copied, accuracy, gold) is not None
    # too few prompts, too few gold items, or no gold: no flag
    assert flag_tests.follows_suggestions(copied[:9], accuracy[:9], gold) is None
    assert flag_tests.follows_suggestions(copied, accuracy, GoldStats(2, 14, 12)) is None
    assert flag_tests.follows_suggestions(copied, accuracy, None) is None
    # agreement as independent errors predict (0.7·0.7 + 0.3·0.3 = 0.58): no flag
    independent = [0.5, 0.67, 0.5, 0.67, 0.67, 0.5, 0.83, 0.5, 0.67, 0.5, 0.67, 0.5]
    assert flag_tests.follows_suggestions(independent, accuracy, gold) is None
    # a very accurate labeler agrees with an accurate judge without copying it
    sharp = GoldStats(seen=8, agree=47, pairs=48)
    assert flag_tests.follows_suggestions([0.9] * 12, [(46.0, 50)] * 12, sharp) is None
