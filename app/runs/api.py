"""JSON routes of training runs and the model registry (admins only)."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from annotated_types import Ge, Le
from fastapi import APIRouter
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse

from app.db import SessionDep
from app.deps import AdminUser
from app.http.bounds import MAX_ID, Id, Keyword, Seed
from app.runs import health, registry, run_config, service
from app.runs import rounds as round_service
from app.runs.schemas import (
    MetricOut,
    ModelCreate,
    ModelOut,
    NextRoundCreate,
    NextRoundOut,
    RegistryLeaderboard,
    RunCreate,
    RunOut,
)

Step = Annotated[int, Ge(-1), Le(MAX_ID)]
LogLines = Annotated[int, Ge(1), Le(5000)]
Rounds = Annotated[int, Ge(1), Le(100_000)]

router = APIRouter(prefix="/api/v1", tags=["runs"])


@contextmanager
def config_errors(config: dict) -> Iterator[None]:
    """A refused config key answers like any refused body field: 422 with its loc."""
    try:
        yield
    except run_config.ConfigInvalid as exc:
        loc = ("body", "config", exc.key) if exc.key else ("body", "config")
        error = {"type": "value_error", "loc": loc, "msg": exc.message}
        if exc.key in config:
            error["input"] = config[exc.key]
        raise RequestValidationError([error]) from None


@router.post("/runs", response_model=RunOut, status_code=201)
def start_run(body: RunCreate, session: SessionDep, admin: AdminUser) -> object:
    with config_errors(body.config):
        run = service.create_run(
            session=session,
            kind=body.kind,
            snapshot_id=body.snapshot_id,
            model=body.model,
            reward_model=body.reward_model,
            config=body.config,
            name=body.name,
            created_by_id=admin.id,
            project=body.project,
            models=body.models,
        )
    session.commit()
    return run


@router.get("/runs", response_model=list[RunOut])
def list_runs(
    session: SessionDep, _: AdminUser, status: Keyword | None = None, kind: Keyword | None = None
) -> object:
    return service.list_runs(session=session, status=status, kind=kind)


@router.get("/runs/defaults/{kind}")
def run_defaults(kind: Keyword, _: AdminUser) -> dict:
    """The trainer's default config for a kind (what the start form prefills)."""
    return run_config.trainer_defaults(kind)


@router.get("/runs/{run_id}", response_model=RunOut)
def get_run(run_id: Id, session: SessionDep, _: AdminUser) -> object:
    run = service.get_run(session=session, run_id=run_id)
    out = RunOut.model_validate(run)
    out.warnings = health.warnings(session=session, run=run)
    return out


@router.get("/runs/{run_id}/metrics", response_model=list[MetricOut])
def run_metrics(run_id: Id, session: SessionDep, _: AdminUser, after: Step = -1) -> object:
    """Metric rows with step > after (poll with the last step seen)."""
    service.get_run(session=session, run_id=run_id)
    return service.metrics(session=session, run_id=run_id, after=after)


@router.get("/runs/{run_id}/log", response_class=PlainTextResponse)
def run_log(run_id: Id, session: SessionDep, _: AdminUser, lines: LogLines = 200) -> str:
    run = service.get_run(session=session, run_id=run_id)
    return service.log_tail(run.run_dir, lines)


@router.post("/runs/{run_id}/cancel", response_model=RunOut)
def cancel_run(run_id: Id, session: SessionDep, _: AdminUser) -> object:
    run = service.cancel_run(session=session, run=service.get_run(session=session, run_id=run_id))
    session.commit()
    return run


@router.post("/runs/{run_id}/retry", response_model=RunOut)
def retry_run(run_id: Id, session: SessionDep, _: AdminUser) -> object:
    """Queue a failed or cancelled run again; it resumes from its last checkpoint."""
    run = service.retry_run(session=session, run=service.get_run(session=session, run_id=run_id))
    session.commit()
    return run


@router.get("/models", response_model=list[ModelOut])
def list_models(session: SessionDep, _: AdminUser, kind: Keyword | None = None) -> object:
    return registry.list_models(session=session, kind=kind)


@router.post("/models", response_model=ModelOut, status_code=201)
def register_model(body: ModelCreate, session: SessionDep, _: AdminUser) -> object:
    model = registry.register_model(session=session, name=body.name, kind=body.kind, path=body.path)
    session.commit()
    return model


@router.get("/models/leaderboard", response_model=RegistryLeaderboard)
def models_leaderboard(
    session: SessionDep, _: AdminUser, rounds: Rounds = 1000, seed: Seed = 0
) -> object:
    """Human preference by model version: Bradley-Terry over every ranking of their responses."""
    return round_service.registry_leaderboard(session=session, rounds=rounds, seed=seed)


@router.post("/models/{model_id}/next-round", response_model=NextRoundOut, status_code=201)
def next_round(
    model_id: Id, body: NextRoundCreate, session: SessionDep, admin: AdminUser
) -> object:
    """A blind ranking project of this policy against others, with its generation run queued."""
    with config_errors(body.config):
        project, run = round_service.next_round(
            session=session,
            model_id=model_id,
            name=body.name,
            snapshot_id=body.snapshot_id,
            source_project=body.project,
            compare_with=body.compare_with,
            n=body.n,
            overlap=body.overlap,
            config=body.config,
            created_by_id=admin.id,
            reward_model=body.reward_model,
        )
    session.commit()
    return NextRoundOut(
        project_id=project.id,
        project_name=project.name,
        k=project.k,
        run=RunOut.model_validate(run),
    )
