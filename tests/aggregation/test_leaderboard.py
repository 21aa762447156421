"""Leaderboards: Elo, Bradley-Terry, bootstrap intervals and overlap-aware ranks."""

from math import log10

import numpy as np
import pytest

from app.aggregation.leaderboard import (
    ELO_PER_NAT,
    Comparisons,
    _resample_counts,
    bootstrap_bradley_terry,
    bradley_terry,
    elo_ratings,
    leaderboard,
    overlap_ranks,
)


def synthetic(theta: np.ndarray, n: int, seed: int, tie_rate: float = 0.0) -> Comparisons:
    """n comparisons between random distinct models with Bradley-Terry outcomes."""
    rng = np.random.default_rng(seed)
    m = len(theta)
    a = rng.integers(0, m, n)
    b = (a + rng.integers(1, m, n)) % m
    p_a = 1 / (1 + np.exp(theta[b] - theta[a]))
    # A tie (score 0.5 each) with probability tie_rate; a's win probability among the rest is
    # chosen so that a's expected score is still the Bradley-Terry p_a.
    tie = rng.random(n) < tie_rate
    win = rng.random(n) < (p_a - tie_rate / 2) / (1 - tie_rate)
    score = np.where(tie, 0.5, win.astype(float))
    return Comparisons(models=tuple(f"m{i}" for i in range(m)), a=a, b=b, score_a=score)


def true_ratings(theta: np.ndarray) -> np.ndarray:
    """Known strengths on the rating scale, mean 1000."""
    return 1000 + ELO_PER_NAT * (theta - theta.mean())


def test_from_outcomes_encodes_sorted_models_and_half_ties() -> None:
    c = Comparisons.from_outcomes([("zeta", "alpha", "a"), ("alpha", "beta", "tie")])
    assert c.models == ("alpha", "beta", "zeta")
    assert c.a.tolist() == [2, 0]
    assert c.b.tolist() == [0, 1]
    assert c.score_a.tolist() == [1.0, 0.5]
    assert c.win_matrix().tolist() == [[0, 0.5, 0], [0.5, 0, 0], [1, 0, 0]]
    assert c.games().tolist() == [2, 1, 1]


def test_bad_outcomes_are_rejected_with_the_row() -> None:
    with pytest.raises(ValueError, match="row 1: outcome"):
        Comparisons.from_outcomes([("x", "y", "a"), ("x", "y", "draw")])
    with pytest.raises(ValueError, match="row 0: model 'x' is compared with itself"):
        Comparisons.from_outcomes([("x", "x", "tie")])


def test_plain_lists_are_accepted_and_checked() -> None:
    c = Comparisons(models=["x", "y"], a=[0, 1], b=[1, 0], score_a=[1, 0.5])
    assert c.win_matrix().tolist() == [[0.0, 1.5], [0.5, 0.0]]  # a win and a tie for x
    with pytest.raises(ValueError, match="index out of range"):
        Comparisons(models=["x", "y"], a=[0], b=[2], score_a=[1])
    with pytest.raises(ValueError, match="score_a"):
        Comparisons(models=["x", "y"], a=[0], b=[1], score_a=[0.3])


def test_no_comparisons_give_an_empty_leaderboard() -> None:
    empty = Comparisons.from_outcomes([])
    assert bradley_terry(empty) == {}
    assert elo_ratings(empty) == {}
    assert leaderboard(empty, rounds=10) == []


def test_elo_matches_a_hand_computation() -> None:
    c = Comparisons.from_outcomes([("A", "B", "a"), ("B", "C", "tie"), ("A", "C", "b")])
    # Game 1: equal ratings, expected 0.5, A gains 4 * 0.5 = 2.
    # Game 2: B 998 vs C 1000, E_B = 1 / (1 + 10^(2/400)) = 0.4971218, tie: B gains 0.0115128.
    # Game 3: A 1002 vs C 999.9884872, E_A = 0.5028948, C wins: A loses 2.0115791.
    assert elo_ratings(c) == pytest.approx(
        {"A": 999.9884209, "B": 998.0115128, "C": 1002.0000663}, abs=1e-6
    )
    assert elo_ratings(Comparisons.from_outcomes([(1, 2, "b")]), k=32) == {1: 984.0, 2: 1016.0}


def test_elo_is_online_so_order_matters() -> None:
    games = [("A", "B", "a")] * 5 + [("B", "A", "a")] * 5
    forward = elo_ratings(Comparisons.from_outcomes(games))
    backward = elo_ratings(Comparisons.from_outcomes(games[::-1]))
    assert forward["A"] < 1000 < backward["A"]  # whoever won last is ahead


def test_bradley_terry_hand_values_with_ties_as_halves() -> None:
    games = [("A", "B", "a")] * 20 + [("A", "B", "tie")] * 20 + [("B", "A", "a")] * 10
    ratings = bradley_terry(Comparisons.from_outcomes(games))
    # A scores 30 of 50: strength ratio 30/20, i.e. 400*log10(1.5) points, centred on 1000.
    assert ratings["A"] - ratings["B"] == pytest.approx(400 * log10(1.5), abs=0.05)
    assert ratings["A"] + ratings["B"] == pytest.approx(2000)
    anchored = bradley_terry(Comparisons.from_outcomes(games), anchor="B")
    assert anchored["B"] == 1000
    assert anchored["A"] == pytest.approx(1000 + 400 * log10(1.5), abs=0.05)
    with pytest.raises(ValueError, match="anchor model 'Z'"):
        bradley_terry(Comparisons.from_outcomes(games), anchor="Z")


