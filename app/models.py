"""Every table, imported in one place for Alembic and the tests."""

from app.aggregation.models import Exclusion
from app.auth.models import ApiToken, User
from app.datasets.models import Snapshot
from app.db import Base
from app.labeling.models import Annotation, Assignment
from app.projects.models import Project, ProjectMember, Prompt, Response
from app.prompts.models import PromptAction
from app.runs.models import RegisteredModel, RunMetric, TrainingRun, Worker

__all__ = [
    "Annotation",
    "ApiToken",
    "Assignment",
    "Base",
    "Exclusion",
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
