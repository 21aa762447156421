"""Aggregation algorithms (pure Python + numpy): consensus rankings, ratings, leaderboards."""

from app.aggregation.consensus import (
    Consensus,
    RankedPair,
    RatingSummary,
    aggregate_ratings,
    consensus_pairs,
    consensus_ranking,
    consensus_rankings,
    kendall_tau,
    mean_kendall_tau,
)
from app.aggregation.leaderboard import (
    DEFAULT_L2,
    ELO_PER_NAT,
    Comparisons,
    ModelRating,
    bootstrap_bradley_terry,
    bradley_terry,
    elo_ratings,
    leaderboard,
    overlap_ranks,
)

__all__ = [
    "DEFAULT_L2",
    "ELO_PER_NAT",
    "Comparisons",
    "Consensus",
    "ModelRating",
    "RankedPair",
    "RatingSummary",
    "aggregate_ratings",
    "bootstrap_bradley_terry",
    "bradley_terry",
    "consensus_pairs",
    "consensus_ranking",
    "consensus_rankings",
    "elo_ratings",
    "kendall_tau",
    "leaderboard",
    "mean_kendall_tau",
    "overlap_ranks",
]
