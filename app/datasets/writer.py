"""Write snapshot rows as train/test JSONL while hashing them, then the same rows as Parquet.

JSONL is written as rows arrive (bounded memory); the content hash covers the parameters and
the bytes of both files, so the same parameters on unchanged data give the same hash. Parquet
needs one type per column, taken from what the JSONL pass saw: strings, numbers, lists of
strings and message lists get native Arrow types; a column that mixes them (e.g. prompts that
are strings for some rows and message lists for others) holds JSON text, and the manifest
lists it under `parquet_json_columns`.
"""

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

SPLITS = ("train", "test")
PARQUET_CHUNK = 20_000


def in_train(external_id: str, split: float) -> bool:
    """Whether a prompt belongs to train: sha256 of its external id as a fraction < split."""
    digest = hashlib.sha256(external_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < split


def _tag(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list):
        if all(isinstance(v, str) for v in value):
            return "strlist"
        if all(type(v) is int for v in value):
            return "intlist"  # a rankings row's ranks
        if all(isinstance(v, dict) and all(isinstance(x, str) for x in v.values()) for v in value):
            return "messages"
    return "json"


@dataclass
class Written:
    """What the JSONL pass produced."""

    rows: dict[str, int]
    sha256: dict[str, str]
    content_hash: str
    columns: dict[str, set[str]] = field(default_factory=dict)
    """column -> the value tags seen (str, int, float, bool, strlist, intlist, messages, json)."""
    message_keys: dict[str, list[str]] = field(default_factory=dict)


def write_jsonl(
    directory: Path, rows: Iterable[tuple[str, list[dict[str, Any]]]], params: dict[str, Any]
) -> Written:
    """train.jsonl and test.jsonl from (external id, rows) per prompt; hashes and column types."""
    hashers = {s: hashlib.sha256() for s in SPLITS}
    counts = dict.fromkeys(SPLITS, 0)
    columns: dict[str, set[str]] = {}
    message_keys: dict[str, list[str]] = {}
    with (
        open(directory / "train.jsonl", "w", encoding="utf-8") as train,
        open(directory / "test.jsonl", "w", encoding="utf-8") as test,
    ):
        handles = {"train": train, "test": test}
        for external_id, prompt_rows in rows:
            split = "train" if in_train(external_id, params["split"]) else "test"
            lines = []
            for row in prompt_rows:
                for name, value in row.items():
                    tag = _tag(value)
                    seen = columns.setdefault(name, set())
                    if tag is not None:
                        seen.add(tag)
                    if tag == "messages":
                        keys = message_keys.setdefault(name, [])
                        for turn in value:
                            keys.extend(k for k in turn if k not in keys)
                lines.append(json.dumps(row, ensure_ascii=False) + "\n")
            text = "".join(lines)
            handles[split].write(text)
            hashers[split].update(text.encode())
            counts[split] += len(prompt_rows)
    if counts["test"] and not counts["train"]:
        # A tiny project whose few prompts all hashed to test: train on them instead, so
        # that a snapshot with rows can always train.
        (directory / "test.jsonl").replace(directory / "train.jsonl")
        (directory / "test.jsonl").touch()
        hashers = {"train": hashers["test"], "test": hashlib.sha256()}
        counts = {"train": counts["test"], "test": 0}
    sha = {s: h.hexdigest() for s, h in hashers.items()}
    blob = json.dumps(params, sort_keys=True) + "\n" + sha["train"] + "\n" + sha["test"]
    content_hash = hashlib.sha256(blob.encode()).hexdigest()
    return Written(counts, sha, content_hash, columns, message_keys)


def _arrow_type(tags: set[str], keys: list[str]) -> pa.DataType | None:
    """The Arrow type for a column's tags; None means JSON text."""
    if not tags or tags == {"str"}:
        return pa.string()
    if tags == {"int"}:
        return pa.int64()
    if tags <= {"int", "float"}:
        return pa.float64()
    if tags == {"bool"}:
        return pa.bool_()
    if tags == {"strlist"}:
        return pa.list_(pa.string())
    if tags == {"intlist"}:
        return pa.list_(pa.int64())
    if tags == {"messages"}:
        return pa.list_(pa.struct([(k, pa.string()) for k in keys]))
    return None


def parquet_schema(written: Written) -> tuple[pa.Schema, list[str]]:
    """The Arrow schema of the snapshot and the columns stored as JSON text."""
    fields, json_columns = [], []
    for name, tags in written.columns.items():
        arrow = _arrow_type(tags, written.message_keys.get(name, []))
        if arrow is None:
            json_columns.append(name)
            arrow = pa.string()
        fields.append(pa.field(name, arrow))
    return pa.schema(fields), json_columns


def _chunks(path: Path, json_columns: list[str]) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            for name in json_columns:
                if name in row:
                    row[name] = json.dumps(row[name], ensure_ascii=False)
            chunk.append(row)
            if len(chunk) >= PARQUET_CHUNK:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


def write_parquet(directory: Path, written: Written) -> list[str]:
    """train.parquet and test.parquet with the same rows as the JSONL; returns JSON columns."""
    schema, json_columns = parquet_schema(written)
    for split in SPLITS:
        with pq.ParquetWriter(directory / f"{split}.parquet", schema) as writer:
            for chunk in _chunks(directory / f"{split}.jsonl", json_columns):
                writer.write_table(pa.Table.from_pylist(chunk, schema=schema))
            if not written.rows[split]:
                writer.write_table(schema.empty_table())
    return json_columns
