"""Dataclass configs for every trainer: one documented field per line, sensible defaults."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A config file or override names an unknown key or carries a value of the wrong type."""


@dataclass
class BaseConfig:
    """Fields shared by all trainers."""

    model: str = ""
    """Hub id or local directory of the starting model (loaded with `from_pretrained`)."""
    train_file: str = ""
    """Training data: .jsonl, .jsonl.gz or .parquet in the format this trainer reads."""
    eval_file: str = ""
    """Held-out data in the same format; empty → `eval_fraction` of train_file is held out."""
    eval_fraction: float = 0.1
    """Share of train_file held out for evaluation when no eval_file is given (0 → no eval)."""
    output_dir: str = "output"
    """Where the final model, metrics.jsonl, checkpoints/ and summary.json are written."""
    max_steps: int = -1
    """Optimizer steps (PPO: rollout batches) to run; -1 → derived from num_epochs."""
    num_epochs: float = 1.0
    """Passes over the training data when max_steps is -1."""
    max_length: int = 512
    """Longest sequence in tokens (prompt + response); longer ones are truncated."""
    batch_size: int = 8
    """Examples per micro-batch per device (RM: rankings; PPO: prompts per rollout)."""
    gradient_accumulation_steps: int = 1
    """Micro-batches accumulated into one optimizer step."""
    eval_batch_size: int = 16
    """Examples per forward pass during evaluation."""
    learning_rate: float = 1e-5
    """Peak learning rate of AdamW."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    adam_eps: float = 1e-8
    """AdamW epsilon."""
    lr_scheduler: str = "cosine"
    """Learning-rate schedule after warmup: cosine | linear | constant."""
    warmup_ratio: float = 0.03
    """Share of the steps spent warming the learning rate up linearly from 0."""
    max_grad_norm: float = 1.0
    """Gradient clipping by global norm (0 → off)."""
    seed: int = 42
    """Seeds python, numpy and torch; with the step it also fixes the data order."""
    mixed_precision: str = "no"
    """Accelerate mixed precision: no | bf16 | fp16."""
    save_every: int = 100
    """Save a resumable checkpoint every this many steps (and always at the end / on SIGTERM)."""
    save_total_limit: int = 2
    """Checkpoints kept in output_dir/checkpoints (the oldest are removed)."""
    eval_every: int = 0
    """Evaluate every this many steps (0 → only at the end)."""
    lora: bool = False
    """Train LoRA adapters (peft) instead of all weights."""
    lora_r: int = 16
    """LoRA rank."""
    lora_alpha: int = 32
    """LoRA scaling numerator (scale = alpha / r)."""
    lora_dropout: float = 0.05
    """Dropout on the LoRA branch."""
    lora_target_modules: list[str] = field(default_factory=lambda: ["all-linear"])
    """Module names LoRA wraps; ["all-linear"] wraps every linear layer but the output head."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass to save memory."""
    nan_patience: int = 0
    """Steps in a row the loss may be NaN/inf before the run stops as diverged (0 → at once)."""


@dataclass
class SFTConfig(BaseConfig):
    """Supervised fine-tuning on `sft` data: loss on completion tokens only."""

    learning_rate: float = 2e-5
    """Peak learning rate of AdamW."""
    completion_only_loss: bool = True
    """Mask prompt / user tokens with -100 so only completions are learned."""


@dataclass
class RewardConfig(BaseConfig):
    """Reward model on `rankings` (K-wise loss) or `pairs` data."""

    data_format: str = "auto"
    """rankings | pairs | ratings | auto (picked from the first record)."""
    aspect: str = ""
    """ratings: the aspect in each row's "scores" whose order the model learns, e.g.
    "helpfulness" ("" → the main rating, "score"). A prompt's rated responses become one
    ranking; responses with equal values are not compared."""
    aspect_weights: dict[str, float] = field(default_factory=dict)
    """ratings: learn the order of Σ weight·aspect instead, e.g. {"helpfulness": 1,
    "honesty": 0.5}; rows missing one of these aspects are left out."""
    learning_rate: float = 1e-5
    """Peak learning rate of AdamW."""
    use_margin: bool = True
    """For pairs with a "margin" field: loss -log σ(r_c − r_r − margin)."""
    normalize: bool = True
    """After training, fit gain/bias so rewards on the reference responses have mean 0, std 1."""
    disable_dropout: bool = True
    """Set every dropout probability to 0 (a reward is a deterministic score)."""
    center_rewards_coef: float = 0.0
    """Auxiliary loss coef · mean(r²) that keeps raw rewards near 0 (0 → off)."""
    pooling: str = "auto"
    """Hidden states the reward head reads: last | cls | mean | auto (what the backbone was
    trained with: last token for causal LMs, mean for sentence-transformers encoders, else cls)."""
    truncation: str = "prompt_left"
    """How over-long texts fit max_length (recorded, not a choice): the prompt loses its oldest
    tokens first; the response is kept whole unless it alone is longer than max_length."""


