"""Find a model's config.json and check its architecture fits a role, without loading weights.

A model is a local directory holding a config.json, or a hub id whose files are in the local
Hugging Face cache. Its role says which heads fit:
  policy    a causal LM (sft, dpo, the policy of ppo, generate)
  reward    a sequence classifier with one label (ppo's reward model, generate's scorer)
  backbone  what an rm run trains from: a causal LM, an encoder, or a one-label classifier
  judge     what a judge run asks: a reward model (scores) or a causal LM (asked pairwise)
Reads JSON only (no torch, no transformers), so the web app checks models as they are typed.
"""

from __future__ import annotations

import json
import os
from enum import StrEnum
from pathlib import Path
from typing import Any

from trainer.configs import ConfigError


class Role(StrEnum):
    policy = "policy"
    reward = "reward"
    backbone = "backbone"
    judge = "judge"


class ModelError(ConfigError):
    """A model that is not there, or whose architecture does not fit its role."""


def offline() -> bool:
    """Whether this machine is told not to download (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE)."""
    flags = (os.environ.get(k, "").lower() for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    return any(f in ("1", "true", "yes", "on") for f in flags)


def hub_cache() -> Path:
    """The local Hugging Face hub cache, as huggingface_hub finds it (read at each call)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "huggingface"
    )
    return Path(home) / "hub"


def _cached_config(ref: str) -> Path | None:
    """config.json of hub id `ref` in the local cache (its `main` revision), or None."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # the web app without the train extra: no hub cache to read
        return None
    try:
        found = try_to_load_from_cache(ref, "config.json", cache_dir=hub_cache())
    except ValueError:  # not a valid hub id (HFValidationError)
        return None
    return Path(found) if isinstance(found, str) else None


def looks_local(ref: str) -> bool:
    """Whether `ref` is written as a path (not a hub id such as org/name)."""
    return ref.startswith(("/", ".", "~")) or ref.count("/") > 1 or os.sep == "\\" and "\\" in ref


def find_config(ref: str) -> Path | None:
    """config.json of a local model directory or of a hub id in the local cache; None if neither."""
    path = Path(ref).expanduser()
    if path.is_dir():
        return path / "config.json" if (path / "config.json").is_file() else None
    if looks_local(ref) or path.exists():
        return None
    return _cached_config(ref)


def not_found(ref: str, what: str = "a local directory or a hub id in the local cache") -> str:
    """Why `ref` is not a model here, saying what would make it one."""
    path = Path(ref).expanduser()
    if path.is_dir():
        return f"model {ref!r} is a directory without a config.json, so not a model directory"
    if looks_local(ref):
        return f"model {ref!r}: no such directory"
    how = (
        "this machine cannot download"
        if offline()
        else f"download it here first: `huggingface-cli download {ref}`"
    )
    return f"model {ref!r} is not {what} ({how})"


def read_config(config: Path) -> dict[str, Any]:
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelError(f"{config}: not a readable model config ({e})") from e
    if not isinstance(data, dict):
        raise ModelError(f"{config}: a model config is a JSON object")
    return data


def num_labels(config: dict[str, Any]) -> int:
    """Labels of a classifier config (transformers' default: 2)."""
    if isinstance(config.get("num_labels"), int):
        return config["num_labels"]
    labels = config.get("id2label")
    return len(labels) if isinstance(labels, dict) and labels else 2


def architecture(config: dict[str, Any]) -> tuple[str, str]:
    """(what the model is, its architecture name): what is one of causal-lm, reward (one-label
    sequence classifier), classifier (several labels), encoder (a body without an LM or
    scoring head), seq2seq, other, or unknown (the config names no architecture)."""
    names = [a for a in config.get("architectures") or [] if isinstance(a, str)]
    if not names:
        return "unknown", str(config.get("model_type") or "unknown")
    name = names[0]
    if name.endswith("ForSequenceClassification"):
        return ("reward" if num_labels(config) == 1 else "classifier"), name
    if config.get("is_encoder_decoder"):
        return "seq2seq", name
    if name.endswith(("ForCausalLM", "LMHeadModel", "ForConditionalGeneration")):
        return "causal-lm", name
    if name.endswith(("Model", "ForMaskedLM", "ForPreTraining")):
        return "encoder", name
    return "other", name


FITS: dict[Role, set[str]] = {
    Role.policy: {"causal-lm", "unknown"},
    Role.reward: {"reward"},
    Role.backbone: {"causal-lm", "encoder", "reward", "unknown"},
    Role.judge: {"causal-lm", "reward"},
}
NEEDS = {
    Role.policy: "a policy must be a causal LM (…ForCausalLM)",
    Role.reward: (
        "a reward model is a sequence classifier with one label (…ForSequenceClassification, "
        "as an rm run writes)"
    ),
    Role.backbone: "a reward model trains from a causal LM or an encoder",
    Role.judge: (
        "a judge is a reward model (…ForSequenceClassification with one label) or a causal LM "
        "(…ForCausalLM)"
    ),
}
WHAT = {
    "causal-lm": "a causal LM",
    "reward": "a reward model",
    "classifier": "a classifier with several labels",
    "encoder": "an encoder without an LM head",
    "seq2seq": "an encoder-decoder model",
    "other": "not a text model this trainer uses",
}


def check_model(ref: str, role: Role | str, *, name: str | None = None) -> Path:
    """Its config.json if `ref` is a model on this machine whose architecture fits `role`;
    else ModelError (a hub id not in the local cache included). `name` is how the message
    calls the model (default: `ref`)."""
    config = find_config(ref)
    if config is None:
        raise ModelError(not_found(ref))
    fit_role(read_config(config), Role(role), name or ref)
    return config


def fit_role(config: dict[str, Any], role: Role, label: str) -> None:
    """Raise ModelError unless the config's architecture fits `role`."""
    what, arch = architecture(config)
    if what not in FITS[role]:
        raise ModelError(f"model {label!r} is {WHAT[what]} ({arch}); {NEEDS[role]}")


def check_for_trainer(ref: str, role: Role | str, key: str) -> None:
    """The trainer's own check: a model it can read here must fit its role; a hub id it cannot
    find is left to from_pretrained to download, unless this machine is offline."""
    config = find_config(ref)
    if config is None:
        if looks_local(ref) or Path(ref).expanduser().exists() or offline():
            raise ModelError(f"config key {key!r}: {not_found(ref)}", key)
        return
    try:
        fit_role(read_config(config), Role(role), ref)
    except ModelError as e:
        raise ModelError(f"config key {key!r}: {e}", key) from None
