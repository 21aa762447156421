"""Dataclass configs for every trainer: one documented field per line, sensible defaults.

Every numeric field carries its bounds (`num`) and every field with a fixed set of values its
choices (`choice`) beside it, as field metadata; `build_config` checks them, so the trainer's
command line and the web app (which builds run configs through it) refuse the same values.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAX_STEPS = 10_000_000
"""Most optimizer steps (and checkpoint / eval intervals) a config may ask for."""
MAX_TOKENS = 131_072
"""Longest sequence, prompt or response in tokens a config may ask for."""
MAX_BATCH = 4096
"""Largest batch (examples per micro-batch, sequences per generate call)."""
MAX_LEARNING_RATE = 0.1
"""Largest AdamW learning rate: above it any model's weights blow up at the first step."""
MAX_SEED = 2**32 - 1
"""Largest seed numpy accepts."""
MAX_SAMPLES = 64
"""Most samples per prompt per model a generate run asks for."""
MAX_VOCAB = 1_000_000
"""Largest top-k."""
MAX_SCALE = 1e6
"""Largest magnitude of a rating scale's ends and of a judge's score thresholds."""
MAX_LEVELS = 1000
"""Most levels a rating scale may have."""
MAX_PROCESSES = 1024
"""Most training processes per machine."""
MAX_MACHINES = 4096
"""Most machines a run may span."""


class ConfigError(ValueError):
    """A config file or override names an unknown key or carries a value of the wrong type or
    out of its bounds; `key` names the config key when one is to blame."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"


@dataclass(frozen=True)
class Bound:
    """The values a numeric key admits: low/high (inclusive unless *_open) and special values
    outside them, each with its meaning (e.g. max_steps -1: num_epochs decide)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    special: tuple[tuple[float, str], ...] = ()

    def admits(self, value: float) -> bool:
        if any(value == s for s, _ in self.special):
            return True
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    def describe(self) -> str:
        """E.g. "> 0 and ≤ 0.1", "≥ 1 and ≤ 10000000, or -1 (num_epochs decide)"."""
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.low_open else '≥'} {_fmt(self.low)}")
        if self.high is not None:
            parts.append(f"{'<' if self.high_open else '≤'} {_fmt(self.high)}")
        text = " and ".join(parts)
        for value, meaning in self.special:
            text += f", or {_fmt(value)} ({meaning})"
        return text


def num(
    default: Any,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    special: dict[float, str] | None = None,
) -> Any:
    """A numeric field (or a dict of numbers, when `default` is a factory) with its bounds."""
    bound = Bound(
        low=gt if gt is not None else ge,
        high=lt if lt is not None else le,
        low_open=gt is not None,
        high_open=lt is not None,
        special=tuple((special or {}).items()),
    )
    if callable(default):
        return field(default_factory=default, metadata={"bound": bound})
    return field(default=default, metadata={"bound": bound})


def choice(default: str, *others: str) -> Any:
    """A string field that takes one of a fixed set of values (the default first)."""
    return field(default=default, metadata={"choices": (default, *others)})


def _metadata(cls: type, name: str) -> typing.Mapping[str, Any]:
    """A field's metadata; a subclass that only changes a default keeps its base's bounds."""
    for klass in cls.__mro__:
        found = getattr(klass, "__dataclass_fields__", {}).get(name)
        if found is not None and found.metadata:
            return found.metadata
    return {}


def bound_of(cls: type, name: str) -> Bound | None:
    """The bounds of a config class's numeric key (None: not a bounded number)."""
    return _metadata(cls, name).get("bound")


def choices_of(cls: type, name: str) -> tuple[str, ...] | None:
    """The values a config class's key takes (None: not a fixed set)."""
    return _metadata(cls, name).get("choices")


