"""Every number of every config has bounds beside its field, and the trainer's own command line
refuses what is out of them, and a model that does not fit its role, before loading anything."""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path

import pytest

from tests.trainer.trainer_testdata import pair_records, write_jsonl
from trainer import EXIT_USAGE
from trainer.__main__ import main
from trainer.configs import CONFIGS, ConfigError, bound_of, build_config, choices_of


def _numeric(tp: object) -> bool:
    return tp in (int, float) or typing.get_origin(tp) is dict


@pytest.mark.parametrize("kind", list(CONFIGS))
def test_every_number_has_bounds_and_every_default_is_inside_them(kind: str) -> None:
    cls = CONFIGS[kind]
    hints = typing.get_type_hints(cls)
    numbers = [f.name for f in dataclasses.fields(cls) if _numeric(hints[f.name])]
    assert numbers, kind
    unbounded = [name for name in numbers if bound_of(cls, name) is None]
    assert unbounded == [], f"{kind}: numeric keys without bounds: {unbounded}"
    build_config(kind, {})  # the defaults pass their own checks
    for name in numbers:
        bound = bound_of(cls, name)
        assert bound is not None and (bound.low is not None or bound.high is not None), name
        if hints[name] is dict or typing.get_origin(hints[name]) is dict:
            continue
        for outside in [
            v
            for v in (
                bound.low - 1 if bound.low is not None else None,
                bound.low if bound.low is not None and bound.low_open else None,
                bound.high + 1 if bound.high is not None else None,
                float("nan") if hints[name] is float else None,
            )
            if v is not None and all(v != s for s, _ in bound.special)
        ]:
            with pytest.raises(ConfigError) as refused:
                build_config(kind, {name: outside})
            assert refused.value.key == name and name in str(refused.value)


def test_strings_with_a_fixed_set_of_values_say_which() -> None:
    assert choices_of(CONFIGS["ppo"], "lr_scheduler") == ("linear", "cosine", "constant")
    with pytest.raises(ConfigError, match="value_network must be one of separate, shared"):
        build_config("ppo", {"value_network": "sharde"})
    with pytest.raises(ConfigError, match=r"aspect_weights\['a'\] must be a finite number"):
        build_config("rm", {"aspect_weights": {"a": "inf"}})


def test_the_trainer_cli_refuses_bad_numbers_and_models_before_training(
    tmp_path: Path, causal_lm: str, encoder: str, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_jsonl(tmp_path / "pairs.jsonl", pair_records(4))
    out = tmp_path / "out"
    base = ["--train-file", data, "--output-dir", str(out)]
    refusals = [
        (["sft", "--model", causal_lm, "--set", "learning_rate=0"], "learning_rate must be > 0"),
        (["sft", "--model", causal_lm, "--max-steps", "-5"], "max_steps must be ≥ 1"),
        (["dpo", "--model", encoder], "a policy must be a causal LM"),
        (["sft", "--model", str(tmp_path / "nowhere")], "no such directory"),
        (["ppo", "--model", causal_lm], "'reward_model' is required"),
        (
            ["ppo", "--model", causal_lm, "--reward-model", causal_lm],
            "a reward model is a sequence classifier with one label",
        ),
        (["generate", "--model", encoder, "--set", "n=1"], "a policy must be a causal LM"),
        (["generate", "--model", causal_lm, "--set", "n=1000000000000"], "n must be ≥ 1"),
    ]
    for argv, message in refusals:
        assert main([*argv, *base]) == EXIT_USAGE, argv
        assert message in capsys.readouterr().err, argv
    assert not (out / "metrics.jsonl").exists()  # nothing trained


def test_the_trainer_leaves_an_uncached_hub_id_to_the_download_unless_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from trainer.__main__ import check_models

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    cfg = build_config("sft", {"model": "org/absent"})
    check_models("sft", cfg)  # from_pretrained may download it
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError, match="this machine cannot download"):
        check_models("sft", cfg)
    (tmp_path / "run.json").write_text(json.dumps({"model": "org/absent", "train_file": "t"}))
    assert main(["sft", "--config", str(tmp_path / "run.json")]) == EXIT_USAGE
    assert "'org/absent' is not a local directory or a hub id" in capsys.readouterr().err
