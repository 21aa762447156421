"""Request/response models of training runs and the model registry."""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.runs.models import ModelKind, RunKind


class RunCreate(BaseModel):
    kind: str = Field(description=" | ".join(RunKind))
    snapshot_id: int
    model: str = Field(description="a registered model's id or name, a local path, or a hub id")
    reward_model: str | None = Field(None, description="PPO: the reward model, same forms")
    config: dict[str, Any] = Field(default_factory=dict, description="trainer config keys")
    name: str = ""


class RunOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    kind: str
    status: str
    config: dict[str, Any]
    snapshot_id: int
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
    error: str | None
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
    name: str = Field(min_length=1, max_length=200)
    kind: str = Field(description=" | ".join(ModelKind))
    path: str = Field(min_length=1, description="a local directory or a hub id")


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