def _check_number(key: str, label: str, value: Any, bound: Bound) -> None:
    if not math.isfinite(value):
        raise ConfigError(f"{label} must be a finite number, not {value}", key)
    if not bound.admits(value):
        raise ConfigError(f"{label} must be {bound.describe()}; got {_fmt(value)}", key)


def check_values(cfg: Any) -> None:
    """Raise ConfigError naming the first key whose value is out of its bounds or choices."""
    cls = type(cfg)
    for f in dataclasses.fields(cls):
        value = getattr(cfg, f.name)
        bound, choices = bound_of(cls, f.name), choices_of(cls, f.name)
        if bound is not None:
            if isinstance(value, dict):
                items = list(value.items())
            elif isinstance(value, list):
                items = list(enumerate(value))
            else:
                items = [(None, value)]
            for name, item in items:
                label = f.name if name is None else f"{f.name}[{name!r}]"
                _check_number(f.name, label, item, bound)
        if choices is not None and value not in choices:
            raise ConfigError(
                f"{f.name} must be one of {', '.join(choices)}; got {value!r}", f.name
            )
    if isinstance(cfg, GenerateConfig) and 0 < cfg.max_context <= cfg.max_new_tokens:
        raise ConfigError(
            f"max_new_tokens={cfg.max_new_tokens} leaves no room for a prompt in "
            f"max_context={cfg.max_context}",
            "max_new_tokens",
        )
    if isinstance(cfg, JudgeConfig):
        _check_judge(cfg)
    if isinstance(cfg, BaseConfig):
        _check_distribution(cfg)


def _check_distribution(cfg: BaseConfig) -> None:
    """The checks across strategy, zero_stage, lora and the trainer kind."""
    if cfg.strategy == "deepspeed":
        import importlib.util

        if importlib.util.find_spec("deepspeed") is None:
            raise ConfigError(
                "strategy deepspeed is not available: the deepspeed package is not installed "
                "(install rlhf-studio's `deepspeed` extra: pip install -e '.[deepspeed]'); "
                "use ddp or fsdp",
                "strategy",
            )
        if isinstance(cfg, PPOConfig):
            raise ConfigError(
                "strategy deepspeed does not run PPO yet (its policy, value, reference and "
                "reward models are not partitioned, and generation under ZeRO-3 would gather "
                "every layer per token); use ddp or fsdp",
                "strategy",
            )
        if cfg.lora:
            raise ConfigError(
                "strategy deepspeed does not train LoRA adapters yet (the adapters are small: "
                "the frozen base is what ZeRO would partition); use ddp",
                "strategy",
            )
    if cfg.zero_stage and cfg.strategy != "deepspeed":
        raise ConfigError(
            f"zero_stage applies to strategy deepspeed, not {cfg.strategy}", "zero_stage"
        )
    if cfg.strategy == "fsdp" and cfg.lora:
        raise ConfigError(
            "strategy fsdp does not train LoRA adapters yet (the adapters are small: the "
            "frozen base is what fsdp would shard); use ddp",
            "strategy",
        )


def scale_levels(cfg: JudgeConfig) -> list[float]:
    """The values a rating takes: scale_low, scale_low + scale_step, …, scale_high."""
    span = (cfg.scale_high - cfg.scale_low) / cfg.scale_step
    n = round(span)
    if abs(span - n) > 1e-9 * max(1.0, abs(span)):
        raise ConfigError(
            f"scale_step {_fmt(cfg.scale_step)} does not divide the scale "
            f"{_fmt(cfg.scale_low)}..{_fmt(cfg.scale_high)} into whole steps",
            "scale_step",
        )
    if n > MAX_LEVELS - 1:
        raise ConfigError(
            f"the scale {_fmt(cfg.scale_low)}..{_fmt(cfg.scale_high)} in steps of "
            f"{_fmt(cfg.scale_step)} has {n + 1} levels; at most {MAX_LEVELS}",
            "scale_step",
        )
    return [cfg.scale_low + i * cfg.scale_step for i in range(n + 1)]