def test_bradley_terry_recovers_known_strengths() -> None:
    theta = np.array([-1.0, -0.4, 0.0, 0.3, 0.5, 1.1])
    c = synthetic(theta, 60_000, seed=1, tie_rate=0.2)
    fitted = bradley_terry(c)
    assert [fitted[m] for m in c.models] == pytest.approx(true_ratings(theta), abs=12)


def test_undefeated_model_stays_finite_and_on_top() -> None:
    c = Comparisons.from_outcomes([("champ", "x", "a")] * 5 + [("x", "y", "tie")] * 3)
    ratings = bradley_terry(c)
    assert all(np.isfinite(list(ratings.values())))
    assert ratings["champ"] > max(ratings["x"], ratings["y"]) + 400
    assert ratings["x"] == pytest.approx(ratings["y"], abs=5)
    rows = leaderboard(c, rounds=50)
    assert all(np.isfinite([r.lower for r in rows] + [r.upper for r in rows]))


def test_resampling_is_an_exact_multinomial() -> None:
    counts = np.array([5, 1, 3, 11])
    draws = _resample_counts(np.random.default_rng(1), counts, 100_000)
    assert (draws.sum(axis=1) == 20).all()
    p = counts / 20
    assert draws.mean(axis=0) == pytest.approx(counts, abs=0.03)
    assert draws.var(axis=0) == pytest.approx(20 * p * (1 - p), rel=0.03)
    assert np.cov(draws.T)[0, 3] == pytest.approx(-20 * p[0] * p[3], rel=0.05)


def test_bootstrap_is_seeded() -> None:
    c = synthetic(np.array([0.0, 0.5, 1.0]), 500, seed=2)
    first = bootstrap_bradley_terry(c, rounds=30, seed=5)
    assert first.shape == (30, 3)
    assert np.array_equal(first, bootstrap_bradley_terry(c, rounds=30, seed=5))
    assert not np.array_equal(first, bootstrap_bradley_terry(c, rounds=30, seed=6))


def test_intervals_cover_the_true_ratings_across_seeds() -> None:
    theta = np.array([-0.6, -0.1, 0.2, 0.5])
    truth = true_ratings(theta)
    covered, widths = [], []
    for seed in range(50):
        c = synthetic(theta, 1500, seed=seed, tie_rate=0.1)
        rows = {r.model: r for r in leaderboard(c, rounds=200, seed=seed)}
        for model, true in zip(c.models, truth, strict=True):
            covered.append(rows[model].lower <= true <= rows[model].upper)
            widths.append(rows[model].upper - rows[model].lower)
    assert 0.88 <= np.mean(covered) <= 0.99
    # 4x the data must halve the width: intervals are informative, not merely wide.
    wide = np.mean(widths)
    big = leaderboard(synthetic(theta, 6000, seed=99, tie_rate=0.1), rounds=200, seed=0)
    assert np.mean([r.upper - r.lower for r in big]) == pytest.approx(wide / 2, rel=0.2)


def test_interval_width_matches_the_fisher_information() -> None:
    theta = np.array([-0.6, -0.1, 0.2, 0.5])
    n = 6000
    rows = {r.model: r for r in leaderboard(synthetic(theta, n, seed=5), rounds=400, seed=2)}
    # Each unordered pair gets n/6 games; the information matrix is the Laplacian of
    # (n/6) p (1 - p), and its pseudo-inverse is the covariance of the centred estimate.
    p = 1 / (1 + np.exp(theta[None, :] - theta[:, None]))
    weight = n / 6 * p * (1 - p)
    np.fill_diagonal(weight, 0)
    laplacian = np.diag(weight.sum(axis=1)) - weight
    sd = ELO_PER_NAT * np.sqrt(np.diag(np.linalg.pinv(laplacian)))
    widths = [rows[f"m{i}"].upper - rows[f"m{i}"].lower for i in range(4)]
    assert widths == pytest.approx(2 * 1.96 * sd, rel=0.15)


def test_overlap_ranks_hand_example() -> None:
    # B [15, 25] and A [10, 20] overlap; both are clearly above C [0, 5].
    assert overlap_ranks(lower=[10, 15, 0], upper=[20, 25, 5]) == [1, 1, 3]
    assert overlap_ranks(lower=[10, 30, 50], upper=[20, 40, 60]) == [3, 2, 1]


def test_leaderboard_ranks_respect_interval_overlap() -> None:
    theta = np.array([0.0, 0.02, 1.0, 2.0])  # m0 and m1 indistinguishable
    rows = leaderboard(synthetic(theta, 8000, seed=4), rounds=300, seed=1)
    assert [r.model for r in rows][:2] == ["m3", "m2"]
    rank = {r.model: r.rank for r in rows}
    assert (rank["m3"], rank["m2"]) == (1, 2)
    assert rank["m0"] == rank["m1"] == 3
    for row in rows:
        assert row.lower <= row.rating <= row.upper
        above = sum(other.lower > row.upper for other in rows)
        assert row.rank == 1 + above
    assert sum(r.comparisons for r in rows) == 2 * 8000


def test_bradley_terry_agrees_with_choix() -> None:
    choix = pytest.importorskip("choix", reason="choix not installed (optional, bench extra)")
    theta = np.array([-0.8, -0.2, 0.1, 0.9])
    c = synthetic(theta, 20_000, seed=3)
    ours = bradley_terry(c)
    params = choix.ilsr_pairwise_dense(c.win_matrix(), alpha=0.0, tol=1e-10)
    theirs = 1000 + ELO_PER_NAT * (params - params.mean())
    assert [ours[m] for m in c.models] == pytest.approx(theirs, abs=0.05)
