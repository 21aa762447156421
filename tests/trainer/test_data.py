"""Reading dataset files: formats, compression, Parquet, errors with line numbers, rendering."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from transformers import AutoTokenizer

from trainer.data import DataError, detect_format, load_records, render_prompt, sft_segments


def test_jsonl_gz_and_parquet_read_the_same_records(tmp_path: Path) -> None:
    recs = [
        {"prompt": "hi", "chosen": "a", "rejected": "b"},
        {"prompt": "yo", "chosen": "c", "rejected": "d", "margin": 1.5},
    ]
    (tmp_path / "p.jsonl").write_text("\n".join(json.dumps(r) for r in recs) + "\n\n")
    with gzip.open(tmp_path / "p.jsonl.gz", "wt") as f:
        f.write("\n".join(json.dumps(r) for r in recs))
    pq.write_table(
        pa.Table.from_pylist([{**r, "margin": r.get("margin")} for r in recs]),
        tmp_path / "p.parquet",
    )
    for name in ("p.jsonl", "p.jsonl.gz", "p.parquet"):
        got = load_records(tmp_path / name, "pairs")
        assert [(r["prompt"], r["chosen"]) for r in got] == [("hi", "a"), ("yo", "c")]


def test_bad_line_is_reported_with_file_and_line_number(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    good = json.dumps({"prompt": "p", "responses": ["a", "b"]})
    path.write_text(f"{good}\n{good}\n{json.dumps({'prompt': 'p', 'responses': ['only one']})}\n")
    with pytest.raises(DataError, match=r"r\.jsonl:3: rankings record"):
        load_records(path, "rankings")
    path.write_text(f"{good}\n{{not json\n")
    with pytest.raises(DataError, match=r"r\.jsonl:2: invalid JSON"):
        load_records(path, "rankings")


def test_detect_format_prefers_rankings_then_pairs(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text(json.dumps({"prompt": "p", "chosen": "a", "rejected": "b"}) + "\n")
    assert detect_format(path, ("rankings", "pairs")) == "pairs"


def test_conversation_masks_only_assistant_turns(causal_lm: str) -> None:
    tok = AutoTokenizer.from_pretrained(causal_lm)
    rec = {
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "yes"},
            {"role": "user", "content": "more"},
            {"role": "assistant", "content": "no"},
        ]
    }
    pieces = sft_segments(tok, rec)
    assert "".join(t for t, _ in pieces) == tok.apply_chat_template(rec["messages"], tokenize=False)
    assert [t for t, learn in pieces if learn] == ["yes<eos>\n", "no<eos>\n"]


def test_plain_format_without_chat_template(causal_lm: str) -> None:
    tok = AutoTokenizer.from_pretrained(causal_lm)
    tok.chat_template = None
    assert render_prompt(tok, "hi") == "User: hi\n\nAssistant: "
    assert (
        render_prompt(tok, [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}])
        == "System: s\n\nUser: q\n\nAssistant: "
    )


def test_plain_format_conversation_ends_learned_turns_with_eos(causal_lm: str) -> None:
    tok = AutoTokenizer.from_pretrained(causal_lm)
    tok.chat_template = None
    rec = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yes"}]}
    pieces = sft_segments(tok, rec)
    assert "".join(t for t, _ in pieces) == "User: hi\n\nAssistant: yes\n\n<eos>"
    assert [t for t, learn in pieces if learn] == ["yes\n\n<eos>"]


def test_conversational_answers_render_the_whole_conversation(causal_lm: str) -> None:
    """A row whose answers are assistant messages reads like the whole conversation; a
    standard row of the same turn gives the same text (plus EOS where SFT learns the end)."""
    from trainer.dpo import tokenize_pair
    from trainer.reward import tokenize_ranking

    tok = AutoTokenizer.from_pretrained(causal_lm)
    conversation = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yes"}]
    prompt = [*conversation, {"role": "user", "content": "more"}]

    def says(text: str) -> list[dict[str, str]]:
        return [{"role": "assistant", "content": text}]

    whole = tok.apply_chat_template([*prompt, *says("no")], tokenize=False)
    pieces = sft_segments(tok, {"prompt": prompt, "completion": says("no")})
    assert "".join(t for t, _ in pieces) == whole
    assert [t for t, learn in pieces if learn] == ["no<eos>\n"]
    standard = sft_segments(tok, {"prompt": "more", "completion": "no"})
    assert [t for t, learn in standard if learn] == ["no<eos>"]

    pair = {"prompt": prompt, "chosen": says("no"), "rejected": says("nope")}
    chosen, rejected = tokenize_pair(tok, pair, 512)
    assert tok.decode(chosen["input_ids"], skip_special_tokens=False).endswith(whole)
    assert tok.decode(rejected["input_ids"]).endswith("<|assistant|>\nnope<eos>\n")
    ranking = {"prompt": prompt, "responses": [says("no"), says("nope")]}
    seqs = tokenize_ranking(tok, ranking, "rankings", 512)["input_ids"]
    assert tok.decode(seqs[0]).endswith(whole)


def test_appended_rows_cut_a_torn_last_line_off_the_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from trainer.data import appended_rows

    path = tmp_path / "out.jsonl"
    assert appended_rows(path) == []
    path.write_text('{"id": 1}\n\n{"id": 2}\n{"id": 3, "te')
    assert appended_rows(path) == [{"id": 1}, {"id": 2}]
    assert path.read_text() == '{"id": 1}\n\n{"id": 2}\n'
    with open(path, "a") as f:
        f.write('{"id": 3}\n')
    assert [row["id"] for row in appended_rows(path)] == [1, 2, 3]