def _check_judge(cfg: JudgeConfig) -> None:
    """The checks across keys of a judge config (each key's own bounds are checked first)."""
    if cfg.endpoint:
        if not cfg.endpoint.startswith(("http://", "https://")):
            raise ConfigError(
                f"endpoint must be an http:// or https:// URL; got {cfg.endpoint!r}", "endpoint"
            )
        if not cfg.endpoint_model:
            raise ConfigError(
                "endpoint_model is required with an endpoint (the model name the server serves)",
                "endpoint_model",
            )
    if cfg.judge_kind == "endpoint" and not cfg.endpoint:
        raise ConfigError("judge_kind 'endpoint' needs the endpoint URL", "endpoint")
    if (problem := judge_template_problem(cfg.judge_template)) is not None:
        raise ConfigError(problem, "judge_template")
    if cfg.project_kind == "rating":
        if cfg.judge_kind in ("pairwise_lm", "endpoint") or (
            cfg.judge_kind == "auto" and cfg.endpoint
        ):
            raise ConfigError(
                "a rating project needs judge_kind reward_model: a pairwise judge compares two "
                "responses and gives no score on the scale",
                "judge_kind",
            )
        if cfg.scale_high <= cfg.scale_low:
            raise ConfigError(
                f"scale_high ({_fmt(cfg.scale_high)}) must be above scale_low "
                f"({_fmt(cfg.scale_low)})",
                "scale_high",
            )
        levels = scale_levels(cfg)
        if cfg.rating_map == "linear" and cfg.rating_score_high <= cfg.rating_score_low:
            raise ConfigError(
                f"rating_score_high ({_fmt(cfg.rating_score_high)}) must be above "
                f"rating_score_low ({_fmt(cfg.rating_score_low)})",
                "rating_score_high",
            )
        if cfg.rating_map == "thresholds":
            t = cfg.rating_thresholds
            if len(t) != len(levels) - 1:
                raise ConfigError(
                    f"rating_thresholds needs {len(levels) - 1} ascending scores for the "
                    f"{len(levels)} levels of the scale; got {len(t)}",
                    "rating_thresholds",
                )
            if any(b <= a for a, b in zip(t, t[1:], strict=False)):
                raise ConfigError(
                    "rating_thresholds must be strictly ascending", "rating_thresholds"
                )


