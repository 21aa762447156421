"""Reward head: the response survives truncation, pooling per backbone, suggested settings learn."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from tests.trainer.trainer_testdata import write_jsonl
from trainer import EXIT_OK
from trainer.configs import ConfigError, RewardConfig
from trainer.factories import load_tokenizer
from trainer.reward import RewardModel, tokenize_ranking, train
from trainer.reward_head import SpecialTokens, resolve_pooling, score_batch
from trainer.suggest import count_parameters, lr_schedule, size_class, suggest

DEMO_RANKINGS = Path(__file__).resolve().parents[2] / "app" / "demo_data" / "ranking.jsonl"
QUALITY = ["studio-large-v2", "studio-base-v1", "studio-small-v1", "studio-tiny-v0"]


def test_long_prompt_is_cut_from_the_left_and_the_response_kept(encoder: str) -> None:
    tok = load_tokenizer(encoder)
    response = "good answer python"
    rec = {"prompt": "hello world " * 200 + "final question", "responses": [response, "no"]}
    enc = tokenize_ranking(tok, rec, "rankings", max_length=32)
    specials = SpecialTokens(tok)
    body = tok(response, add_special_tokens=False)["input_ids"]
    first = enc["input_ids"][0]
    assert len(first) == 32
    assert first[: len(specials.prefix)] == specials.prefix  # [CLS] survives
    assert first[len(first) - len(specials.suffix) - len(body) :] == body + specials.suffix
    text = tok.decode(first, skip_special_tokens=True)
    assert "question" in text and text.count("hello") < 20  # the prompt's end is kept
    assert enc["responses_cut"] == 0
    too_long = tokenize_ranking(
        tok, {"prompt": "hi", "responses": ["cat " * 100, "no"]}, "rankings", 16
    )
    assert too_long["responses_cut"] == 1 and len(too_long["input_ids"][0]) == 16


def test_pooling_defaults_to_what_the_backbone_was_trained_with(
    encoder: str, causal_lm: str, tmp_path: Path
) -> None:
    enc_model = AutoModelForSequenceClassification.from_pretrained(encoder, num_labels=1)
    lm_model = AutoModelForSequenceClassification.from_pretrained(causal_lm, num_labels=1)
    assert resolve_pooling("auto", encoder, enc_model) == "cls"
    assert resolve_pooling("auto", causal_lm, lm_model) == "last"
    st_dir = tmp_path / "st"  # a sentence-transformers checkout pools by the mean
    shutil.copytree(encoder, st_dir)
    (st_dir / "1_Pooling").mkdir()
    (st_dir / "1_Pooling" / "config.json").write_text(
        json.dumps({"pooling_mode_mean_tokens": True})
    )
    assert resolve_pooling("auto", str(st_dir), enc_model) == "mean"
    with pytest.raises(ConfigError, match="needs an encoder"):
        resolve_pooling("cls", causal_lm, lm_model)
    with pytest.raises(ConfigError, match="use one of"):
        resolve_pooling("max", encoder, enc_model)


@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_pooled_score_ignores_padding(causal_lm: str, pooling: str) -> None:
    model = AutoModelForSequenceClassification.from_pretrained(causal_lm, num_labels=1).eval()
    seqs = [[1, 300, 301, 302], [1, 303]]
    with torch.no_grad():
        together = score_batch(model, seqs, 0, "cpu", pooling)
        alone = torch.cat([score_batch(model, [s], 0, "cpu", pooling) for s in seqs])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-4)


def test_trained_pooling_is_recorded_and_used_for_scoring(encoder: str, tmp_path: Path) -> None:
    recs = [{"prompt": f"q{i}", "responses": ["good good answer", "bad answer"]} for i in range(16)]
    cfg = RewardConfig(
        model=encoder,
        train_file=write_jsonl(tmp_path / "r.jsonl", recs),
        output_dir=str(tmp_path / "rm"),
        max_steps=3,
        pooling="mean",
        eval_fraction=0.0,
    )
    assert train(cfg) == EXIT_OK
    assert json.loads((tmp_path / "rm" / "config.json").read_text())["reward_pooling"] == "mean"
    assert json.loads((tmp_path / "rm" / "run_config.json").read_text())["truncation"] == (
        "prompt_left"
    )
    rm = RewardModel(tmp_path / "rm")
    assert rm.pooling == "mean"


def test_parameter_count_from_the_weight_files(encoder: str) -> None:
    model = AutoModelForSequenceClassification.from_pretrained(encoder, num_labels=1)
    assert count_parameters(encoder) == sum(p.numel() for p in model.state_dict().values())
    assert size_class(count_parameters(encoder)) == "toy"
    assert size_class(None) == "small" and size_class(7_000_000_000) == "large"
    assert suggest("rm", 7_000_000_000)["learning_rate"] < suggest("rm", 1000)["learning_rate"]


def test_auto_schedule_is_constant_for_pretrained_reward_models_and_cosine_for_toys() -> None:
    assert lr_schedule("rm", 22_700_000) == lr_schedule("rm", None) == "constant"  # MiniLM, hub
    assert lr_schedule("rm", 7_000_000_000) == "constant"
    assert lr_schedule("rm", 1000) == "cosine"
    assert lr_schedule("sft", 22_700_000) == "cosine"  # other kinds keep their own default


def test_demo_reward_model_learns_at_the_suggested_settings(encoder: str, tmp_path: Path) -> None:
    """The demo: 30 rankings of the shipped prompts, ranked by model quality, 20 steps."""
    recs = []
    for line in DEMO_RANKINGS.read_text().splitlines():
        row = json.loads(line)
        by_model = {r["model"]: r["text"] for r in row["responses"]}
        recs.append({"prompt": row["prompt"], "responses": [by_model[m] for m in QUALITY]})
    settings = suggest("rm", count_parameters(encoder))
    cfg = RewardConfig(
        model=encoder,
        train_file=write_jsonl(tmp_path / "demo.jsonl", recs),
        output_dir=str(tmp_path / "rm"),
        max_steps=20,
        eval_fraction=0.0,  # the demo snapshot has no test rows
        learning_rate=settings["learning_rate"],
        max_length=int(settings["max_length"]),
    )
    assert train(cfg) == EXIT_OK
    rows = [json.loads(x) for x in (tmp_path / "rm" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["loss"] < 0.6 < 0.69 < rows[0]["loss"] + 0.01
    assert sum(r["accuracy"] for r in rows[-5:]) / 5 >= 0.7  # chance is 0.5
    assert "eval_accuracy" not in json.loads((tmp_path / "rm" / "summary.json").read_text())
    recorded = json.loads((tmp_path / "rm" / "run_config.json").read_text())
    assert recorded["lr_scheduler"] == "cosine"  # "auto", resolved for a toy and recorded
