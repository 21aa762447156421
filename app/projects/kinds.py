"""What a project asks of labelers, and on which scale ratings are given."""

from enum import StrEnum


class ProjectKind(StrEnum):
    """The label a project collects per prompt."""

    demonstration = "demonstration"
    ranking = "ranking"
    rating = "rating"


class RatingScale(StrEnum):
    """The values a rating may take: 👍/👎 (+1/-1) or 0 to 5."""

    thumbs = "thumbs"
    zero_to_five = "0-5"