@dataclass
class BaseConfig:
    """Fields shared by all trainers."""

    model: str = ""
    """Hub id or local directory of the starting model (loaded with `from_pretrained`)."""
    train_file: str = ""
    """Training data: .jsonl, .jsonl.gz or .parquet in the format this trainer reads."""
    eval_file: str = ""
    """Held-out data in the same format; empty → `eval_fraction` of train_file is held out."""
    eval_fraction: float = num(0.1, ge=0, lt=1)
    """Share of train_file held out for evaluation when no eval_file is given (0 → no eval)."""
    output_dir: str = "output"
    """Where the final model, metrics.jsonl, checkpoints/ and summary.json are written."""
    max_steps: int = num(-1, ge=1, le=MAX_STEPS, special={-1: "num_epochs decide"})
    """Optimizer steps (PPO: rollout batches) to run; -1 → derived from num_epochs."""
    num_epochs: float = num(1.0, gt=0, le=1000)
    """Passes over the training data when max_steps is -1."""
    max_length: int = num(512, ge=8, le=MAX_TOKENS)
    """Longest sequence in tokens (prompt + response); a longer prompt loses its oldest tokens
    first, leaving the response room for up to half of it; what is still longer is cut at the
    end (a multi-turn `messages` sample: at the end only)."""
    batch_size: int = num(8, ge=1, le=MAX_BATCH)
    """Examples per micro-batch per device (RM: rankings; PPO: prompts per rollout)."""
    gradient_accumulation_steps: int = num(1, ge=1, le=1024)
    """Micro-batches accumulated into one optimizer step."""
    eval_batch_size: int = num(16, ge=1, le=MAX_BATCH)
    """Examples per forward pass during evaluation."""
    learning_rate: float = num(1e-5, gt=0, le=MAX_LEARNING_RATE)
    """Peak learning rate of AdamW."""
    weight_decay: float = num(0.0, ge=0, le=1)
    """AdamW weight decay."""
    adam_eps: float = num(1e-8, gt=0, le=1e-2)
    """AdamW epsilon."""
    lr_scheduler: str = choice("cosine", "linear", "constant")
    """Learning-rate schedule after warmup: cosine | linear | constant."""
    warmup_ratio: float = num(0.03, ge=0, le=1)
    """Share of the steps spent warming the learning rate up linearly from 0."""
    max_grad_norm: float = num(1.0, ge=0, le=1e6)
    """Gradient clipping by global norm (0 → off)."""
    seed: int = num(42, ge=0, le=MAX_SEED)
    """Seeds python, numpy and torch; with the step it also fixes the data order."""
    mixed_precision: str = choice("no", "bf16", "fp16")
    """Accelerate mixed precision: no | bf16 | fp16."""
    save_every: int = num(100, ge=1, le=MAX_STEPS)
    """Save a resumable checkpoint every this many steps (and always at the end / on SIGTERM)."""
    save_total_limit: int = num(2, ge=1, le=1000)
    """Checkpoints kept in output_dir/checkpoints (the oldest are removed)."""
    eval_every: int = num(0, ge=0, le=MAX_STEPS)
    """Evaluate every this many steps (0 → only at the end)."""
    lora: bool = False
    """Train LoRA adapters (peft) instead of all weights."""
    lora_r: int = num(16, ge=1, le=4096)
    """LoRA rank."""
    lora_alpha: int = num(32, ge=1, le=65536)
    """LoRA scaling numerator (scale = alpha / r)."""
    lora_dropout: float = num(0.05, ge=0, lt=1)
    """Dropout on the LoRA branch."""
    lora_target_modules: list[str] = field(default_factory=lambda: ["all-linear"])
    """Module names LoRA wraps; ["all-linear"] wraps every linear layer but the output head."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass to save memory."""
    nan_patience: int = num(0, ge=0, le=MAX_STEPS)
    """Steps in a row the loss may be NaN/inf before the run stops as diverged (0 → at once)."""
    strategy: str = choice("ddp", "fsdp", "deepspeed")
    """How several processes share the training: ddp (each holds the whole model, gradients
    averaged) | fsdp (parameters, gradients and optimizer states sharded per transformer block,
    FSDP2) | deepspeed (ZeRO stage 2 or 3 through accelerate's DeepSpeed plugin; needs the
    deepspeed package; not PPO or LoRA; its checkpoints resume at the same process count)."""
    processes: int = num(1, ge=1, le=MAX_PROCESSES)
    """Training processes per machine (one per GPU; on CPU, ranks over gloo)."""
    machines: int = num(1, ge=1, le=MAX_MACHINES)
    """Machines the run spans (more than one: launched by hand, see the multi-node recipe)."""
    zero_stage: int = num(0, ge=2, le=3, special={0: "not deepspeed"})
    """DeepSpeed ZeRO stage (2: optimizer states and gradients sharded; 3: parameters too);
    deepspeed only (0 there: stage 2)."""


@dataclass
class SFTConfig(BaseConfig):
    """Supervised fine-tuning on `sft` data: loss on completion tokens only."""

    learning_rate: float = num(2e-5, gt=0, le=MAX_LEARNING_RATE)
    """Peak learning rate of AdamW."""
    completion_only_loss: bool = True
    """Mask prompt / user tokens with -100 so only completions are learned."""


