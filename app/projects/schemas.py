"""Request/response models of projects and imports."""

from datetime import datetime
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

from app.http.bounds import Id, Instructions, Name, text
from app.projects import questions as question_defs
from app.projects.kinds import ProjectKind, RatingScale
from app.projects.questions import Questions

ProjectName = Name
Criterion = text(60)


def _NO_DEFAULT(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def _criteria(value: list[str]) -> list[str]:
    names = [c.strip() for c in value if c.strip()]
    if len(set(names)) != len(names):
        raise ValueError("criteria names must be distinct")
    return names


def _questions(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """Validate question definitions; each error names its question (not just its index)."""
    try:
        parsed = handler(value)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = list(error["loc"])
            where = "questions"
            if loc and isinstance(loc[0], int) and isinstance(value, list):
                item = value[loc[0]] if loc[0] < len(value) else None
                name = item.get("name") if isinstance(item, dict) else None
                where = f"question {name!r}" if isinstance(name, str) else f"questions[{loc[0]}]"
                loc = [p for p in loc[1:] if p not in question_defs.QuestionType.__members__]
            field = ".".join(str(p) for p in loc)
            message = error["msg"].removeprefix("Value error, ")
            problems.append(f"{where}{' ' + field if field else ''}: {message}")
        raise ValueError("; ".join(problems)) from None
    return question_defs.check_names(parsed)


class ProjectSettings(BaseModel):
    instructions: Instructions = ""
    k: int = Field(4, ge=1, le=9, description="responses shown per prompt (2…9 for rankings)")
    overlap: int = Field(1, ge=1, le=100, description="labelers per prompt")
    lease_seconds: int = Field(1800, ge=30, le=7 * 24 * 3600)
    rating_scale: RatingScale = RatingScale.thumbs
    criteria: list[Criterion] = Field(default_factory=list, max_length=50)
    """The per-response flags labelers can set (a multi-label question named `flags`)."""
    questions: Questions = Field(default_factory=list)
    """Extra questions shown with each task (see app/projects/questions.py)."""
    gold_rate: float = Field(0.1, ge=0.0, le=1.0, description="share of tasks that are gold")
    auto_hold: bool = Field(False, description="hold labelers with low gold accuracy")
    hold_after_gold: int = Field(5, ge=1, le=1000, description="gold items before a hold")
    order: Literal["id", "uncertainty"] = Field(
        "id", description="serve prompts in import order, or those a reward model separates least"
    )

    @field_validator("criteria")
    @classmethod
    def _criteria_names(cls, value: list[str]) -> list[str]:
        return _criteria(value)

    @field_validator("questions", mode="wrap")
    @classmethod
    def _question_names(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        return _questions(value, handler)


class ProjectCreate(ProjectSettings):
    name: ProjectName
    kind: ProjectKind

    @model_validator(mode="after")
    def _k_fits_kind(self) -> "ProjectCreate":
        if self.kind == ProjectKind.ranking and self.k < 2:
            raise ValueError("a ranking project shows k ≥ 2 responses")
        problem = question_defs.check_kind(self.stored_questions(), self.kind)
        if problem:
            raise ValueError(problem)
        return self

    def stored_questions(self) -> list[dict[str, Any]]:
        """The questions as the project stores and shows them (JSON)."""
        return [q.model_dump(mode="json") for q in self.questions]


class ProjectUpdate(BaseModel):
    """The fields to change; a field left out keeps its value, and none may be null."""

    # Defaults of None mean "left out"; an explicit null fails the (non-null) type: 422.
    name: ProjectName = Field(None, json_schema_extra=_NO_DEFAULT)
    instructions: Instructions = Field(None, json_schema_extra=_NO_DEFAULT)
    k: int = Field(None, ge=1, le=9, json_schema_extra=_NO_DEFAULT)
    overlap: int = Field(None, ge=1, le=100, json_schema_extra=_NO_DEFAULT)
    lease_seconds: int = Field(None, ge=30, le=7 * 24 * 3600, json_schema_extra=_NO_DEFAULT)
    rating_scale: RatingScale = Field(None, json_schema_extra=_NO_DEFAULT)
    criteria: list[Criterion] = Field(None, max_length=50, json_schema_extra=_NO_DEFAULT)
    questions: Questions = Field(None, json_schema_extra=_NO_DEFAULT)
    is_archived: bool = Field(None, json_schema_extra=_NO_DEFAULT)
    gold_rate: float = Field(None, ge=0.0, le=1.0, json_schema_extra=_NO_DEFAULT)
    auto_hold: bool = Field(None, json_schema_extra=_NO_DEFAULT)
    hold_after_gold: int = Field(None, ge=1, le=1000, json_schema_extra=_NO_DEFAULT)
    order: Literal["id", "uncertainty"] = Field(None, json_schema_extra=_NO_DEFAULT)

    @field_validator("criteria")
    @classmethod
    def _criteria_names(cls, value: list[str]) -> list[str]:
        return _criteria(value)

    @field_validator("questions", mode="wrap")
    @classmethod
    def _question_names(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        return _questions(value, handler)


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
    questions: list[dict[str, Any]]
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
    user_id: Id
