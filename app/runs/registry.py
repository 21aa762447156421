"""The model registry, and what a typed model reference means: the one owner of both.

A reference is a registered model's name or id, a local directory holding a config.json, or a
hub id whose files are in the local Hugging Face cache. Its role comes from where it is used:
a policy (sft, dpo, ppo's policy, generate), a reward model (ppo's, generate's scorer), or an rm
run's backbone. The architecture is read from config.json (trainer/model_files.py); no weights
are loaded. Run creation, generation, next rounds and registration all check models here.

A usable reward model is whatever `reward_model` accepts: a registered reward model, or a
local directory or cached hub id holding a one-label sequence classifier. A reward model only
scores (ppo's reward, a generation run's order by uncertainty); the run records its path, and
its registry id when it has one, exactly as it does for the model a training run starts from.
Generation's policies are the exception, and must be registered (`policies`): every response
they write is tagged with the registered model that wrote it, for blind rounds and the
registry leaderboard.
"""

from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import Conflict, Invalid, NotFound
from app.runs.models import ModelKind, RegisteredModel
from trainer.model_files import NEEDS, ModelError, Role, check_model, find_config, not_found

ROLE_OF_KIND = {ModelKind.policy: Role.policy, ModelKind.reward: Role.reward}
"""The role a registered model of each kind plays."""
ANY_FORM = "a registered model, a local directory, or a hub id in the local cache"


def register_model(
    *,
    session: Session,
    name: str,
    kind: str,
    path: str,
    base_model: str | None = None,
    base_model_id: int | None = None,
    snapshot_content_hash: str | None = None,
    run_id: int | None = None,
    metrics: dict[str, Any] | None = None,
    check: bool = True,
) -> RegisteredModel:
    """Add a model to the registry (names are unique). Its path must hold a model of its kind
    (`check`; a run's output is what the trainer just wrote, registered unchecked)."""
    if kind not in ModelKind.__members__:
        raise Invalid(f"kind must be {' or '.join(ModelKind)}", field="kind")
    if session.scalar(select(RegisteredModel.id).where(RegisteredModel.name == name)):
        raise Conflict(f"a model named {name!r} is registered already", field="name")
    if check:
        path = check_path(path, ROLE_OF_KIND[ModelKind(kind)], field="path")
    model = RegisteredModel(
        name=name,
        kind=kind,
        path=path,
        base_model=base_model,
        base_model_id=base_model_id,
        snapshot_content_hash=snapshot_content_hash,
        run_id=run_id,
        metrics=metrics or {},
    )
    session.add(model)
    session.flush()
    return model


def list_models(*, session: Session, kind: str | None = None) -> list[RegisteredModel]:
    """Registered models, newest first."""
    query = select(RegisteredModel).order_by(RegisteredModel.id.desc())
    if kind:
        query = query.where(RegisteredModel.kind == kind)
    return list(session.scalars(query))


def get_model(*, session: Session, model_id: int) -> RegisteredModel:
    """A registered model, or NotFound."""
    model = session.get(RegisteredModel, model_id)
    if model is None:
        raise NotFound(f"no registered model {model_id}")
    return model


def registered(*, session: Session, ref: str) -> RegisteredModel | None:
    """The registered model named `ref` (or with id `ref`); None if `ref` is neither.

    A number that is no model's name must be a registered id: NotFound if there is none.
    """
    ref = ref.strip()
    model = session.scalar(select(RegisteredModel).where(RegisteredModel.name == ref))
    if model is None and ref.isdigit():
        model = session.get(RegisteredModel, int(ref))
        if model is None:
            raise NotFound(f"no registered model {ref}")
    return model


def check_path(path: str, role: Role, *, field: str, name: str | None = None) -> str:
    """`path` as the worker's trainer must get it (a local directory made absolute: the trainer
    runs in its run directory), if it is a model here whose architecture fits `role`; else
    Invalid naming `field`."""
    try:
        check_model(path, role, name=name)
    except ModelError as exc:
        raise Invalid(str(exc), field=field) from None
    local = Path(path).expanduser()
    return str(local.resolve()) if local.is_dir() else path


def resolve(
    *,
    session: Session,
    ref: str,
    role: Role,
    field: str,
    registered_only: bool = False,
) -> tuple[str, RegisteredModel | None]:
    """(the path `from_pretrained` gets, the registered model or None) for a reference that is
    a model fitting `role`; else Invalid or NotFound naming `field`. `registered_only`: the
    reference must be a registered model (generation runs record which ones sampled)."""
    ref = ref.strip()
    if not ref:
        raise Invalid("a model is required", field=field)
    try:
        model = registered(session=session, ref=ref)
    except NotFound as exc:
        raise NotFound(exc.message, field=field) from None
    if model is not None:
        wanted = {Role.policy: ModelKind.policy, Role.reward: ModelKind.reward}.get(role)
        if wanted is not None and model.kind != wanted:
            raise Invalid(
                f"model {model.name!r} is a {model.kind} model in the registry; {NEEDS[role]}",
                field=field,
            )
        try:
            check_model(model.path, role, name=model.name)
        except ModelError as exc:
            raise Invalid(f"registered model {model.name!r}: {exc}", field=field) from None
        return model.path, model
    if registered_only:
        raise NotFound(
            f"no registered model {ref!r}; register it first (Models page or "
            "`rlhf models register`)",
            field=field,
        )
    if find_config(ref) is None:
        raise Invalid(not_found(ref, ANY_FORM), field=field)
    return check_path(ref, role, field=field), None


def reward_model(
    *, session: Session, ref: str, field: str = "reward_model"
) -> tuple[str, RegisteredModel | None]:
    """A usable reward model (see the module doc): its path, and its registry row if it has one."""
    return resolve(session=session, ref=ref, role=Role.reward, field=field)


def policies(*, session: Session, refs: list[str], field: str = "models") -> list[RegisteredModel]:
    """Registered policies by id or name, in order, without repeats; each checked."""
    if not refs:
        raise Invalid("name at least one registered model to generate with", field=field)
    out: list[RegisteredModel] = []
    for ref in refs:
        _, model = resolve(
            session=session, ref=ref, role=Role.policy, field=field, registered_only=True
        )
        assert model is not None
        if model.id not in {m.id for m in out}:
            out.append(model)
    return out