@dataclass
class RewardConfig(BaseConfig):
    """Reward model on `rankings` (K-wise loss) or `pairs` data."""

    data_format: str = choice("auto", "rankings", "pairs", "ratings")
    """rankings | pairs | ratings | auto (picked from the first record)."""
    aspect: str = ""
    """ratings: the aspect in each row's "scores" whose order the model learns, e.g.
    "helpfulness" ("" → the main rating, "score"). A prompt's rated responses become one
    ranking; responses with equal values are not compared."""
    aspect_weights: dict[str, float] = num(dict, ge=-1e6, le=1e6)
    """ratings: learn the order of Σ weight·aspect instead, e.g. {"helpfulness": 1,
    "honesty": 0.5}; rows missing one of these aspects are left out."""
    learning_rate: float = num(1e-5, gt=0, le=MAX_LEARNING_RATE)
    """Peak learning rate of AdamW."""
    use_margin: bool = True
    """For pairs with a "margin" field: loss -log σ(r_c − r_r − margin)."""
    normalize: bool = True
    """After training, fit gain/bias so rewards on the reference responses have mean 0, std 1."""
    disable_dropout: bool = True
    """Set every dropout probability to 0 (a reward is a deterministic score)."""
    lr_scheduler: str = choice("auto", "cosine", "linear", "constant")
    """Learning-rate schedule after warmup: cosine | linear | constant | auto (constant for a
    pretrained backbone, cosine for a toy one; see trainer/suggest.py for what each was worth)."""
    center_rewards_coef: float = num(0.0, ge=0, le=1000)
    """Auxiliary loss coef · mean(r²) that keeps raw rewards near 0 (0 → off)."""
    pooling: str = choice("auto", "last", "cls", "mean")
    """Hidden states the reward head reads: last | cls | mean | auto (what the backbone was
    trained with: last token for causal LMs, mean for sentence-transformers encoders, else cls)."""
    truncation: str = choice("prompt_left")
    """How over-long texts fit max_length (recorded, not a choice): the prompt loses its oldest
    tokens first; the response is kept whole unless it alone is longer than max_length."""


@dataclass
class PPOConfig(BaseConfig):
    """PPO from a reward model (InstructGPT; "The N Implementation Details of RLHF with PPO")."""

    reward_model: str = ""
    """Directory of a reward model trained by `rm` (its own tokenizer is used)."""
    learning_rate: float = num(3e-6, gt=0, le=MAX_LEARNING_RATE)
    """Peak learning rate of AdamW."""
    lr_scheduler: str = choice("linear", "cosine", "constant")
    """Learning-rate schedule after warmup: cosine | linear | constant."""
    warmup_ratio: float = num(0.0, ge=0, le=1)
    """Share of the steps spent warming the learning rate up linearly from 0."""
    batch_size: int = num(16, ge=1, le=MAX_BATCH)
    """Prompts per rollout (episodes per PPO step)."""
    mini_batch_size: int = num(4, ge=1, le=MAX_BATCH)
    """Episodes per gradient update inside the PPO epochs."""
    ppo_epochs: int = num(4, ge=1, le=100)
    """Passes over each rollout batch."""
    max_prompt_length: int = num(256, ge=1, le=MAX_TOKENS)
    """Prompts are left-truncated to this many tokens."""
    response_length: int = num(53, ge=1, le=MAX_TOKENS)
    """Tokens sampled per response."""
    temperature: float = num(0.7, gt=0, le=100)
    """Sampling temperature; logits are divided by it when scoring too."""
    top_k: int = num(0, ge=0, le=MAX_VOCAB)
    """Top-k sampling (0 → off; keep off so log-probs match the sampling distribution)."""
    kl_coef: float = num(0.05, ge=0, le=100)
    """Initial β of the per-token KL penalty −β·(log π − log π_ref)."""
    adaptive_kl: bool = True
    """Ziegler et al.'s proportional controller for β; False → fixed β."""
    kl_target: float = num(6.0, gt=0, le=1e4)
    """Target KL (nats per response) of the adaptive controller."""
    kl_horizon: int = num(10000, ge=1, le=10**9)
    """Horizon (episodes) of the adaptive controller."""
    gamma: float = num(1.0, ge=0, le=1)
    """GAE discount."""
    lam: float = num(0.95, ge=0, le=1)
    """GAE λ."""
    cliprange: float = num(0.2, gt=0, le=10)
    """PPO ratio clip ε (ratio kept in 1−ε … 1+ε)."""
    cliprange_value: float = num(0.2, gt=0, le=1e6)
    """Value clip around the rollout's value estimates."""
    vf_coef: float = num(0.1, ge=0, le=100)
    """Weight of the value loss."""
    value_network: str = choice("separate", "shared")
    """separate: the value head sits on its own copy of the policy's transformer body, so the
    value loss never moves the policy (TRL, InstructGPT); shared: on the policy's own last
    hidden state (less memory and compute, but the value loss spends KL)."""
    max_grad_norm: float = num(0.0, ge=0, le=1e6)
    """Gradient clipping by global norm (0 → off, as in TRL and lm-human-preferences: PPO's ratio
    clip already bounds each update)."""
    whiten_advantages: bool = True
    """Normalise advantages to mean 0, std 1 over the batch."""
    whiten_rewards: bool = False
    """Normalise the per-token rewards over the batch before GAE."""
    missing_eos_penalty: float = num(0.0, ge=-1000, le=1000)
    """Added to the score of responses with no EOS within response_length (e.g. -1.0; 0 → off)."""
    ptx_file: str = ""
    """PPO-ptx: `sft`-format file whose LM loss is mixed into each update (empty → off)."""
    ptx_coef: float = num(0.0, ge=0, le=1000)
    """Weight γ of the pretraining/SFT loss in PPO-ptx."""
    eval_prompts: int = num(32, ge=0, le=100_000)
    """Held-out prompts scored at the end for summary.json."""


