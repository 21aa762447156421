"""Request/response models of training runs and the model registry."""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.http.bounds import Id, JsonObject, Keyword, ModelRef, ModelRefQuery, Name, text
from app.runs.models import ModelKind, RunKind

RunName = text(200)


class RunCreate(BaseModel):
    kind: Keyword = Field(description=" | ".join(RunKind))
    snapshot_id: Id | None = Field(None, description="what a training run trains on")
    model: ModelRefQuery = Field(
        "", description="a registered model's id or name, a local path, or a hub id"
    )
    reward_model: ModelRef | None = Field(None, description="PPO: the reward model, same forms")
    project: Id | RunName | None = Field(
        None, description="generate: the ranking or rating project (id or name) to fill"
    )
    models: list[ModelRef] = Field(
        default_factory=list,
        max_length=100,
        description="generate: registered policies (ids or names)",
    )
    config: JsonObject = Field(
        default_factory=dict,
        description="trainer config keys (generate: n, max_new_tokens, temperature, top_p, seed…)",
    )
    name: RunName = ""


class RunOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    kind: str
    status: str
    state: str = Field(description="the status; `stale`: running, but its worker is silent")
    config: dict[str, Any]
    snapshot_id: int | None
    project_id: int | None
    model_ids: list[int]
    base_model: str
    base_model_id: int | None
    reward_model: str | None
    reward_model_id: int | None
    attempt: int
    max_attempts: int
    worker: str | None
    heartbeat_at: datetime | None
    cancel_requested: bool
    exit_code: int | None
    error: str | None = Field(description="the cause (first line) and the end of the log")
    cause: str | None = Field(description="why the last attempt ended badly, in one line")
    retryable: bool = Field(description="whether a retry can get further (see the cause)")
    output_model_id: int | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    warnings: list[str] = Field(default_factory=list, description="e.g. a loss that never moved")


class MetricOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    step: int
    values: dict[str, Any]


class ModelCreate(BaseModel):
    name: Name = Field(description="unique")
    kind: Keyword = Field(description=" | ".join(ModelKind))
    path: ModelRef = Field(description="a local directory or a hub id")


class ModelOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    kind: str
    path: str
    base_model: str | None
    base_model_id: int | None
    snapshot_content_hash: str | None
    run_id: int | None
    metrics: dict[str, Any]
    created_at: datetime


class RegistryRow(BaseModel):
    model_id: int
    name: str
    base_model_id: int | None
    base_model_name: str | None
    rating: float | None
    """Bradley-Terry rating (Elo-like scale, mean 1000) from every ranking of its responses."""
    lower: float | None
    upper: float | None
    """Bootstrap 95% interval."""
    rank: int | None
    """1 + number of models whose interval lies entirely above this one (None: unrated)."""
    comparisons: int
    win_rate_vs_base: float | None
    """Share of its comparisons with its base model that it won (ties count half)."""
    games_vs_base: int


class RegistryLeaderboard(BaseModel):
    comparisons: int
    rounds: int
    seed: int
    rows: list[RegistryRow]


class NextRoundCreate(BaseModel):
    name: Name = Field(description="the new ranking project")
    snapshot_id: Id | None = Field(None, description="a prompts snapshot to take prompts from")
    project: Id | RunName | None = Field(None, description="or a project (id or name) to copy")
    compare_with: list[ModelRef] | None = Field(
        None,
        max_length=100,
        description="registered policies to compare with (default: the base model)",
    )
    n: int = Field(1, ge=1, le=9, description="samples per prompt per model")
    reward_model: ModelRef | None = Field(
        None, description="a registered reward model: serve first the prompts it separates least"
    )
    overlap: int = Field(1, ge=1, le=100, description="labelers per prompt")
    config: dict[str, Any] = Field(
        default_factory=dict, description="generation keys: max_new_tokens, temperature, …"
    )


class NextRoundOut(BaseModel):
    project_id: int
    project_name: str
    k: int
    run: RunOut
