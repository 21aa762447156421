"""SFT: completion-only loss that falls, eval on a held-out split, exact resume, SIGTERM → 75."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from tests.trainer.trainer_testdata import read_metrics, sft_records, write_jsonl
from trainer import EXIT_OK, EXIT_PREEMPTED
from trainer.configs import SFTConfig
from trainer.data import IGNORE, tokenize_sft
from trainer.dpo import tokenize_pair
from trainer.runtime import Run
from trainer.sft import train

REPO = Path(__file__).resolve().parents[2]


def test_prompt_tokens_are_masked(causal_lm: str) -> None:
    tok = AutoTokenizer.from_pretrained(causal_lm)
    s = tokenize_sft(tok, {"prompt": "the cat", "completion": "yes dog"}, 512, True)
    n_prompt = len(
        tok(
            tok.apply_chat_template(
                [{"role": "user", "content": "the cat"}], tokenize=False, add_generation_prompt=True
            )
        )["input_ids"]
    )
    assert s["labels"][:n_prompt] == [IGNORE] * n_prompt
    learned = [t for t in s["labels"] if t != IGNORE]
    assert tok.decode(learned) == "yes dog<eos>"
    assert s["input_ids"][n_prompt:] == learned


def test_a_long_conversation_loses_its_oldest_prompt_tokens_not_its_reply(
    causal_lm: str,
) -> None:
    tok = AutoTokenizer.from_pretrained(causal_lm)
    turns = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i} " + "the cat " * 20}
        for i in range(9)
    ]
    rec = {"prompt": turns, "completion": "yes dog"}
    whole = tokenize_sft(tok, rec, 10**6, True)
    assert len(whole["input_ids"]) > 300
    s = tokenize_sft(tok, rec, 128, True)
    assert len(s["input_ids"]) == 128
    assert tok.decode([t for t in s["labels"] if t != IGNORE]) == "yes dog<eos>"
    assert s["input_ids"][0] == tok.bos_token_id == whole["input_ids"][0]  # the start is kept
    assert s["input_ids"][1:] == whole["input_ids"][-127:]  # then the conversation's end
    assert "turn 8" in tok.decode(s["input_ids"]) and "turn 0" not in tok.decode(s["input_ids"])
    # a reply longer than half of max_length keeps half of it; the prompt keeps the other half
    long = tokenize_sft(tok, rec | {"completion": "dog " * 200}, 128, True)
    learned = sum(t != IGNORE for t in long["labels"])
    assert len(long["input_ids"]) == 128 and learned == 64
    # a sample that fits is as before
    short = {"prompt": "the cat", "completion": "yes dog"}
    assert tokenize_sft(tok, short, 128, True) == tokenize_sft(tok, short, 10**6, True)


def test_the_replies_of_a_long_dpo_pair_follow_one_prompt(causal_lm: str) -> None:
    tok = AutoTokenizer.from_pretrained(causal_lm)
    prompt = "the cat " * 100
    chosen, rejected = tokenize_pair(
        tok, {"prompt": prompt, "chosen": "yes " * 40, "rejected": "no"}, 128
    )
    assert len(chosen["input_ids"]) == 128
    first_learned = [
        next(i for i, t in enumerate(s["labels"]) if t != IGNORE) for s in (chosen, rejected)
    ]
    room = sum(t != IGNORE for t in chosen["labels"])  # the longer reply, whole
    assert room > 40 and first_learned[0] == first_learned[1] == 128 - room
    assert chosen["input_ids"][: first_learned[0]] == rejected["input_ids"][: first_learned[1]]


def test_sft_lowers_loss_and_saves_a_loadable_model(tmp_path: Path, causal_lm: str) -> None:
    data = write_jsonl(tmp_path / "sft.jsonl", sft_records(80))
    cfg = SFTConfig(
        model=causal_lm,
        train_file=data,
        output_dir=str(tmp_path / "out"),
        max_steps=24,
        batch_size=8,
        learning_rate=3e-3,
        warmup_ratio=0.1,
        eval_fraction=0.2,
    )
    assert train(cfg) == EXIT_OK
    rows = read_metrics(cfg.output_dir)
    assert [r["step"] for r in rows] == list(range(1, 25))
    assert all({"loss", "lr", "tokens_per_s"} <= r.keys() for r in rows)
    assert sum(r["loss"] for r in rows[-4:]) / 4 < 0.6 * sum(r["loss"] for r in rows[:4]) / 4
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["eval_loss"] < rows[0]["loss"]
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    before = AutoModelForCausalLM.from_pretrained(causal_lm)
    assert not torch.equal(model.lm_head.weight, before.lm_head.weight)
    AutoTokenizer.from_pretrained(tmp_path / "out")


def test_resume_continues_at_the_right_step_with_identical_weights(
    tmp_path: Path, causal_lm: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = write_jsonl(tmp_path / "sft.jsonl", sft_records(40))
    common = dict(
        model=causal_lm,
        train_file=data,
        max_steps=6,
        batch_size=4,
        gradient_accumulation_steps=2,
        learning_rate=1e-3,
        eval_fraction=0.0,
        warmup_ratio=0.3,
    )
    assert train(SFTConfig(**common, output_dir=str(tmp_path / "full"))) == EXIT_OK

    # Interrupt after step 3 as a SIGTERM would, then start the same run again.
    log_metrics = Run.log_metrics

    def preempt_at_3(self: Run, step: int, metrics: dict) -> None:
        log_metrics(self, step, metrics)
        self.preempted = self.preempted or step == 3

    monkeypatch.setattr(Run, "log_metrics", preempt_at_3)
    assert train(SFTConfig(**common, output_dir=str(tmp_path / "split"))) == EXIT_PREEMPTED
    monkeypatch.setattr(Run, "log_metrics", log_metrics)
    assert train(SFTConfig(**common, output_dir=str(tmp_path / "split"))) == EXIT_OK

    split, full = read_metrics(tmp_path / "split"), read_metrics(tmp_path / "full")
    assert [r["step"] for r in split] == [1, 2, 3, 4, 5, 6]
    assert [r["loss"] for r in split] == pytest.approx([r["loss"] for r in full], rel=1e-4)
    a = AutoModelForCausalLM.from_pretrained(tmp_path / "full").state_dict()
    b = AutoModelForCausalLM.from_pretrained(tmp_path / "split").state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)


def test_accumulated_micro_batches_weigh_every_token_like_one_batch(
    tmp_path: Path, causal_lm: str
) -> None:
    """2 micro-batches of 4 give the loss and weights of 1 batch of 8 (the same 8 examples).

    Each micro-batch's summed loss is divided by the step's completion-token count; a mean per
    micro-batch would weigh a token of a short micro-batch more than one of a long one.
    """
    words = ["the", "cat", "sat", "on", "a", "mat", "and", "the", "dog", "ran", "to", "the", "tree"]
    records = [  # completions of very different lengths: 2 or 12 words
        {"prompt": " ".join(words[i % 5 :][:4]), "completion": " ".join(words[: 2 + 10 * (i % 2)])}
        for i in range(32)
    ]
    data = write_jsonl(tmp_path / "sft.jsonl", records)
    common = dict(
        model=causal_lm, train_file=data, max_steps=3, learning_rate=1e-3, eval_fraction=0.0
    )
    one = SFTConfig(**common, batch_size=8, output_dir=str(tmp_path / "one"))
    acc = SFTConfig(
        **common, batch_size=4, gradient_accumulation_steps=2, output_dir=str(tmp_path / "acc")
    )
    assert train(one) == EXIT_OK and train(acc) == EXIT_OK
    losses = [r["loss"] for r in read_metrics(tmp_path / "acc")]
    assert losses == pytest.approx([r["loss"] for r in read_metrics(tmp_path / "one")], rel=1e-5)
    a = AutoModelForCausalLM.from_pretrained(tmp_path / "one").state_dict()
    b = AutoModelForCausalLM.from_pretrained(tmp_path / "acc").state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)


def test_sigterm_saves_a_checkpoint_and_exits_75(tmp_path: Path, causal_lm: str) -> None:
    data = write_jsonl(tmp_path / "sft.jsonl", sft_records(40))
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "trainer",
        "sft",
        "--model",
        causal_lm,
        "--train-file",
        data,
        "--output-dir",
        str(out),
        "--max-steps",
        "100000",
        "--batch-size",
        "2",
        "--set",
        "save_every=100000",
    ]
    proc = subprocess.Popen(
        cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if (out / "metrics.jsonl").exists() and len(
            (out / "metrics.jsonl").read_text().splitlines()
        ) >= 2:
            break
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGTERM)
    log, _ = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_PREEMPTED, log
    assert "SIGTERM" in log
    (ckpt,) = (out / "checkpoints").iterdir()
    step = json.loads((ckpt / "trainer_state.json").read_text())["step"]
    assert step == len(read_metrics(out)) >= 2
    model = AutoModelForCausalLM.from_pretrained(ckpt / "model")
    tok = AutoTokenizer.from_pretrained(ckpt / "model")
    assert model(**tok("hello", return_tensors="pt")).logits.isfinite().all()


def test_lora_option_trains_adapters_and_saves_a_plain_model(
    tmp_path: Path, causal_lm: str
) -> None:
    data = write_jsonl(tmp_path / "sft.jsonl", sft_records(16))
    cfg = SFTConfig(
        model=causal_lm,
        train_file=data,
        output_dir=str(tmp_path / "out"),
        max_steps=3,
        batch_size=4,
        learning_rate=1e-2,
        lora=True,
        lora_r=4,
        eval_fraction=0.0,
    )
    assert train(cfg) == EXIT_OK
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "out")  # adapters merged in
    base = AutoModelForCausalLM.from_pretrained(causal_lm)
    q_merged = merged.model.layers[0].self_attn.q_proj.weight
    assert not torch.equal(q_merged, base.model.layers[0].self_attn.q_proj.weight)
    assert torch.equal(merged.model.embed_tokens.weight, base.model.embed_tokens.weight)  # frozen