@dataclass
class DPOConfig(BaseConfig):
    """Direct Preference Optimization on `pairs` data."""

    beta: float = num(0.1, gt=0, le=100)
    """Strength of the implicit KL constraint."""
    learning_rate: float = num(5e-7, gt=0, le=MAX_LEARNING_RATE)
    """Peak learning rate of AdamW."""
    precompute_ref_log_probs: bool = True
    """Score every pair with the frozen reference once before the loop, then free it."""
    label_smoothing: float = num(0.0, ge=0, lt=0.5)
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
    n: int = num(1, ge=1, le=MAX_SAMPLES)
    """Samples per prompt per model (sample indices 0 … n-1 unless a row lists its own)."""
    max_new_tokens: int = num(256, ge=1, le=MAX_TOKENS)
    """Most tokens sampled per response; a response that hits it ends with finish_reason length."""
    temperature: float = num(1.0, ge=0, le=100)
    """Sampling temperature (0 → greedy decoding)."""
    top_p: float = num(1.0, gt=0, le=1)
    """Nucleus sampling: keep the smallest set of tokens whose probability reaches top_p."""
    top_k: int = num(0, ge=0, le=MAX_VOCAB)
    """Top-k sampling (0 → off)."""
    max_context: int = num(
        0, ge=1, le=MAX_TOKENS, special={0: "the model's max_position_embeddings"}
    )
    """Prompt + response token budget (0 → the model's max_position_embeddings); longer prompts
    lose tokens from the left and are recorded as truncated."""
    batch_size: int = num(16, ge=1, le=MAX_BATCH)
    """Sequences per generate call (prompts are sorted by length so padding stays small)."""
    seed: int = num(42, ge=0, le=MAX_SEED)
    """Seeds sampling; each batch is seeded from (seed, its first row) so output is repeatable."""
    engine: str = choice("auto", "transformers", "vllm")
    """transformers | vllm | auto (vllm when it is installed and a GPU is visible)."""
    mixed_precision: str = choice("no", "bf16", "fp16")
    """Accelerate mixed precision for the transformers engine: no | bf16 | fp16."""
    reward_model: str = ""
    """Directory of a reward model trained by `rm`: each row then carries its `reward`."""


