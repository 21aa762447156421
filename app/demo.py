"""Seed the demo: an admin, three labelers and three projects with prompts written for it."""

from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth import service as auth_service
from app.projects import importer
from app.projects import service as project_service
from app.projects.models import Project
from app.projects.schemas import ProjectCreate

DATA = Path(__file__).resolve().parent / "demo_data"
USERS = [
    ("admin@example.com", "admin", "admin-demo-pass"),
    ("ada@example.com", "labeler", "labeler-demo-pass"),
    ("grace@example.com", "labeler", "labeler-demo-pass"),
    ("alan@example.com", "labeler", "labeler-demo-pass"),
]
CRITERIA = ["hallucination", "unsafe", "ignores instruction", "rude"]
PROJECTS = [
    (
        ProjectCreate(
            name="Demo · rank answers",
            kind="ranking",
            k=4,
            overlap=3,
            criteria=CRITERIA,
            instructions=(
                "Rank the **four answers** from best to worst.\n\n"
                "- Best: correct, helpful, honest and safe.\n"
                "- Flag answers that make things up or are unsafe.\n\n"
                "Keys: `1`…`4` pick the next best, `Backspace` undoes, `Enter` submits, "
                "`S` skips."
            ),
        ),
        "ranking.jsonl",
    ),
    (
        ProjectCreate(
            name="Demo · rate answers",
            kind="rating",
            k=2,
            overlap=2,
            rating_scale="0-5",
            criteria=CRITERIA,
            instructions=(
                "Give each answer a score from **0** (useless) to **5** (excellent), and if you "
                "can, how honest it is and why you scored as you did."
            ),
            questions=[
                {
                    "name": "honesty",
                    "type": "likert",
                    "title": "How honest is it?",
                    "min": 1,
                    "max": 5,
                    "labels": {"1": "misleading", "5": "fully honest"},
                    "required": False,
                },
                {"name": "why", "type": "text", "title": "Why these scores?"},
            ],
        ),
        "rating.jsonl",
    ),
    (
        ProjectCreate(
            name="Demo · write answers",
            kind="demonstration",
            k=1,
            overlap=1,
            instructions=(
                "Write the answer you would want the assistant to give: correct, kind and "
                "to the point. For conversations, write the assistant's next turn."
            ),
        ),
        "demonstration.jsonl",
    ),
]


def seed_models(*, session: Session) -> list[dict[str, Any]]:
    """Build the tiny random demo models (once) and register them as base models."""
    from app.config import get_settings
    from app.runs import registry
    from trainer.tiny import build_tiny_causal_lm, build_tiny_encoder

    root = Path(get_settings().artifacts_dir).resolve() / "models"
    wanted = [
        ("tiny-causal-lm", "policy", root / "tiny-causal-lm", build_tiny_causal_lm),
        ("tiny-encoder", "reward", root / "tiny-encoder", build_tiny_encoder),
    ]
    registered = {m.name: m for m in registry.list_models(session=session)}
    out = []
    for name, kind, path, build in wanted:
        if not (path / "config.json").is_file():
            build(path)
        if name not in registered:
            registry.register_model(session=session, name=name, kind=kind, path=str(path))
        out.append({"name": name, "kind": kind, "path": str(path)})
    session.commit()
    return out


ROUND_NAME = "Demo · next round"


def seed_round(*, session: Session) -> dict[str, Any]:
    """A second tiny policy (its base: tiny-causal-lm) and a blind next round of it against its
    base on the ranking demo's prompts; the generation run is queued for the demo's worker."""
    from app.config import get_settings
    from app.runs import registry, rounds
    from trainer.tiny import build_tiny_causal_lm

    base = registry.registered(session=session, ref="tiny-causal-lm")
    path = Path(get_settings().artifacts_dir).resolve() / "models" / "tiny-causal-lm-v2"
    if not (path / "config.json").is_file():
        build_tiny_causal_lm(path, hidden_size=48)  # another random init: a "new version"
    policy = registry.registered(session=session, ref="tiny-causal-lm-v2")
    if policy is None:
        policy = registry.register_model(
            session=session,
            name="tiny-causal-lm-v2",
            kind="policy",
            path=str(path),
            base_model=base.path if base else None,
            base_model_id=base.id if base else None,
        )
        session.commit()
    project = session.scalar(select(Project).where(Project.name == ROUND_NAME))
    if project is None:
        project, _ = rounds.next_round(
            session=session,
            model_id=policy.id,
            name=ROUND_NAME,
            source_project=PROJECTS[0][0].name,
            n=2,
            overlap=3,
            config={"max_new_tokens": 32, "temperature": 0.9, "top_p": 0.95, "seed": 0},
        )
        session.commit()
    return {"name": project.name, "id": project.id, "k": project.k, "model": policy.name}


def seed(*, session: Session, models: bool = True) -> dict[str, Any]:
    """Create the demo users, projects (and tiny models) that are missing; safe to run again."""
    users = []
    for email, role, password in USERS:
        if auth_service.get_by_email(session=session, email=email) is None:
            auth_service.create_user(session=session, email=email, role=role, password=password)
        users.append({"email": email, "role": role, "password": password})
    session.commit()
    projects = []
    for data, filename in PROJECTS:
        project = session.scalar(select(Project).where(Project.name == data.name))
        if project is None:
            project = project_service.create(session=session, data=data)
            session.commit()
        importer.import_file(session=session, project=project, path=DATA / filename)
        stats = project_service.stats(session=session, project=project)
        projects.append(
            {"id": project.id, "name": project.name, "kind": project.kind, "prompts": stats.prompts}
        )
    result: dict[str, Any] = {"users": users, "projects": projects}
    if models:
        result["models"] = seed_models(session=session)
        result["next_round"] = seed_round(session=session)
    return result
