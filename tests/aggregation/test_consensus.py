"""Consensus rankings: ranked pairs, Borda, tie-breaks, partial rankings, agreement."""

import random
from itertools import combinations

import pytest

from app.aggregation.consensus import (
    consensus_pairs,
    consensus_ranking,
    consensus_rankings,
    kendall_tau,
    mean_kendall_tau,
)


def repeat(profile: list[tuple[int, list]]) -> list[list]:
    """Expand (count, ranking) into that many copies of the ranking."""
    return [list(ranking) for count, ranking in profile for _ in range(count)]


def test_ranked_pairs_drops_the_weakest_pair_of_a_cycle() -> None:
    # A>B 11:5 (margin 6), B>C 12:4 (margin 8), C>A 9:7 (margin 2): a cycle A>B>C>A.
    rankings = repeat([(7, ["A", "B", "C"]), (5, ["B", "C", "A"]), (4, ["C", "A", "B"])])
    result = consensus_ranking(rankings)
    assert result.ranking == ("A", "B", "C")  # B>C locked, A>B locked, C>A dropped
    pairs = {(p.chosen, p.rejected): p for p in consensus_pairs(result)}
    assert (pairs["A", "C"].chosen_votes, pairs["A", "C"].rejected_votes) == (7, 9)
    assert pairs["A", "C"].margin == pytest.approx(-2 / 16)
    assert pairs["B", "C"].margin == pytest.approx(8 / 16)


def test_pair_strength_is_the_margin_not_the_winning_votes() -> None:
    # Partial rankings: A>B 6:4 (margin 2), B>C 3:0 (margin 3), C>A 4:1 (margin 3).
    rankings = repeat(
        [(6, ["A", "B"]), (4, ["B", "A"]), (3, ["B", "C"]), (4, ["C", "A"]), (1, ["A", "C"])]
    )
    # By margin C>A and B>C lock first and A>B is dropped; by winning votes it would be C, A, B.
    assert consensus_ranking(rankings).ranking == ("B", "C", "A")


def test_tennessee_capital_example() -> None:
    memphis, nashville, chattanooga, knoxville = "Memphis", "Nashville", "Chattanooga", "Knoxville"
    rankings = repeat(
        [
            (42, [memphis, nashville, chattanooga, knoxville]),
            (26, [nashville, chattanooga, knoxville, memphis]),
            (15, [chattanooga, knoxville, nashville, memphis]),
            (17, [knoxville, chattanooga, nashville, memphis]),
        ]
    )
    result = consensus_ranking(rankings)
    assert result.ranking == (nashville, chattanooga, knoxville, memphis)
    assert result.n_rankings == 100


def condorcet(rankings: list[list[int]], items: list[int]) -> tuple[int | None, int | None]:
    """Condorcet winner and loser by pairwise counts (None if there is none)."""
    beats = {(x, y): 0 for x in items for y in items}
    for ranking in rankings:
        for x, y in combinations(ranking, 2):
            beats[x, y] += 1
    winner = [x for x in items if all(beats[x, y] > beats[y, x] for y in items if y != x)]
    loser = [x for x in items if all(beats[x, y] < beats[y, x] for y in items if y != x)]
    return (winner or [None])[0], (loser or [None])[0]


def test_condorcet_winner_first_and_loser_last_on_random_profiles() -> None:
    rng = random.Random(7)
    checked = 0
    for _ in range(400):
        items = list(range(rng.randint(3, 6)))
        rankings = [rng.sample(items, rng.randint(2, len(items))) for _ in range(rng.randint(3, 7))]
        winner, loser = condorcet(rankings, items)
        result = consensus_ranking(rankings)
        if winner is not None:
            assert result.ranking[0] == winner
            checked += 1
        if loser is not None:
            assert result.ranking[-1] == loser
    assert checked > 100


def test_borda_hand_example_differs_from_ranked_pairs() -> None:
    rankings = repeat([(3, ["A", "B", "C"]), (2, ["B", "C", "A"])])
    # Borda points (2, 1, 0): A = 3*2 = 6, B = 3*1 + 2*2 = 7, C = 2*1 = 2.
    assert consensus_ranking(rankings, method="borda").ranking == ("B", "A", "C")
    # A is the Condorcet winner (beats B 3:2 and C 3:2).
    assert consensus_ranking(rankings).ranking == ("A", "B", "C")


def test_unknown_method_is_rejected() -> None:
    with pytest.raises(ValueError, match="method"):
        consensus_ranking([[1, 2]], method="plurality")  # type: ignore[arg-type]