DEFAULT_JUDGE_TEMPLATE = (
    "Two AI assistants answered the conversation below. Which response is better: more "
    "helpful, correct and clear? Do not let the order or the length of the responses sway "
    "you.\n\n"
    "[Conversation]\n{prompt}\n\n"
    "[Response A]\n{a}\n\n"
    "[Response B]\n{b}\n\n"
    "Reply with the single letter A or B.\nAnswer:"
)


def judge_template_problem(template: str) -> str | None:
    """What is wrong with a pairwise judge's question template (None: nothing): it must say
    where the two responses go. The one check of a template, wherever one is typed."""
    missing = [p for p in ("{a}", "{b}") if p not in template]
    if missing:
        return (
            "judge_template must contain {a} and {b} (where the two responses go); "
            f"{' and '.join(missing)} missing"
        )
    return None


@dataclass
class JudgeConfig:
    """AI feedback: a reward model, a causal LM or a chat endpoint labels prompts' responses (no
    training). See trainer/judge.py for the files and trainer/judge_rules.py for the rules."""

    model: str = ""
    """Local judge: a reward model (one-label sequence classifier, as `rm` writes) or a causal LM
    (asked pairwise); not used with an endpoint."""
    train_file: str = ""
    """The items: JSONL rows {"id", "prompt": str | messages, "responses": [{"id", "text"}]}."""
    output_dir: str = "output"
    """Where judgments.jsonl, metrics.jsonl and summary.json are written."""
    project_kind: str = choice("ranking", "rating")
    """ranking: order each item's responses best first; rating: give each response a value on
    the scale scale_low..scale_high."""
    judge_kind: str = choice("auto", "reward_model", "pairwise_lm", "endpoint")
    """reward_model | pairwise_lm | endpoint | auto (endpoint when `endpoint` is set, else from
    the model's architecture: a sequence classifier → reward_model, a causal LM → pairwise_lm)."""
    scale_low: float = num(0.0, ge=-MAX_SCALE, le=MAX_SCALE)
    """rating: the lowest value of the scale (👍/👎 is -1..1 in steps of 2)."""
    scale_high: float = num(5.0, ge=-MAX_SCALE, le=MAX_SCALE)
    """rating: the highest value of the scale."""
    scale_step: float = num(1.0, gt=0, le=2 * MAX_SCALE)
    """rating: the distance between two levels; it must divide scale_high − scale_low."""
    rating_map: str = choice("linear", "thresholds")
    """rating: how a reward becomes a level. linear: rating_score_low..rating_score_high is laid
    onto the scale and the score rounds to the nearest level (below the range: the lowest;
    above: the highest). thresholds: level i+1 needs a score ≥ rating_thresholds[i]."""
    rating_score_low: float = num(-2.0, ge=-MAX_SCALE, le=MAX_SCALE)
    """rating, linear: the reward that maps to scale_low (-2: two standard deviations below the
    mean reward of an `rm` model's training responses, which its normalisation sets to 0 ± 1)."""
    rating_score_high: float = num(2.0, ge=-MAX_SCALE, le=MAX_SCALE)
    """rating, linear: the reward that maps to scale_high."""
    rating_thresholds: list[float] = num(list, ge=-MAX_SCALE, le=MAX_SCALE)
    """rating, thresholds: one ascending reward per step up the scale (levels − 1 of them)."""
    judge_template: str = DEFAULT_JUDGE_TEMPLATE
    """The pairwise question (pairwise_lm, endpoint): {prompt} is the conversation, {a} and {b}
    the two responses; the judge answers A or B. Each pair is asked in both orders."""
    judge_chat_template: bool = True
    """pairwise_lm: send the question as a user message through the tokenizer's chat template
    (when it has one); false → the model continues the question's text as it is."""
    batch_size: int = num(64, ge=1, le=MAX_BATCH)
    """Sequences per forward pass of a local judge (sorted by length so padding stays small);
    64 and 128 were the fastest on CPU in bench/judge.py (equal within noise), 64 takes half
    the memory."""
    max_length: int = num(512, ge=8, le=MAX_TOKENS)
    """Longest sequence in tokens: reward_model cuts the prompt from the left to keep the
    response; pairwise_lm cuts the question from the left (counted as truncated)."""
    mixed_precision: str = choice("auto", "no", "bf16", "fp16")
    """Autocast of a local judge's forward passes: auto | no | bf16 | fp16. auto (the default)
    is bf16 where the hardware computes it natively (a CUDA device that supports it, a CPU with
    AVX-512 BF16 or AMX), fp32 elsewhere (`judge.auto_precision`): on a CPU with AVX-512 BF16
    it judged 1.95× faster than fp32 in bench/judge.py, finding the best response as often."""
    seed: int = num(42, ge=0, le=MAX_SEED)
    """Seeds torch (judging itself is deterministic)."""
    endpoint: str = ""
    """An OpenAI-compatible server: its base URL (…/v1) or the full …/chat/completions URL."""
    endpoint_model: str = ""
    """The model name sent to the endpoint (required with an endpoint)."""
    endpoint_key_env: str = ""
    """Name of the environment variable holding the endpoint's API key ("" → no key sent)."""
    endpoint_concurrency: int = num(8, ge=1, le=1024)
    """Requests in flight at once."""
    endpoint_timeout: float = num(60.0, gt=0, le=3600)
    """Seconds a request may take (connect, read, write each) before it counts as failed."""
    endpoint_retries: int = num(5, ge=0, le=100)
    """Retries of a request after a connection error, a timeout, HTTP 429 or 5xx; then the job
    fails with the cause."""
    endpoint_backoff: float = num(1.0, ge=0, le=600)
    """Seconds before the first retry; each further retry waits twice as long (at most 60 s,
    or longer when the server's Retry-After asks for it)."""
    endpoint_max_tokens: int = num(4, ge=1, le=MAX_TOKENS)
    """Most tokens the endpoint may answer with (the answer is one letter)."""
    endpoint_logprobs: bool = True
    """Ask for the answer's log-probabilities (the preference's strength when the server
    returns them); false for servers that refuse the parameter."""


