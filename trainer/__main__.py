"""`python -m trainer sft|rm|ppo|dpo|generate|judge --config run.json [flags]`;
`python -m trainer tiny --out DIR`."""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Any

from trainer import EXIT_DIVERGED, EXIT_FENCED, EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE
from trainer.configs import ConfigError, load_config
from trainer.data import DataError
from trainer.model_files import Role, check_for_trainer

# Flag → config key; the flags override values from --config, and --set overrides both.
FLAGS = {
    "--model": "model",
    "--train-file": "train_file",
    "--eval-file": "eval_file",
    "--output-dir": "output_dir",
    "--max-steps": "max_steps",
    "--max-length": "max_length",
    "--batch-size": "batch_size",
    "--learning-rate": "learning_rate",
    "--seed": "seed",
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    p = argparse.ArgumentParser(prog="python -m trainer", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    tiny = sub.add_parser("tiny", help="build tiny random models under DIR (demo and tests)")
    tiny.add_argument("--out", required=True, help="writes DIR/causal-lm and DIR/encoder")
    helps = {
        "generate": "sample responses for a prompts file",
        "judge": "label items' responses with a reward model, a causal LM or an endpoint",
    }
    for kind in ("sft", "rm", "ppo", "dpo", "generate", "judge"):
        s = sub.add_parser(kind, help=helps.get(kind, f"train {kind}"))
        s.add_argument("--config", help="JSON file with config keys (see trainer/configs.py)")
        for flag, key in FLAGS.items():
            s.add_argument(flag, dest=key, default=None)
        if kind == "ppo":
            s.add_argument("--reward-model", dest="reward_model", default=None)
        s.add_argument(
            "--set",
            dest="sets",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override any config key (repeatable)",
        )
    return p.parse_args(argv)


def overrides_from(args: argparse.Namespace) -> dict[str, Any]:
    """Collect the flag and --set overrides as {config key: raw value}."""
    out: dict[str, Any] = {}
    for key in [*FLAGS.values(), "reward_model"]:
        if getattr(args, key, None) is not None:
            out[key] = getattr(args, key)
    for item in args.sets:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        out[key.strip().replace("-", "_")] = value
    return out


def check_models(kind: str, cfg: Any) -> None:
    """Each model the config names must fit its role (a policy, a reward model, an rm
    backbone), before any weights are loaded."""
    if kind == "judge":
        from trainer.judge import judge_kind

        if cfg.model and not (cfg.endpoint and cfg.judge_kind in ("auto", "endpoint")):
            check_for_trainer(cfg.model, Role.judge, "model")
        judge_kind(cfg)  # a model or an endpoint, and which judge it makes
        return
    if kind == "generate":
        for entry in cfg.models or ([cfg.model] if cfg.model else []):
            name, sep, path = entry.partition("=")  # NAME=PATH or PATH, as parse_models reads
            path = path if sep and name and path else entry
            check_for_trainer(path, Role.policy, "models" if cfg.models else "model")
    else:
        if not cfg.model:
            raise ConfigError("config key 'model' is required (or --model)", "model")
        check_for_trainer(cfg.model, Role.backbone if kind == "rm" else Role.policy, "model")
    if kind == "ppo" and not cfg.reward_model:
        raise ConfigError("config key 'reward_model' is required (or --reward-model)")
    if getattr(cfg, "reward_model", ""):
        check_for_trainer(cfg.reward_model, Role.reward, "reward_model")


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code (EXIT_PREEMPTED = 75 after SIGTERM)."""
    args = parse_args(argv)
    if args.command == "tiny":
        from trainer.tiny import build_all

        for name, path in build_all(args.out).items():
            print(f"{name}: {path}")
        return EXIT_OK
    from trainer.fencing import Fenced
    from trainer.judge_endpoint import EndpointError
    from trainer.runtime import Diverged  # torch: only once training is asked for

    try:
        cfg = load_config(args.command, args.config, overrides_from(args))
        check_models(args.command, cfg)
        if args.command == "generate":
            from trainer.generate import generate

            return generate(cfg)  # type: ignore[arg-type]
        if args.command == "judge":
            from trainer.judge import judge

            return judge(cfg)  # type: ignore[arg-type]
        if not cfg.train_file:
            raise ConfigError("config key 'train_file' is required (or --train-file)")
        module = {"sft": "sft", "rm": "reward", "ppo": "ppo", "dpo": "dpo"}[args.command]
        code = int(importlib.import_module(f"trainer.{module}").train(cfg))
        from trainer.distributed import leave

        leave()
        return code
    except (ConfigError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except Diverged as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_DIVERGED
    except Fenced as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_FENCED
    except EndpointError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_UNAVAILABLE


if __name__ == "__main__":
    sys.exit(main())
