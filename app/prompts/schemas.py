"""Request/response models of task management."""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel

from app.http.bounds import Keyword, SearchText


class LeaseOut(BaseModel):
    assignment_id: int
    user_email: str
    expires_at: datetime


class SkipOut(BaseModel):
    user_email: str
    reason: str


class ResponseBrief(BaseModel):
    id: int
    model: str | None
    text: str


class PromptState(BaseModel):
    """A prompt with its labelling state, as the Prompts page shows it."""

    id: int
    external_id: str
    messages: list[dict]
    is_gold: bool
    retired_at: datetime | None
    labels_done: int
    labels_needed: int
    responses: list[ResponseBrief]
    leases: list[LeaseOut]
    skips: list[SkipOut]


class PromptPage(BaseModel):
    prompts: list[PromptState]
    next_after: int | None
    """Pass as `after` for the next page; null on the last page."""


class BulkAction(BaseModel):
    """An action on every prompt that the filter matches (and that the action can change:
    restore takes retired prompts, requeue and retire the others)."""

    action: Literal["requeue", "retire", "restore"]
    status: Keyword | None = None
    model: SearchText | None = None
    q: SearchText | None = None


class Changed(BaseModel):
    changed: int
