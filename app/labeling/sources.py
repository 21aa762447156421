"""Where a label came from: a person or an AI judge. The one owner of that rule.

A label is AI when its annotation's source is `AnnotationSource.ai` (a judge annotator's
verdict, `judge:<model>`); every other label is human: a labeler's, and an import's (another
tool's annotators, `labelstudio:7`, and label-less imported preferences such as HH's).

`Sources` is what a reader keeps (a snapshot's `sources`: human, the default, ai, or all),
applied to live annotations before any consensus (`labels.live_rows`, `labels.live_payloads`);
`row_source` is what a row made of some labels says of them (human, ai, or mixed).
"""

from collections.abc import Iterable
from enum import StrEnum

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
