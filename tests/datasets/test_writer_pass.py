"""Snapshot files written in one pass: the JSONL bytes are the standard encoder's, and the
Parquet written alongside equals Parquet written afterwards from the JSONL, also when a late
row changes a column's type."""

import hashlib
import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from app.datasets import writer

PARAMS = {"kind": "rankings", "method": "all", "split": 0.7}


def _rows(n: int, conversational_from: int | None, margin_from: int | None) -> list:
    out = []
    for i in range(n):
        if conversational_from is not None and i >= conversational_from:
            prompt = [{"role": "user", "content": f"q {i} «ü»"}]
            answers = [[{"role": "assistant", "content": f"a {i}.{j}"}] for j in range(3)]
        else:
            prompt = f'question {i} "quoted"\n'
            answers = [f"answer {i}.{j} \U0001f600" for j in range(3)]
        row = {"prompt": prompt, "responses": answers}
        if margin_from is not None and i >= margin_from:
            row["margin"] = 1e-05 * i
        out.append((f"ext-{i}", [row]))
    return out


@pytest.mark.parametrize(
    ("conversational_from", "margin_from"),
    [(None, None), (45, None), (None, 50), (3, 10)],
    ids=["same types", "a column turns mixed late", "a column appears late", "mixed early"],
)
def test_one_pass_files_equal_the_two_pass_files(
    tmp_path, monkeypatch, conversational_from, margin_from
) -> None:
    monkeypatch.setattr(writer, "PARQUET_CHUNK", 8)
    rows = _rows(60, conversational_from, margin_from)
    one = tmp_path / "one"
    one.mkdir()
    written, json_columns = writer.write_files(one, iter(rows), PARAMS)

    for split in writer.SPLITS:
        expected = "".join(
            json.dumps(row, ensure_ascii=False) + "\n"
            for ext, prompt_rows in rows
            if writer.in_train(ext, PARAMS["split"]) == (split == "train")
            for row in prompt_rows
        ).encode()
        assert (one / f"{split}.jsonl").read_bytes() == expected
        assert written.sha256[split] == hashlib.sha256(expected).hexdigest()

    two = tmp_path / "two"
    two.mkdir()
    for split in writer.SPLITS:
        shutil.copy(one / f"{split}.jsonl", two / f"{split}.jsonl")
    assert writer.write_parquet(two, written) == json_columns
    for split in writer.SPLITS:
        a, b = pq.ParquetFile(one / f"{split}.parquet"), pq.ParquetFile(two / f"{split}.parquet")
        assert a.schema_arrow == b.schema_arrow
        assert a.read().equals(b.read())
        assert a.metadata.num_row_groups == b.metadata.num_row_groups
        assert a.read().num_rows == written.rows[split] > 0
        plain = []  # the rows as pyarrow reads them from dicts, JSON columns as text
        for line in (one / f"{split}.jsonl").read_text().splitlines():
            row = json.loads(line)
            for name in json_columns:
                if name in row:
                    row[name] = json.dumps(row[name], ensure_ascii=False)
            plain.append(row)
        assert a.read().equals(pa.Table.from_pylist(plain, schema=a.schema_arrow))
    if conversational_from is not None:
        assert json_columns == ["prompt", "responses"]
