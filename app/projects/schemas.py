"""Request/response models of projects and imports."""

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    model_validator,
)

from app.http.bounds import Id, Instructions, Name, text
from app.projects import questions as question_defs
from app.projects.kinds import ProjectKind, RatingScale
from app.projects.questions import Questions
from app.projects.strength import MAX_LEVELS
from trainer.configs import DEFAULT_JUDGE_TEMPLATE, judge_template_problem

ProjectName = Name
Criterion = text(60)


def _NO_DEFAULT(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


class StrengthLevel(BaseModel):
    """One level of a preference-strength scale: what labelers see and the margin it means."""

    model_config = ConfigDict(extra="forbid")

    label: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    margin: float = Field(ge=0.0, le=100.0, allow_inf_nan=False)
    """Added to the reward gap the loss asks for: −log σ(r_chosen − r_rejected − margin)."""


StrengthScale = Annotated[list[StrengthLevel], Field(max_length=MAX_LEVELS)]


def _strength_scale(value: list[StrengthLevel]) -> list[StrengthLevel]:
    if len(value) == 1:
        raise ValueError("a strength scale needs at least 2 levels (or none)")
    labels = [level.label for level in value]
    if len(set(labels)) != len(labels):
        raise ValueError("strength levels need distinct labels")
    return value


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


Suggestions = Literal["off", "shown", "prefilled"]
"""off | shown (beside the answer) | prefilled (the answer starts from it): a judge's or an
imported suggestion on the labeling page (`app.labeling.suggestions`)."""

# The settings' checks, on their types: the create and the update forms share them.
CheckedCriteria = Annotated[list[Criterion], AfterValidator(_criteria)]
CheckedStrengthScale = Annotated[StrengthScale, AfterValidator(_strength_scale)]
CheckedQuestions = Annotated[Questions, WrapValidator(_questions)]


Order = Literal["id", "uncertainty", "judge-uncertainty"]
"""Which prompts labelers get first (`lease_rules.serving_order`)."""
JudgeAccepts = Annotated[float | None, Field(ge=0.0, le=1e6, allow_inf_nan=False)]
"""The margin from which a judge's label counts toward overlap (None: never)."""


def _judge_template(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None  # blank: the trainer's own question
    if (problem := judge_template_problem(value)) is not None:
        raise ValueError(problem.removeprefix("judge_template "))
    return value


JudgeTemplate = Annotated[text(20_000) | None, AfterValidator(_judge_template)]
"""The question a pairwise judge of the project is asked (None: the trainer's default)."""
JudgeFills = Annotated[int, Field(ge=1, le=100)]
"""How many overlap slots an accepted judge label fills (`Project.judge_fills`)."""


class ProjectSettings(BaseModel):
    instructions: Instructions = ""
    k: int = Field(4, ge=1, le=9, description="responses shown per prompt (2…9 for rankings)")
    overlap: int = Field(1, ge=1, le=100, description="labelers per prompt")
    lease_seconds: int = Field(1800, ge=30, le=7 * 24 * 3600)
    rating_scale: RatingScale = RatingScale.thumbs
    criteria: CheckedCriteria = Field(default_factory=list, max_length=50)
    """The per-response flags labelers can set (a multi-label question named `flags`)."""
    questions: CheckedQuestions = Field(default_factory=list)
    """Extra questions shown with each task (see app/projects/questions.py)."""
    gold_rate: float = Field(0.1, ge=0.0, le=1.0, description="share of tasks that are gold")
    auto_hold: bool = Field(False, description="hold labelers with low gold accuracy")
    hold_after_gold: int = Field(5, ge=1, le=1000, description="gold items before a hold")
    order: Order = Field(
        "id",
        description="serve prompts in import order, those a reward model separates least "
        "(uncertainty), or those a judge was least sure of (judge-uncertainty)",
    )
    judge_accepts: JudgeAccepts = Field(
        None,
        description="a judge label whose margin is at least this counts toward overlap, "
        "filling judge_fills of a prompt's slots; null (the default): judge labels never "
        "replace a human's",
    )
    judge_template: JudgeTemplate = Field(
        None,
        description="the question a pairwise judge (a causal LM, an endpoint) is asked: "
        "{prompt} is the conversation, {a} and {b} the two responses; null or blank: the "
        "default question. A judge run's own judge_template overrides it",
        json_schema_extra={"examples": [DEFAULT_JUDGE_TEMPLATE]},
    )
    judge_fills: JudgeFills = Field(
        1,
        description="how many of a prompt's overlap slots an accepted judge label fills: 1 "
        "(the default) stands for one labeler; the overlap or more completes the prompt",
    )
    strength_scale: CheckedStrengthScale = Field(
        default_factory=list,
        description="K=2 rankings: levels of preference strength, strongest first (empty: none)",
    )
    suggestions: Suggestions = Field(
        "off", description="show labelers a judge's suggestion, or start their answer from it"
    )


class ProjectCreate(ProjectSettings):
    name: ProjectName
    kind: ProjectKind

    @model_validator(mode="after")
    def _k_fits_kind(self) -> "ProjectCreate":
        if self.kind == ProjectKind.ranking and self.k < 2:
            raise ValueError("a ranking project shows k ≥ 2 responses")
        if self.strength_scale and (self.kind != ProjectKind.ranking or self.k != 2):
            raise ValueError("a strength scale needs a ranking project with k = 2")
        problem = question_defs.check_kind(self.stored_questions(), self.kind)
        if problem:
            raise ValueError(problem)
        return self

    def stored_questions(self) -> list[dict[str, Any]]:
        """The questions as the project stores and shows them (JSON)."""
        return [q.model_dump(mode="json") for q in self.questions]


class ProjectUpdate(BaseModel):
    """The fields to change; a field left out keeps its value, and none may be null but
    judge_accepts and judge_template."""

    # Defaults of None mean "left out"; an explicit null fails the (non-null) type: 422.
    name: ProjectName = Field(None, json_schema_extra=_NO_DEFAULT)
    instructions: Instructions = Field(None, json_schema_extra=_NO_DEFAULT)
    k: int = Field(None, ge=1, le=9, json_schema_extra=_NO_DEFAULT)
    overlap: int = Field(None, ge=1, le=100, json_schema_extra=_NO_DEFAULT)
    lease_seconds: int = Field(None, ge=30, le=7 * 24 * 3600, json_schema_extra=_NO_DEFAULT)
    rating_scale: RatingScale = Field(None, json_schema_extra=_NO_DEFAULT)
    criteria: CheckedCriteria = Field(None, max_length=50, json_schema_extra=_NO_DEFAULT)
    questions: CheckedQuestions = Field(None, json_schema_extra=_NO_DEFAULT)
    is_archived: bool = Field(None, json_schema_extra=_NO_DEFAULT)
    gold_rate: float = Field(None, ge=0.0, le=1.0, json_schema_extra=_NO_DEFAULT)
    auto_hold: bool = Field(None, json_schema_extra=_NO_DEFAULT)
    hold_after_gold: int = Field(None, ge=1, le=1000, json_schema_extra=_NO_DEFAULT)
    order: Order = Field(None, json_schema_extra=_NO_DEFAULT)
    judge_accepts: JudgeAccepts = Field(None, json_schema_extra=_NO_DEFAULT)
    """May be null: null turns judge labels' counting off."""
    judge_fills: JudgeFills = Field(None, json_schema_extra=_NO_DEFAULT)
    judge_template: JudgeTemplate = Field(None, json_schema_extra=_NO_DEFAULT)
    """May be null too: null (or blank) goes back to the default question."""
    strength_scale: CheckedStrengthScale = Field(None, json_schema_extra=_NO_DEFAULT)
    suggestions: Suggestions = Field(None, json_schema_extra=_NO_DEFAULT)


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
    judge_accepts: float | None
    judge_fills: int
    judge_template: str | None
    strength_scale: list[dict[str, Any]]
    suggestions: str
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
    """The line's number; in a JSON array, the record's; in Parquet, the row's (the report's
    `unit` says which)."""
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
    labels: int = 0
    """Labels of source annotators that came with the file (another tool's export)."""
    skipped_labels: int = 0
    """Source annotators' skipped (cancelled, discarded) tasks."""
    labelers: int = 0
    """Source annotators created (`labelstudio:7`: labelers who cannot sign in)."""
    notes: list[str] = []
    """How values of the file were mapped (e.g. a 1–10 rating onto the project's scale)."""
    unit: str = "line"
    """What `lines` counts: lines, records (of a JSON array) or rows (Parquet)."""
    skipped: list[ImportLineError] = []
    skipped_count: int = 0


class ImportFailure(BaseModel):
    detail: str
    errors: list[ImportLineError]
    error_count: int
    extra: dict[str, Any] = {}


class MemberIn(BaseModel):
    user_id: Id
