"""What a typed model reference means, and whether that model fits its role: the one owner.

A reference is a registered model's name or id, a local directory holding a config.json, or a
hub id whose files are in the local Hugging Face cache. Its role comes from where it is used:
a policy (sft, dpo, ppo's policy, generate), a reward model (ppo's, generate's scorer), or an rm
run's backbone. The architecture is read from config.json (trainer/model_files.py); no weights
are loaded. Run creation, generation, next rounds and registration all check models here.
"""

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import Invalid, NotFound
from app.runs.models import ModelKind, RegisteredModel
from trainer.model_files import NEEDS, ModelError, Role, check_model, find_config, not_found

ROLE_OF_KIND = {ModelKind.policy: Role.policy, ModelKind.reward: Role.reward}
"""The role a registered model of each kind plays."""
ANY_FORM = "a registered model, a local directory, or a hub id in the local cache"


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
