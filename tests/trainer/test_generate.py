"""`python -m trainer generate`: samples from a tiny model loaded through from_pretrained."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from tests.trainer.trainer_testdata import write_jsonl
from trainer import EXIT_OK, EXIT_PREEMPTED, EXIT_USAGE
from trainer.__main__ import main
from trainer.configs import ConfigError, GenerateConfig
from trainer.data import render_prompt
from trainer.generate import SAMPLES_FILE, generate

PROMPTS = [
    {"prompt_id": "p1", "prompt": "write a short poem about a cat"},
    {"prompt_id": 2, "prompt": [{"role": "user", "content": "explain the reward model"}]},
    {"prompt_id": "p3", "messages": [{"role": "user", "content": "hello"}]},
]


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / SAMPLES_FILE).read_text().splitlines()]


def _cfg(tmp_path: Path, causal_lm: str, **kw) -> GenerateConfig:
    tmp_path.mkdir(parents=True, exist_ok=True)
    data = write_jsonl(tmp_path / "prompts.jsonl", kw.pop("prompts", PROMPTS))
    values = {"max_new_tokens": 12, "n": 2, "temperature": 1.0, "batch_size": 4, "seed": 3}
    return GenerateConfig(
        models=[f"tiny={causal_lm}"],
        train_file=data,
        output_dir=str(tmp_path / "out"),
        **(values | kw),
    )


def test_generates_n_samples_per_prompt_without_the_prompt(tmp_path: Path, causal_lm: str) -> None:
    cfg = _cfg(tmp_path, causal_lm)
    assert generate(cfg) == EXIT_OK
    rows = _rows(tmp_path / "out")
    keys = sorted((r["prompt_id"], r["sample_index"]) for r in rows)
    assert keys == [("2", 0), ("2", 1), ("p1", 0), ("p1", 1), ("p3", 0), ("p3", 1)]
    tok = AutoTokenizer.from_pretrained(causal_lm)
    for r in rows:
        assert r["model"] == "tiny" and r["truncated"] is False
        assert r["finish_reason"] in ("stop", "length")
        assert 0 <= r["completion_tokens"] <= 12
        if r["finish_reason"] == "length":
            assert r["completion_tokens"] == 12
        prompt = next(p for p in PROMPTS if str(p["prompt_id"]) == r["prompt_id"])
        rendered = render_prompt(tok, prompt.get("prompt", prompt.get("messages")))
        assert "<|user|>" in rendered  # the tokenizer's chat template was used
        assert r["prompt_tokens"] == len(tok(rendered)["input_ids"])
        assert not r["text"].startswith(rendered) and "<|user|>" not in r["text"]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["samples"] == 6 and summary["tokens_per_second"] > 0
    metrics = [json.loads(x) for x in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    assert metrics[-1]["step"] == 6 and all(m["tokens_per_second"] > 0 for m in metrics)


def test_greedy_matches_a_plain_generate_and_stops_at_eos(tmp_path: Path, causal_lm: str) -> None:
    """Left padding in a batch gives what one unpadded generate call gives, cut at EOS."""
    cfg = _cfg(tmp_path, causal_lm, n=1, temperature=0.0, max_new_tokens=20)
    assert generate(cfg) == EXIT_OK
    tok = AutoTokenizer.from_pretrained(causal_lm)
    model = AutoModelForCausalLM.from_pretrained(causal_lm)
    for r in _rows(tmp_path / "out"):
        prompt = next(p for p in PROMPTS if str(p["prompt_id"]) == r["prompt_id"])
        ids = tok(
            render_prompt(tok, prompt.get("prompt", prompt.get("messages"))), return_tensors="pt"
        )
        out = model.generate(
            **ids, max_new_tokens=20, do_sample=False, pad_token_id=tok.pad_token_id
        )
        new = out[0, ids["input_ids"].size(1) :].tolist()
        if tok.eos_token_id in new:
            new = new[: new.index(tok.eos_token_id)]
            assert r["finish_reason"] == "stop"
        assert r["text"] == tok.decode(new, skip_special_tokens=True)
        assert r["completion_tokens"] == len(new)


def test_seeded_and_resumable(tmp_path: Path, causal_lm: str) -> None:
    first = _cfg(tmp_path / "a", causal_lm)
    assert generate(first) == EXIT_OK
    again = _cfg(tmp_path / "b", causal_lm)
    assert generate(again) == EXIT_OK
    texts = {(r["prompt_id"], r["sample_index"]): r["text"] for r in _rows(tmp_path / "a" / "out")}
    assert texts == {
        (r["prompt_id"], r["sample_index"]): r["text"] for r in _rows(tmp_path / "b" / "out")
    }
    # A run that died after some rows (and mid-line) finishes the rest without duplicates.
    out = tmp_path / "b" / "out" / SAMPLES_FILE
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:2]) + lines[2][:10])
    assert generate(again) == EXIT_OK
    rows = _rows(tmp_path / "b" / "out")
    assert len(rows) == 6 and len({(r["prompt_id"], r["sample_index"]) for r in rows}) == 6
    assert generate(again) == EXIT_OK and len(_rows(tmp_path / "b" / "out")) == 6


def test_long_prompts_are_cut_from_the_left_and_recorded(tmp_path: Path, causal_lm: str) -> None:
    long = {"prompt_id": "long", "prompt": "the cat and the dog " * 40}
    cfg = _cfg(tmp_path, causal_lm, prompts=[long, PROMPTS[0]], n=1, max_context=48)
    assert generate(cfg) == EXIT_OK
    rows = {r["prompt_id"]: r for r in _rows(tmp_path / "out")}
    assert rows["long"]["truncated"] is True and rows["long"]["prompt_tokens"] == 48 - 12
    assert rows["p1"]["truncated"] is False


def test_sample_indices_and_several_models(tmp_path: Path, causal_lm: str) -> None:
    prompts = [
        {"prompt_id": "a", "prompt": "hello", "sample_indices": {"one": [2, 3], "two": [0]}},
        {"prompt_id": "b", "prompt": "good day", "sample_indices": [5]},
    ]
    cfg = _cfg(tmp_path, causal_lm, prompts=prompts)
    cfg.models = [f"one={causal_lm}", f"two={causal_lm}"]
    assert generate(cfg) == EXIT_OK
    got = sorted((r["model"], r["prompt_id"], r["sample_index"]) for r in _rows(tmp_path / "out"))
    assert got == [
        ("one", "a", 2),
        ("one", "a", 3),
        ("one", "b", 5),
        ("two", "a", 0),
        ("two", "b", 5),
    ]


def test_preempted_run_stops_between_batches(tmp_path: Path, causal_lm: str, monkeypatch) -> None:
    from trainer import runtime

    def preempted_log(self, step, metrics):  # SIGTERM arrives while the first batch runs
        self.preempted = True

    monkeypatch.setattr(runtime.Run, "log_metrics", preempted_log)
    cfg = _cfg(tmp_path, causal_lm, batch_size=2)
    assert generate(cfg) == EXIT_PREEMPTED
    assert len(_rows(tmp_path / "out")) == 2


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ({"prompt": "x"}, '"prompt_id"'),
        ({"prompt_id": "x", "prompt": 3}, '"prompt"'),
        ({"prompt_id": "x", "prompt": "y", "sample_indices": [-1]}, "sample_indices"),
    ],
)
def test_bad_prompt_files_name_the_line(
    tmp_path: Path, causal_lm: str, line, message, capsys
) -> None:
    data = write_jsonl(tmp_path / "p.jsonl", [PROMPTS[0], line])
    code = main(
        ["generate", "--model", causal_lm, "--train-file", data, "--output-dir", str(tmp_path)]
    )
    assert code == EXIT_USAGE
    err = capsys.readouterr().err
    assert f"{data}:2" in err and message in err


def test_cli_and_config_errors(tmp_path: Path, causal_lm: str, capsys) -> None:
    data = write_jsonl(tmp_path / "p.jsonl", PROMPTS[:1])
    out = tmp_path / "out"
    argv = ["generate", "--model", causal_lm, "--train-file", data, "--output-dir", str(out)]
    assert main([*argv, "--set", "n=1", "--set", "max_new_tokens=4"]) == EXIT_OK
    assert len(_rows(out)) == 1 and _rows(out)[0]["model"] == causal_lm
    assert main([*argv, "--set", "engine=onnx"]) == EXIT_USAGE
    assert "engine must be" in capsys.readouterr().err
    argv[-1] = str(tmp_path / "other")
    assert main([*argv, "--set", "max_context=8"]) == EXIT_USAGE
    assert "leaves no room" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="required"):
        generate(GenerateConfig(train_file=data))


def test_a_reward_model_scores_each_sample(tmp_path: Path, causal_lm: str, encoder: str) -> None:
    from trainer.reward import load_reward_model

    cfg = _cfg(tmp_path, causal_lm, n=1, reward_model=encoder)
    assert generate(cfg) == EXIT_OK
    rows = _rows(tmp_path / "out")
    rm = load_reward_model(encoder)
    for r in rows:
        prompt = next(p for p in PROMPTS if str(p["prompt_id"]) == r["prompt_id"])
        expected = rm.score_responses([prompt.get("prompt", prompt.get("messages"))], [r["text"]])
        assert r["reward"] == pytest.approx(float(expected[0]), abs=1e-4)
