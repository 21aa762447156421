"""The command line: flags and --set override the config file; bad input gets a clear error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.trainer.trainer_testdata import pair_records, write_jsonl
from trainer import EXIT_OK, EXIT_USAGE
from trainer.__main__ import main
from trainer.configs import ConfigError, load_config


def test_flags_override_the_config_file(tmp_path: Path, causal_lm: str) -> None:
    data = write_jsonl(tmp_path / "pairs.jsonl", pair_records(16))
    config = tmp_path / "run.json"
    config.write_text(
        json.dumps(
            {
                "model": "nope",
                "train_file": data,
                "max_steps": 50,
                "beta": 0.5,
                "output_dir": str(tmp_path / "ignored"),
            }
        )
    )
    out = tmp_path / "out"
    argv = [
        "dpo",
        "--config",
        str(config),
        "--model",
        causal_lm,
        "--output-dir",
        str(out),
        "--max-steps",
        "2",
        "--batch-size",
        "4",
        "--learning-rate",
        "0.001",
        "--seed",
        "7",
        "--set",
        "beta=0.25",
        "--set",
        "eval_fraction=0",
    ]
    assert main(argv) == EXIT_OK
    used = json.loads((out / "run_config.json").read_text())
    assert used["model"] == causal_lm and used["max_steps"] == 2 and used["batch_size"] == 4
    assert used["learning_rate"] == 0.001 and used["seed"] == 7 and used["beta"] == 0.25
    assert used["train_file"] == data  # not overridden: from the file
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2
    assert not (tmp_path / "ignored").exists()


def test_unknown_config_key_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "run.json"
    config.write_text(json.dumps({"model": "m", "train_file": "t", "learnin_rate": 1e-5}))
    assert main(["sft", "--config", str(config)]) == EXIT_USAGE
    assert "unknown config key 'learnin_rate'" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="'max_steps'"):
        load_config("sft", None, {"max_steps": "many"})
    with pytest.raises(ConfigError, match="unknown config key 'reward_model'"):
        load_config("sft", None, {"reward_model": "x"})  # a PPO key is not an SFT key


def test_set_parses_types(tmp_path: Path) -> None:
    cfg = load_config(
        "ppo",
        None,
        {
            "adaptive_kl": "false",
            "ppo_epochs": "2",
            "lora_target_modules": "q_proj,v_proj",
            "kl_coef": "0.2",
        },
    )
    assert cfg.adaptive_kl is False and cfg.ppo_epochs == 2 and cfg.kl_coef == 0.2
    assert cfg.lora_target_modules == ["q_proj", "v_proj"]


def test_bad_data_line_reported_by_the_cli(
    tmp_path: Path, causal_lm: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "pairs.jsonl"
    lines = [json.dumps(r) for r in pair_records(5)]
    lines[3] = json.dumps({"prompt": "p", "chosen": "only chosen"})
    path.write_text("\n".join(lines) + "\n")
    code = main(
        [
            "dpo",
            "--model",
            causal_lm,
            "--train-file",
            str(path),
            "--output-dir",
            str(tmp_path / "o"),
        ]
    )
    assert code == EXIT_USAGE
    assert f"{path}:4: pairs record" in capsys.readouterr().err


def test_a_missing_config_file_is_a_clear_usage_error(capsys) -> None:
    from trainer.__main__ import main

    assert main(["sft", "--config", "/no/such/run.json", "--model", "m", "--train-file", "t"]) == 2
    assert "/no/such/run.json: cannot read the config" in capsys.readouterr().err
