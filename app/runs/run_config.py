"""What a run may set in its trainer's config: the trainer's defaults, and the checks it makes.

The bounds and choices of every key belong to trainer/configs.py; this module applies them
where a run is typed (API, start form, `rlhf runs start`, a next round), and keeps out the keys
the worker sets itself. Whether a live worker's machine can run the distribution is
`resources.refusal`'s question (from the workers' reported resources, where the run is
created); the trainer checks its own machine again when it starts (on a Ray cluster, its
launcher does).
"""

import dataclasses
from typing import Any

from app.config import get_settings
from app.errors import Invalid
from trainer.configs import CONFIGS, ConfigError, build_config

# Set by the worker per run, never by the user.
RESERVED_KEYS = {"model", "models", "train_file", "eval_file", "output_dir", "reward_model"}
# Set per kind from what the run is for (a judge run: its project's kind and rating scale).
KIND_RESERVED = {"judge": {"project_kind", "scale_low", "scale_high", "scale_step"}}


def trainer_defaults(kind: str) -> dict[str, Any]:
    """The trainer's default config for `kind`, minus what the worker sets itself."""
    if kind not in CONFIGS:
        raise Invalid(f"kind must be one of {', '.join(CONFIGS)}; not {kind!r}", field="kind")
    values = dataclasses.asdict(CONFIGS[kind]())
    reserved = RESERVED_KEYS | KIND_RESERVED.get(kind, set())
    return {k: v for k, v in values.items() if k not in reserved}


def suggested_config(kind: str, model_path: str | None) -> dict[str, Any]:
    """Defaults of `kind` with the learning rate, epochs and max length suggested for the model."""
    from trainer.suggest import count_parameters, suggest

    values = trainer_defaults(kind)
    n_params = count_parameters(model_path) if model_path else None
    return {**values, **suggest(kind, n_params)}


class ConfigInvalid(Invalid):
    """A run config the trainer would refuse; `key` names the config key to blame."""

    def __init__(self, message: str, key: str | None) -> None:
        super().__init__(message, field=f"config.{key}" if key else "config")
        self.key = key


def check_config(
    kind: str, config: dict[str, Any], fixed: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Validate user config keys and values (types, bounds, choices) as the trainer will, with
    the keys the run sets itself (`fixed`: a judge's project kind and scale) in place; returns
    the user's keys."""
    reserved = sorted((RESERVED_KEYS | KIND_RESERVED.get(kind, set())) & config.keys())
    if reserved:
        raise ConfigInvalid(f"config keys {reserved} are set by the worker", reserved[0])
    try:
        built = build_config(kind, config, fixed)
    except ConfigError as exc:
        raise ConfigInvalid(str(exc), exc.key) from None
    if getattr(built, "machines", 1) > 1 and not get_settings().ray_address:
        raise ConfigInvalid(
            "a worker runs a run on its own machine: machines must be 1 here (a run across "
            "machines goes to a Ray cluster, RLHF_RAY_ADDRESS, or is launched by hand from its "
            "launch config, see the README)",
            "machines",
        )
    return {key: getattr(built, key) for key in config}
