"""Request/response models of training runs and the model registry."""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.http.bounds import Id, JsonObject, Keyword, ModelRef, Name, text
from app.runs.models import ModelKind, RunKind

RunName = text(200)


class RunCreate(BaseModel):
    kind: Keyword = Field(description=" | ".join(RunKind))
    snapshot_id: Id
    model: ModelRef = Field(
        description="a registered model's id or name, a local path, or a hub id"
    )
    reward_model: ModelRef | None = Field(None, description="PPO: the reward model, same forms")
    config: JsonObject = Field(default_factory=dict, description="trainer config keys")
    name: RunName = ""


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
    snapshot_sha256: str | None
    run_id: int | None
    metrics: dict[str, Any]
    created_at: datetime
