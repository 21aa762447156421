"""Request/response models of aggregation: exclusions, consensus, leaderboard."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from app.http.bounds import Id, Reason


class ExclusionIn(BaseModel):
    user_id: Id
    all_projects: bool = False
    """Exclude the labeler from every project, not only this one."""
    reason: Reason = ""


class ExclusionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    user_id: int
    project_id: int | None
    """None: the exclusion applies to every project."""
    reason: str
    created_by_id: int | None
    created_at: datetime


class PromptConsensus(BaseModel):
    prompt_id: int
    ranking: list[int]
    """Response ids, best first."""
    tied: list[list[int]] = []
    """Groups of responses the consensus ties (each consecutive in `ranking`)."""
    unranked: list[int]
    agreement: float | None
    """Mean pairwise Kendall tau of the labelers' rankings."""
    rankings: int


class LeaderboardRow(BaseModel):
    model: str
    rating: float
    """Bradley-Terry rating (Elo-like scale, mean 1000)."""
    lower: float
    upper: float
    """Bootstrap 95% interval."""
    rank: int
    """1 + number of models whose interval lies entirely above this one."""
    comparisons: int
    elo: float
    """Online Elo (K=4) over the comparisons in annotation order."""


class Leaderboard(BaseModel):
    project_id: int
    comparisons: int
    rounds: int
    seed: int
    rows: list[LeaderboardRow]
