"""Every table, imported in one place for Alembic and the tests."""

from app.auth.models import ApiToken, LoginSession, User
from app.base import Base
from app.datasets.models import Snapshot
from app.labeling.models import Annotation, Assignment, Exclusion, Judgment, LabelerHold
from app.projects.models import Project, ProjectMember, Prompt, Response
from app.prompts.models import PromptAction
from app.runs.models import RegisteredModel, RunMetric, TrainingRun, Worker

__all__ = [
    "Annotation",
    "ApiToken",
    "Assignment",
    "Base",
    "Exclusion",
    "Judgment",
    "LabelerHold",
    "LoginSession",
    "Project",
    "ProjectMember",
    "Prompt",
    "PromptAction",
    "RegisteredModel",
    "Response",
    "RunMetric",
    "Snapshot",
    "TrainingRun",
    "User",
    "Worker",
]
