"""The extra questions a project asks with each task, besides its main label.

A question is per response (a Likert scale, yes/no, or several labels out of a list) or per
task (one choice out of a list, or a free-text rationale). Answers travel beside the main
payload as `{"answers": {name: {response id: value} | value | "text"}}` and are checked by
`app.labeling.answers`.

The project's `criteria` (flags) stay what they were: a per-response multi-label question named
`flags` whose answers are stored in the annotation's `flags`; exports list them under
`answers.flags`. The names `flags` and `score` (the main rating in `ratings` snapshots) are
therefore reserved.
"""

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

RESERVED = ("flags", "score")
MAX_QUESTIONS = 20
MAX_POINTS = 10
"""A Likert scale has at most 10 points, so each point has a digit key (0 stands for 10)."""
MAX_OPTIONS = 20
MAX_RATIONALE = 10_000

QuestionName = Annotated[
    str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$", min_length=1, max_length=40)
]
"""Lower-case letters, digits and _, starting with a letter (a key in files and forms)."""
NO_NUL = r"^[^\x00]*$"
"""Text PostgreSQL can store: no NUL character."""
Option = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=NO_NUL)]
Title = Annotated[str, StringConstraints(max_length=500, pattern=NO_NUL)]
PointLabel = Annotated[str, StringConstraints(max_length=100, pattern=NO_NUL)]


class QuestionType(StrEnum):
    likert = "likert"
    """Per response: an integer from `min` to `max` (e.g. helpfulness 1–7)."""
    yes_no = "yes_no"
    """Per response: true or false."""
    multi_label = "multi_label"
    """Per response: any of `options` (a list, possibly empty)."""
    single_choice = "single_choice"
    """Per task: one of `options`."""
    text = "text"
    """Per task: a free-text rationale."""


PER_RESPONSE = {QuestionType.likert, QuestionType.yes_no, QuestionType.multi_label}


class _Question(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: QuestionName
    title: Title = ""
    """What the labeler reads (default: the name)."""
    required: bool = True
    """Every response (per-response questions) or the task must have an answer."""

    @model_validator(mode="after")
    def _name_free(self) -> "_Question":
        if self.name in RESERVED:
            raise ValueError(f"the names {', '.join(RESERVED)} are reserved")
        return self


class LikertQuestion(_Question):
    type: Literal[QuestionType.likert]
    min: int = Field(1, ge=0, le=10)
    max: int = Field(7, ge=1, le=10)
    labels: dict[int, PointLabel] = Field(default_factory=dict)
    """Words for some or all points, e.g. {"1": "not at all", "7": "fully"}."""

    @model_validator(mode="after")
    def _scale(self) -> "LikertQuestion":
        if self.max <= self.min:
            raise ValueError(f"max ({self.max}) must be above min ({self.min})")
        if self.max - self.min + 1 > MAX_POINTS:
            raise ValueError(f"at most {MAX_POINTS} points (min {self.min}, max {self.max})")
        outside = sorted(p for p in self.labels if not self.min <= p <= self.max)
        if outside:
            raise ValueError(f"labels for points {outside} outside {self.min}…{self.max}")
        return self


class YesNoQuestion(_Question):
    type: Literal[QuestionType.yes_no]


def _distinct(options: list[str]) -> None:
    if len(set(options)) != len(options):
        raise ValueError("options must be distinct")


class MultiLabelQuestion(_Question):
    type: Literal[QuestionType.multi_label]
    required: bool = False
    """True: each response gets at least one label."""
    options: list[Option] = Field(min_length=1, max_length=MAX_OPTIONS)

    @model_validator(mode="after")
    def _options(self) -> "MultiLabelQuestion":
        _distinct(self.options)
        return self


class SingleChoiceQuestion(_Question):
    type: Literal[QuestionType.single_choice]
    options: list[Option] = Field(min_length=2, max_length=MAX_OPTIONS)

    @model_validator(mode="after")
    def _options(self) -> "SingleChoiceQuestion":
        _distinct(self.options)
        return self


class TextQuestion(_Question):
    type: Literal[QuestionType.text]
    required: bool = False
    max_length: int = Field(2000, ge=1, le=MAX_RATIONALE)


Question = Annotated[
    LikertQuestion | YesNoQuestion | MultiLabelQuestion | SingleChoiceQuestion | TextQuestion,
    Field(discriminator="type"),
]
Questions = Annotated[list[Question], Field(max_length=MAX_QUESTIONS)]


def check_names(questions: list[Any]) -> list[Any]:
    """The questions, or ValueError when two share a name."""
    seen: set[str] = set()
    for question in questions:
        if question.name in seen:
            raise ValueError(f"question {question.name!r} is defined twice")
        seen.add(question.name)
    return questions


def check_kind(questions: list[dict[str, Any]], kind: str) -> str | None:
    """What is wrong with these questions for a project of `kind` (a demonstration shows no
    responses, so it takes per-task questions only), or None."""
    if kind != "demonstration":
        return None
    for question in questions:
        if question["type"] in PER_RESPONSE:
            return (
                f"question {question['name']!r}: a demonstration project shows no responses, "
                f"so it cannot ask a per-response {question['type']} question"
            )
    return None


def likert_names(questions: list[dict[str, Any]]) -> list[str]:
    """Names of the per-response Likert questions (the aspects of a `ratings` snapshot)."""
    return [q["name"] for q in questions if q["type"] == QuestionType.likert]
