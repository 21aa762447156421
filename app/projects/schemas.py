"""Request/response models of projects and imports."""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.projects.kinds import ProjectKind, RatingScale


class ProjectSettings(BaseModel):
    instructions: str = ""
    k: int = Field(4, ge=1, le=9, description="responses shown per prompt (2…9 for rankings)")
    overlap: int = Field(1, ge=1, le=100, description="labelers per prompt")
    lease_seconds: int = Field(1800, ge=30, le=7 * 24 * 3600)
    rating_scale: RatingScale = RatingScale.thumbs
    criteria: list[str] = Field(default_factory=list, max_length=50)
    gold_rate: float = Field(0.1, ge=0.0, le=1.0, description="share of tasks that are gold")
    auto_hold: bool = Field(False, description="hold labelers with low gold accuracy")
    hold_after_gold: int = Field(5, ge=1, le=1000, description="gold items before a hold")
    order: Literal["id", "uncertainty"] = Field(
        "id", description="serve prompts in import order, or those a reward model separates least"
    )

    @field_validator("criteria")
    @classmethod
    def _criteria_names(cls, value: list[str]) -> list[str]:
        names = [c.strip() for c in value if c.strip()]
        if len(set(names)) != len(names):
            raise ValueError("criteria names must be distinct")
        if any(len(c) > 60 for c in names):
            raise ValueError("a criterion name has at most 60 characters")
        return names


class ProjectCreate(ProjectSettings):
    name: str = Field(min_length=1, max_length=200)
    kind: ProjectKind

    @model_validator(mode="after")
    def _k_fits_kind(self) -> "ProjectCreate":
        if self.kind == ProjectKind.ranking and self.k < 2:
            raise ValueError("a ranking project shows k ≥ 2 responses")
        return self


class ProjectUpdate(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=200)
    instructions: str | None = None
    k: int | None = Field(None, ge=1, le=9)
    overlap: int | None = Field(None, ge=1, le=100)
    lease_seconds: int | None = Field(None, ge=30, le=7 * 24 * 3600)
    rating_scale: RatingScale | None = None
    criteria: list[str] | None = None
    is_archived: bool | None = None
    gold_rate: float | None = Field(None, ge=0.0, le=1.0)
    auto_hold: bool | None = None
    hold_after_gold: int | None = Field(None, ge=1, le=1000)
    order: Literal["id", "uncertainty"] | None = None


class ProjectOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    kind: ProjectKind
    instructions: str
    k: int
    overlap: int
    lease_seconds: int
    rating_scale: RatingScale
    criteria: list[str]
    is_archived: bool
    gold_rate: float
    auto_hold: bool
    hold_after_gold: int
    order: str
    created_at: datetime


class ProjectStats(BaseModel):
    project_id: int
    prompts: int
    labels_done: int
    labels_needed: int
    prompts_complete: int
    skips: int
    labelers: int


class ImportLineError(BaseModel):
    line: int
    error: str


class ImportReport(BaseModel):
    format: str
    lines: int
    imported: int
    duplicates: int
    """Lines whose external id was already in the project (or earlier in the file)."""
    responses: int
    rankings: int
    """Rankings that came with the file (HH-RLHF / TRL chosen over rejected)."""
    skipped: list[ImportLineError] = []
    skipped_count: int = 0


class ImportFailure(BaseModel):
    detail: str
    errors: list[ImportLineError]
    error_count: int
    extra: dict[str, Any] = {}


class MemberIn(BaseModel):
    user_id: int
