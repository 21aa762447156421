"""Where a label came from: a person or an AI judge. The one owner of that rule.

A label is AI when its annotation's source is `AnnotationSource.ai` (a judge annotator's
verdict, `judge:<model>`); every other label is human: a labeler's, and an import's (another
tool's annotators, `labelstudio:7`, and label-less imported preferences such as HH's).

`Sources` is what a reader keeps (a snapshot's `sources`: human, the default, ai, or all),
applied to live annotations before any consensus (`labels.live_rows`, `labels.live_payloads`);
`row_source` is what a row made of some labels says of them (human, ai, or mixed);
`standing` is which labels of a prompt a consensus of every source counts.
"""

from collections.abc import Iterable, Sequence
from enum import StrEnum
from typing import Protocol, TypeVar

from sqlalchemy import ColumnElement

from app.labeling.models import Annotation, AnnotationSource


class Sources(StrEnum):
    """Which labels a snapshot (or any reader) keeps."""

    human = "human"
    """People's labels only: a labeler's or an import's (the default: a training set is human
    feedback unless asked otherwise)."""
    ai = "ai"
    """AI judges' labels only."""
    all = "all"
    """Both."""


class RowSource(StrEnum):
    """What a row says of the labels behind it."""

    human = "human"
    ai = "ai"
    mixed = "mixed"


def is_ai(source: str) -> bool:
    """Whether an annotation of this `source` (`Annotation.source`) is an AI judge's."""
    return source == AnnotationSource.ai


def ai_annotation() -> ColumnElement[bool]:
    """`is_ai` in SQL: the annotations that are an AI judge's."""
    return Annotation.source == AnnotationSource.ai


def keeps(sources: str, source: str) -> bool:
    """Whether a reader of `sources` keeps an annotation of this `source`."""
    if sources == Sources.all:
        return True
    return is_ai(source) == (sources == Sources.ai)


def kept(sources: str) -> ColumnElement[bool] | None:
    """`keeps` in SQL: the annotations a reader of `sources` keeps (None: every one)."""
    if sources == Sources.all:
        return None
    return ai_annotation() if sources == Sources.ai else ~ai_annotation()


def row_source(ai: Iterable[bool]) -> str:
    """A row's source (a `RowSource`'s value, plain text as rows hold it) from whether each
    label behind it is AI: human when none is, ai when all are, mixed when both kinds
    contributed."""
    seen = set(ai)
    if seen == {True}:
        return RowSource.ai.value
    return (RowSource.mixed if len(seen) == 2 else RowSource.human).value


class _Judged(Protocol):
    @property
    def ai(self) -> bool: ...
    @property
    def accepted(self) -> bool: ...


L = TypeVar("L", bound=_Judged)


def standing(labels: Sequence[L]) -> list[L]:
    """The labels of one prompt that a consensus of every source counts. A judge's label the
    project accepts (`judge_accepts`: it counts toward overlap) stands beside people's as one
    more vote; one it does not accept stands in only while no person has labeled the prompt.
    Counted as an equal vote, an unsure judge would outvote or tie the people spent on exactly
    the prompts it was unsure of (`order=judge-uncertainty` sends them there first)."""
    if all(x.ai for x in labels) or all(x.accepted for x in labels):
        return list(labels)
    return [x for x in labels if not x.ai or x.accepted]