@dataclass
class PPOConfig(BaseConfig):
    """PPO from a reward model (InstructGPT; "The N Implementation Details of RLHF with PPO")."""

    reward_model: str = ""
    """Directory of a reward model trained by `rm` (its own tokenizer is used)."""
    learning_rate: float = 3e-6
    """Peak learning rate of AdamW."""
    lr_scheduler: str = "linear"
    """Learning-rate schedule after warmup: cosine | linear | constant."""
    warmup_ratio: float = 0.0
    """Share of the steps spent warming the learning rate up linearly from 0."""
    batch_size: int = 16
    """Prompts per rollout (episodes per PPO step)."""
    mini_batch_size: int = 4
    """Episodes per gradient update inside the PPO epochs."""
    ppo_epochs: int = 4
    """Passes over each rollout batch."""
    max_prompt_length: int = 256
    """Prompts are left-truncated to this many tokens."""
    response_length: int = 53
    """Tokens sampled per response."""
    temperature: float = 0.7
    """Sampling temperature; logits are divided by it when scoring too."""
    top_k: int = 0
    """Top-k sampling (0 → off; keep off so log-probs match the sampling distribution)."""
    kl_coef: float = 0.05
    """Initial β of the per-token KL penalty −β·(log π − log π_ref)."""
    adaptive_kl: bool = True
    """Ziegler et al.'s proportional controller for β; False → fixed β."""
    kl_target: float = 6.0
    """Target KL (nats per response) of the adaptive controller."""
    kl_horizon: int = 10000
    """Horizon (episodes) of the adaptive controller."""
    gamma: float = 1.0
    """GAE discount."""
    lam: float = 0.95
    """GAE λ."""
    cliprange: float = 0.2
    """PPO ratio clip ε (ratio kept in 1−ε … 1+ε)."""
    cliprange_value: float = 0.2
    """Value clip around the rollout's value estimates."""
    vf_coef: float = 0.1
    """Weight of the value loss."""
    value_network: str = "separate"
    """separate: the value head sits on its own copy of the policy's transformer body, so the
    value loss never moves the policy (TRL, InstructGPT); shared: on the policy's own last
    hidden state (less memory and compute, but the value loss spends KL)."""
    max_grad_norm: float = 0.0
    """Gradient clipping by global norm (0 → off, as in TRL and lm-human-preferences: PPO's ratio
    clip already bounds each update)."""
    whiten_advantages: bool = True
    """Normalise advantages to mean 0, std 1 over the batch."""
    whiten_rewards: bool = False
    """Normalise the per-token rewards over the batch before GAE."""
    missing_eos_penalty: float = 0.0
    """Added to the score of responses with no EOS within response_length (e.g. -1.0; 0 → off)."""
    ptx_file: str = ""
    """PPO-ptx: `sft`-format file whose LM loss is mixed into each update (empty → off)."""
    ptx_coef: float = 0.0
    """Weight γ of the pretraining/SFT loss in PPO-ptx."""
    eval_prompts: int = 32
    """Held-out prompts scored at the end for summary.json."""


@dataclass
class DPOConfig(BaseConfig):
    """Direct Preference Optimization on `pairs` data."""

    beta: float = 0.1
    """Strength of the implicit KL constraint."""
    learning_rate: float = 5e-7
    """Peak learning rate of AdamW."""
    precompute_ref_log_probs: bool = True
    """Score every pair with the frozen reference once before the loop, then free it."""
    label_smoothing: float = 0.0
    """Conservative DPO: assumed probability that a preference label is flipped."""
    weight_by_margin: bool = False
    """Weigh each pair's loss by its "margin" (e.g. a preference strength's; a pair without
    one weighs 1), so strong preferences count more and "negligibly better" ones less."""