def test_perfect_tie_breaks_by_smallest_id() -> None:
    assert consensus_ranking([[2, 1], [1, 2]]).ranking == (1, 2)
    assert consensus_ranking([["b", "a"], ["a", "b"]], method="borda").ranking == ("a", "b")
    # A symmetric 3-cycle: equal margins everywhere; the tie-break order decides (a first).
    cycle = [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"]]
    assert consensus_ranking(cycle).ranking == ("a", "b", "c")
    assert consensus_ranking([["c", "a", "b"], ["b", "c", "a"], ["a", "b", "c"]]).ranking == (
        "a",
        "b",
        "c",
    )


def test_tie_break_prefers_higher_net_score_over_smaller_id() -> None:
    # 2 and 3 are never compared with each other; 3 beats 1 twice, 2 beats 1 once.
    result = consensus_ranking([[3, 1], [3, 1], [2, 1]])
    assert result.ranking == (3, 2, 1)


@pytest.mark.parametrize("method", ["ranked-pairs", "borda"])
def test_same_input_in_shuffled_order_gives_same_output(method: str) -> None:
    rng = random.Random(3)
    for _ in range(100):
        items = list(range(rng.randint(2, 7)))
        rankings = [rng.sample(items, rng.randint(1, len(items))) for _ in range(rng.randint(2, 6))]
        expected = consensus_ranking(rankings, method=method)  # type: ignore[arg-type]
        shuffled = rankings[:]
        rng.shuffle(shuffled)
        again = consensus_ranking(shuffled, method=method)  # type: ignore[arg-type]
        assert (again.ranking, again.votes) == (expected.ranking, expected.votes)
        assert again.agreement == pytest.approx(expected.agreement)


def test_partial_rankings_cover_only_ranked_items() -> None:
    result = consensus_ranking([[1, 2, 3], [3, 4]], responses=[1, 2, 3, 4, 5])
    assert result.ranking == (1, 2, 3, 4)
    assert result.unranked == (5,)
    pairs = {(p.chosen, p.rejected): p for p in consensus_pairs(result)}
    assert len(pairs) == 6  # C(4, 2) over covered items only
    assert (pairs[1, 4].chosen_votes, pairs[1, 4].rejected_votes, pairs[1, 4].margin) == (0, 0, 0)
    assert pairs[3, 4].margin == 1.0
    assert result.agreement is None  # the two rankings share a single item


def test_partial_ranking_does_not_imply_preferences_about_missing_items() -> None:
    # Item 9 is ranked last by one labeler and missing from two others: it stays last, but
    # the missing rankings are not counted against it.
    result = consensus_ranking([[1, 2, 9], [2, 1], [2, 1]])
    assert result.ranking == (2, 1, 9)
    pairs = {(p.chosen, p.rejected): p for p in consensus_pairs(result)}
    assert (pairs[2, 9].chosen_votes, pairs[2, 9].rejected_votes) == (1, 0)


def test_no_rankings_reports_everything_unranked() -> None:
    result = consensus_ranking([[], []], responses=["x", "y"])
    assert result.ranking == ()
    assert result.unranked == ("x", "y")
    assert result.n_rankings == 0
    assert result.agreement is None
    assert consensus_pairs(result) == []


def test_bad_rankings_are_rejected_with_a_message() -> None:
    with pytest.raises(ValueError, match="twice"):
        consensus_ranking([[1, 2, 1]])
    with pytest.raises(ValueError, match="unknown response ids: \\[7\\]"):
        consensus_ranking([[1, 7]], responses=[1, 2])


def test_consensus_pairs_follow_the_consensus_order() -> None:
    result = consensus_ranking([[4, 3, 2, 1], [4, 2, 3, 1], [3, 4, 2, 1]])
    assert result.ranking == (4, 3, 2, 1)
    pairs = consensus_pairs(result)
    assert [(p.chosen, p.rejected) for p in pairs] == list(combinations((4, 3, 2, 1), 2))
    by_pair = {(p.chosen, p.rejected): p for p in pairs}
    assert by_pair[4, 3].margin == pytest.approx(1 / 3)
    assert by_pair[4, 1].margin == 1.0


def test_kendall_tau_hand_values() -> None:
    assert kendall_tau([1, 2, 3], [1, 2, 3]) == 1.0
    assert kendall_tau([1, 2, 3], [3, 2, 1]) == -1.0
    assert kendall_tau([1, 2, 3], [1, 3, 2]) == pytest.approx(1 / 3)
    assert kendall_tau([1, 2, 3, 4], [4, 3]) == -1.0  # over the common items {3, 4}
    assert kendall_tau([1, 2], [2, 3]) is None
    assert kendall_tau(["a", "b", "c", "d"], ["b", "a", "d", "c"]) == pytest.approx(2 / 6)


def test_agreement_is_mean_tau_over_overlapping_labeler_pairs() -> None:
    rankings = [[1, 2, 3], [1, 3, 2], [1, 2, 3]]
    expected = (1 / 3 + 1 + 1 / 3) / 3
    assert mean_kendall_tau(rankings) == pytest.approx(expected)
    assert consensus_ranking(rankings).agreement == pytest.approx(expected)
    # The pair ([5, 6], [1, 2, 3]) shares nothing and is left out of the mean.
    assert mean_kendall_tau([[1, 2, 3], [3, 2, 1], [5, 6]]) == -1.0
    assert mean_kendall_tau([[1, 2], [3, 4]]) is None
    assert mean_kendall_tau([[1, 2, 3]]) is None


def test_consensus_rankings_over_many_prompts() -> None:
    result = consensus_rankings({"p1": [[1, 2], [1, 2]], "p2": [["x", "y"], ["y", "x"]]})
    assert result["p1"].ranking == (1, 2)
    assert result["p1"].agreement == 1.0
    assert result["p2"].ranking == ("x", "y")
    assert result["p2"].agreement == -1.0
