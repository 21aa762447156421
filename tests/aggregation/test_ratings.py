"""Rating aggregation: thumbs and 0-5 scales, per-labeler normalisation."""

from statistics import fmean, pstdev

import pytest

from app.aggregation.consensus import RatingSummary, aggregate_ratings


def test_thumbs_map_to_plus_minus_one() -> None:
    ratings = [("ann", "r1", True), ("bob", "r1", "down"), ("cy", "r1", 1), ("ann", "r2", False)]
    result = aggregate_ratings(ratings, scale="thumbs")
    assert result == {"r1": RatingSummary(mean=1 / 3, count=3), "r2": RatingSummary(-1.0, 1)}


def test_zero_to_five_scale_is_averaged_as_is() -> None:
    result = aggregate_ratings([(1, 10, 5), (2, 10, 2), (1, 11, 0)], scale="0-5")
    assert result == {10: RatingSummary(3.5, 2), 11: RatingSummary(0.0, 1)}


@pytest.mark.parametrize(
    ("scale", "value"), [("thumbs", 0), ("thumbs", 2), ("thumbs", 1.0), ("0-5", 6), ("0-5", "up")]
)
def test_out_of_scale_values_are_rejected(scale: str, value: object) -> None:
    with pytest.raises(ValueError, match="rating"):
        aggregate_ratings([("ann", "r1", value)], scale=scale)  # type: ignore[arg-type, list-item]


def test_normalisation_is_a_z_score_per_labeler() -> None:
    ratings = [("ann", "a", 1), ("ann", "b", 2), ("ann", "c", 3)]
    result = aggregate_ratings(ratings, scale="0-5", normalize=True)
    z = 1 / pstdev([1, 2, 3])  # population std: sqrt(2/3)
    assert result["a"].mean == pytest.approx(-z)
    assert result["b"].mean == pytest.approx(0.0)
    assert result["c"].mean == pytest.approx(z)


def test_normalisation_removes_a_lenient_labelers_offset() -> None:
    harsh = [("harsh", r, v) for r, v in [("a", 0), ("b", 1), ("c", 2)]]
    lenient = [("lenient", r, v) for r, v in [("a", 3), ("b", 4), ("c", 5)]]
    raw = aggregate_ratings(harsh + lenient[:1], scale="0-5")
    normalized = aggregate_ratings(harsh + lenient, scale="0-5", normalize=True)
    assert raw["a"].mean == 1.5  # without normalisation the lenient labeler lifts "a"
    assert [normalized[r].mean for r in "abc"] == pytest.approx([-1.2247449, 0.0, 1.2247449])
    assert [normalized[r].count for r in "abc"] == [2, 2, 2]


def test_single_rating_labeler_uses_pooled_statistics() -> None:
    ratings = [("ann", "a", 1), ("ann", "b", 3), ("bob", "a", 5)]
    result = aggregate_ratings(ratings, scale="0-5", normalize=True)
    pooled_mean, pooled_std = fmean([1, 3, 5]), pstdev([1, 3, 5])
    bob = (5 - pooled_mean) / pooled_std
    assert result["a"].mean == pytest.approx((-1.0 + bob) / 2)
    assert result["b"].mean == pytest.approx(1.0)


def test_zero_variance_labeler_contributes_zero() -> None:
    ratings = [("ann", "a", 4), ("ann", "b", 4), ("bob", "a", 1), ("bob", "b", 3)]
    result = aggregate_ratings(ratings, scale="0-5", normalize=True)
    assert result["a"] == RatingSummary(pytest.approx(-0.5), 2)  # type: ignore[arg-type]
    assert result["b"] == RatingSummary(pytest.approx(0.5), 2)  # type: ignore[arg-type]


def test_thumbs_normalisation_and_empty_input() -> None:
    ratings = [("ann", "a", "up"), ("ann", "b", "down"), ("bob", "a", "up")]
    result = aggregate_ratings(ratings, scale="thumbs", normalize=True)
    assert result["b"].mean == pytest.approx(-1.0)  # ann: +1/-1 has mean 0, std 1
    bob = (1 - fmean([1, -1, 1])) / pstdev([1, -1, 1])  # bob's single rating: pooled stats
    assert result["a"] == RatingSummary(pytest.approx((1.0 + bob) / 2), 2)  # type: ignore[arg-type]
    assert aggregate_ratings([], scale="thumbs", normalize=True) == {}
