"""Write snapshot rows as train/test JSONL while hashing them, and the same rows as Parquet.

Both are written as rows arrive (bounded memory: Parquet holds one chunk per split); the
content hash covers the parameters and the bytes of both JSONL files (`app.jsontext.row_line`,
the standard encoder's bytes), so the same parameters on unchanged data give the same hash.
Parquet needs one type per column, from what the pass saw: strings, numbers, lists of strings
and message lists get native Arrow types; a column that mixes them (e.g. prompts that are
strings for some rows and message lists for others) holds JSON text, and the manifest lists it
under `parquet_json_columns`. When a late row changes a column's type, Parquet is written again
from the JSONL after the pass.
"""

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from app.jsontext import row_line

SPLITS = ("train", "test")
PARQUET_CHUNK = 20_000


def in_train(external_id: str, split: float) -> bool:
    """Whether a prompt belongs to train: sha256 of its external id as a fraction < split."""
    digest = hashlib.sha256(external_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < split


def _is_strlist(value: list[Any]) -> bool:
    for v in value:  # noqa: SIM110 — a loop, not all(): this runs for every row
        if not isinstance(v, str):
            return False
    return True


def _tag(value: Any) -> str | None:
    if type(value) is str:  # the common case first
        return "str"
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
        if _is_strlist(value):
            return "strlist"
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
    """column -> the value tags seen (str, int, float, bool, strlist, messages, json)."""
    message_keys: dict[str, list[str]] = field(default_factory=dict)


class _Columns:
    """The value tags of each column and the keys of message lists, as rows go by."""

    def __init__(self) -> None:
        self.tags: dict[str, set[str]] = {}
        self.message_keys: dict[str, list[str]] = {}

    def see(self, row: dict[str, Any]) -> None:
        tags = self.tags
        for name, value in row.items():
            tag = _tag(value)
            seen = tags.get(name)
            if seen is None:
                seen = tags[name] = set()
            if tag is not None:
                seen.add(tag)
            if tag == "messages":
                keys = self.message_keys.setdefault(name, [])
                for turn in value:
                    keys.extend(k for k in turn if k not in keys)


class _ParquetPass:
    """Parquet written in the JSONL pass, chunk by chunk, with the schema the columns seen so
    far give. If a later row changes the schema (a new column, a column turning mixed),
    writing stops here and `write_parquet` writes both files again from the JSONL."""

    def __init__(self, directory: Path, columns: _Columns) -> None:
        self.directory = directory
        self.columns = columns
        self.pending: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
        self.writers: dict[str, pq.ParquetWriter] = {}
        self.schema: tuple[pa.Schema, list[str]] | None = None
        self.broken = False

    def add(self, split: str, rows: list[dict[str, Any]]) -> None:
        if self.broken:
            return
        pending = self.pending[split]
        pending.extend(rows)
        if len(pending) >= PARQUET_CHUNK:
            self._flush(split, pending[:PARQUET_CHUNK])
            del pending[:PARQUET_CHUNK]

    def _current(self) -> tuple[pa.Schema, list[str]]:
        return _schema(self.columns.tags, self.columns.message_keys)

    def _flush(self, split: str, chunk: list[dict[str, Any]]) -> None:
        current = self._current()
        if self.schema is None:
            self.schema = current
        elif current != self.schema:
            self.broken = True
            return
        schema, json_columns = self.schema
        if split not in self.writers:
            self.writers[split] = pq.ParquetWriter(self.directory / f"{split}.parquet", schema)
        if json_columns:
            chunk = [_as_json_text(row, json_columns) for row in chunk]
        self.writers[split].write_table(pa.Table.from_pylist(chunk, schema=schema))

    def finish(self, counts: dict[str, int]) -> list[str] | None:
        """Write what is pending; the JSON columns, or None when the files must be rewritten."""
        for split in SPLITS:
            if self.pending[split] and not self.broken:
                self._flush(split, self.pending[split])
        final = self._current()
        if self.broken or (self.schema is not None and final != self.schema):
            return None
        schema, json_columns = self.schema = final
        for split in SPLITS:
            if split not in self.writers:
                self.writers[split] = pq.ParquetWriter(self.directory / f"{split}.parquet", schema)
            if not counts[split]:
                self.writers[split].write_table(schema.empty_table())
        return json_columns

    def close(self) -> None:
        for handle in self.writers.values():
            handle.close()


def write_files(
    directory: Path, rows: Iterable[tuple[str, list[dict[str, Any]]]], params: dict[str, Any]
) -> tuple[Written, list[str]]:
    """train/test .jsonl and .parquet from (external id, rows) per prompt, in one pass; the
    hashes, row counts and column types, and the columns Parquet holds as JSON text."""
    hashers = {s: hashlib.sha256() for s in SPLITS}
    counts = dict.fromkeys(SPLITS, 0)
    columns = _Columns()
    parquet = _ParquetPass(directory, columns)
    try:
        with (
            open(directory / "train.jsonl", "wb") as train,
            open(directory / "test.jsonl", "wb") as test,
        ):
            handles = {"train": train, "test": test}
            for external_id, prompt_rows in rows:
                split = "train" if in_train(external_id, params["split"]) else "test"
                for row in prompt_rows:
                    columns.see(row)
                data = b"".join(map(row_line, prompt_rows))
                handles[split].write(data)
                hashers[split].update(data)
                counts[split] += len(prompt_rows)
                parquet.add(split, prompt_rows)
        json_columns = parquet.finish(counts)
    finally:
        parquet.close()
    if counts["test"] and not counts["train"]:
        # A tiny project whose few prompts all hashed to test: train on them instead, so
        # that a snapshot with rows can always train.
        (directory / "test.jsonl").replace(directory / "train.jsonl")
        (directory / "test.jsonl").touch()
        hashers = {"train": hashers["test"], "test": hashlib.sha256()}
        counts = {"train": counts["test"], "test": 0}
        json_columns = None  # Parquet follows the files, below
    sha = {s: h.hexdigest() for s, h in hashers.items()}
    blob = json.dumps(params, sort_keys=True) + "\n" + sha["train"] + "\n" + sha["test"]
    content_hash = hashlib.sha256(blob.encode()).hexdigest()
    written = Written(counts, sha, content_hash, columns.tags, columns.message_keys)
    if json_columns is None:
        json_columns = write_parquet(directory, written)
    return written, json_columns


def _as_json_text(row: dict[str, Any], json_columns: list[str]) -> dict[str, Any]:
    out = dict(row)
    for name in json_columns:
        if name in out:
            out[name] = json.dumps(out[name], ensure_ascii=False)
    return out


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
    if tags == {"messages"}:
        return pa.list_(pa.struct([(k, pa.string()) for k in keys]))
    return None


def parquet_schema(written: Written) -> tuple[pa.Schema, list[str]]:
    """The Arrow schema of the snapshot and the columns stored as JSON text."""
    return _schema(written.columns, written.message_keys)


def _schema(
    columns: dict[str, set[str]], message_keys: dict[str, list[str]]
) -> tuple[pa.Schema, list[str]]:
    fields, json_columns = [], []
    for name, tags in columns.items():
        arrow = _arrow_type(tags, message_keys.get(name, []))
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
            chunk.append(_as_json_text(row, json_columns) if json_columns else row)
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