CONFIGS: dict[str, type[BaseConfig] | type[GenerateConfig] | type[JudgeConfig]] = {
    "sft": SFTConfig,
    "rm": RewardConfig,
    "ppo": PPOConfig,
    "dpo": DPOConfig,
    "generate": GenerateConfig,
    "judge": JudgeConfig,
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
            if not isinstance(value, list):
                raise ValueError(value)
            item = (typing.get_args(tp) or (str,))[0]
            return [float(v) if item is float else str(v) for v in value]
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
        raise ConfigError(f"config key {name!r}: cannot read {value!r} as {tp}", name) from e


def build_config(
    kind: str, values: dict[str, Any] | None = None, overrides: dict[str, Any] | None = None
) -> BaseConfig | GenerateConfig | JudgeConfig:
    """Make the config of `kind` from a dict (e.g. run.json) and then overrides, checking keys."""
    cls = CONFIGS[kind]
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    merged = {**(values or {}), **(overrides or {})}
    for key in merged:
        if key not in fields:
            raise ConfigError(
                f"unknown config key {key!r} for {kind!r}; known keys: {', '.join(sorted(fields))}",
                key,
            )
    cfg = cls(**{k: _coerce(k, hints[k], v) for k, v in merged.items()})
    check_values(cfg)
    return cfg


def load_config(
    kind: str, path: str | Path | None, overrides: dict[str, Any]
) -> BaseConfig | GenerateConfig | JudgeConfig:
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
