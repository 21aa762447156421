"""Request/response models of the labeling API."""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.http.bounds import Json, JsonObject, text
from app.projects.questions import MAX_QUESTIONS

Demonstration = text(200_000)
FlagName = text(100)
QuestionKey = text(40)


class TaskResponse(BaseModel):
    id: int
    text: str


class Suggestion(BaseModel):
    """A judge's (or an imported) answer to the task, in the task's terms
    (`app.labeling.suggestions`): a ranking of its response ids best first (ties as inner
    lists) or a score per response id."""

    mode: Literal["shown", "prefilled"]
    """shown: beside the answer; prefilled: the answer starts from it."""
    ranking: list[int | list[int]] | None = None
    scores: dict[str, int] | None = None


class Task(BaseModel):
    """One assignment as a labeler sees it: the prompt and its responses in random order."""

    assignment_id: int
    project_id: int
    prompt_id: int
    kind: str
    instructions: str
    messages: list[dict[str, str]]
    responses: list[TaskResponse]
    rating_scale: str
    criteria: list[str]
    strength_scale: list[dict[str, Any]] = []
    """K=2 rankings: the levels of "how much better", strongest first (empty: not asked)."""
    questions: list[dict[str, Any]] = []
    """The project's extra questions (app/projects/questions.py), answered under `answers`."""
    suggestion: Suggestion | None = None
    """With the project's suggestions shown or prefilled: a suggested answer, if the prompt
    has one (`app.labeling.suggestions`)."""
    expires_at: datetime


class Message(BaseModel):
    role: str
    content: str


class AnnotationIn(BaseModel):
    """Exactly one of ranking, scores, demonstration — matching the project's kind."""

    model_config = ConfigDict(extra="forbid")

    ranking: list[Json] | None = Field(None, max_length=100)
    """Response ids best first; an inner list is a group of tied responses."""
    strength: Json | None = None
    """With a project's strength scale (K=2): how much better the first response is."""
    scores: JsonObject | None = None
    demonstration: Demonstration | list[Json] | None = None
    flags: dict[FlagName, list[Json]] = Field(default_factory=dict, max_length=100)
    answers: dict[QuestionKey, Json] = Field(default_factory=dict, max_length=MAX_QUESTIONS)
    """The project's questions: {name: {response id: value} | value | "text"}."""
    duration_ms: int | None = Field(None, ge=0, le=7 * 24 * 3600 * 1000)


class SkipIn(BaseModel):
    reason: text(2000, 1)


class AnnotationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    project_id: int
    prompt_id: int
    assignment_id: int | None
    user_id: int | None
    kind: str
    payload: dict[str, Any]
    flags: dict[str, Any]
    source: str
    duration_ms: int | None
    supersedes_id: int | None
    created_at: datetime


class SubmitOut(AnnotationOut):
    """A stored annotation and, when asked for with ?next=1 (or =page), the next task."""

    next_task: Task | None = None
    next_page: str | None = None
    """With ?next=page: the labeling page of the next task, as HTML."""


class AssignmentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    project_id: int
    prompt_id: int
    user_id: int
    status: str
    response_ids: list[int]
    expires_at: datetime
    created_at: datetime
    completed_at: datetime | None
    skip_reason: str | None


class SkipOut(AssignmentOut):
    """A skipped assignment and, when asked for with ?next=1 (or =page), the next task."""

    next_task: Task | None = None
    next_page: str | None = None


class Progress(BaseModel):
    project_id: int
    leased: int = 0
    """Live leases this labeler holds: the current task and the one a page keeps ready."""
    done: int
    skipped: int
    available: int
    """Prompts this labeler could still be given, gold items included (none once no real
    prompt is left)."""
    held: str | None = None
    """Why this labeler gets no tasks in the project for now (auto-hold), else None."""