@dataclass
class GenerateConfig:
    """Sampling candidates from one or more causal LMs for a prompts file (no training)."""

    model: str = ""
    """Hub id or local directory of the model to sample from (when `models` is empty)."""
    models: list[str] = field(default_factory=list)
    """Several models, each PATH or NAME=PATH; rows carry NAME (default: the path)."""
    train_file: str = ""
    """The prompts file: JSONL rows {"prompt_id", "prompt": str | messages} (+ "sample_indices")."""
    output_dir: str = "output"
    """Where samples.jsonl, metrics.jsonl and summary.json are written."""
    n: int = 1
    """Samples per prompt per model (sample indices 0 … n-1 unless a row lists its own)."""
    max_new_tokens: int = 256
    """Most tokens sampled per response; a response that hits it ends with finish_reason length."""
    temperature: float = 1.0
    """Sampling temperature (0 → greedy decoding)."""
    top_p: float = 1.0
    """Nucleus sampling: keep the smallest set of tokens whose probability reaches top_p."""
    top_k: int = 0
    """Top-k sampling (0 → off)."""
    max_context: int = 0
    """Prompt + response token budget (0 → the model's max_position_embeddings); longer prompts
    lose tokens from the left and are recorded as truncated."""
    batch_size: int = 16
    """Sequences per generate call (prompts are sorted by length so padding stays small)."""
    seed: int = 42
    """Seeds sampling; each batch is seeded from (seed, its first row) so output is repeatable."""
    engine: str = "auto"
    """transformers | vllm | auto (vllm when it is installed and a GPU is visible)."""
    mixed_precision: str = "no"
    """Accelerate mixed precision for the transformers engine: no | bf16 | fp16."""
    reward_model: str = ""
    """Directory of a reward model trained by `rm`: each row then carries its `reward`."""


CONFIGS: dict[str, type[BaseConfig] | type[GenerateConfig]] = {
    "sft": SFTConfig,
    "rm": RewardConfig,
    "ppo": PPOConfig,
    "dpo": DPOConfig,
    "generate": GenerateConfig,
}


def _coerce(name: str, tp: Any, value: Any) -> Any:
    """Convert `value` (JSON or a string from the command line) to the field's type."""
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        tp = next(a for a in typing.get_args(tp) if a is not type(None))
        origin = typing.get_origin(tp)
    try:
        if origin is dict:
            if isinstance(value, str):
                value = json.loads(value)
            if not isinstance(value, dict):
                raise ValueError(value)
            return {str(k): float(v) for k, v in value.items()}
        if origin is list:
            if isinstance(value, str):
                value = json.loads(value) if value.startswith("[") else value.split(",")
            return [str(v) for v in value]
        if tp is bool:
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                return value.lower() in ("true", "1", "yes")
            return bool(value)
        if tp is int and isinstance(value, float) and not value.is_integer():
            raise ValueError(value)
        return tp(value)
    except (ValueError, TypeError, json.JSONDecodeError) as e:
        raise ConfigError(f"config key {name!r}: cannot read {value!r} as {tp}") from e


def build_config(
    kind: str, values: dict[str, Any] | None = None, overrides: dict[str, Any] | None = None
) -> BaseConfig | GenerateConfig:
    """Make the config of `kind` from a dict (e.g. run.json) and then overrides, checking keys."""
    cls = CONFIGS[kind]
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    merged = {**(values or {}), **(overrides or {})}
    for key in merged:
        if key not in fields:
            raise ConfigError(
                f"unknown config key {key!r} for {kind!r}; known keys: {', '.join(sorted(fields))}"
            )
    return cls(**{k: _coerce(k, hints[k], v) for k, v in merged.items()})


def load_config(
    kind: str, path: str | Path | None, overrides: dict[str, Any]
) -> BaseConfig | GenerateConfig:
    """Read a JSON config file (may be None) and apply overrides."""
    values: dict[str, Any] = {}
    if path:
        try:
            values = json.loads(Path(path).read_text())
        except OSError as e:
            raise ConfigError(f"{path}: cannot read the config ({e.strerror})") from e
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path}: not valid JSON ({e})") from e
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: a config must be a JSON object")
    return build_config(kind, values, overrides)
