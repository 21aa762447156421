"""Write snapshot rows as train/test JSONL while hashing them, and the same rows as Parquet.

Both are written as rows arrive (bounded memory: Parquet holds one chunk per split, as
columns); the content hash covers the parameters and the bytes of both JSONL files
(`app.jsontext.row_line`, the standard encoder's bytes), so the same parameters on unchanged
data give the same hash. A prompt's rows come as dicts, or as `Encoded` (lines and columns its
builder made without a dict per row: a million rankings). A thread per file writes and hashes
the lines in blocks while the next rows are built.
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
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from app.jsontext import row_line
from app.prefetch import WriteBehind

SPLITS = ("train", "test")
PARQUET_CHUNK = 20_000
BLOCK = 1 << 20


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


class _Columns:
    """The value tags of each column and the keys of message lists, as rows go by."""

    def __init__(self) -> None:
        self.tags: dict[str, set[str]] = {}
        self.message_keys: dict[str, list[str]] = {}

    def see(self, made: "list[dict[str, Any]] | Encoded") -> None:
        """Note the columns of one prompt's rows."""
        if type(made) is Encoded:
            for name, tag in made.tags.items():
                seen = self.tags.get(name)
                if seen is None:
                    seen = self.tags[name] = set()
                seen.add(tag)
            return
        for row in made:  # type: ignore[union-attr]
            self._see_row(row)

    def _see_row(self, row: dict[str, Any]) -> None:
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


@dataclass(slots=True)
class Encoded:
    """The rows of one prompt as their builder already encoded them: the JSONL lines (each
    row's `row_line` bytes), and the rows as columns — name -> one value per row, None where a
    row has no such key — with each column's value tag (what `_tag` gives its values; never
    "messages"). For rows too many to build as dicts (`rows.snapshot_rows`)."""

    lines: bytes
    count: int
    columns: dict[str, list[Any]]
    tags: dict[str, str]


def lines_of(made: list[dict[str, Any]] | Encoded) -> tuple[bytes, int]:
    """One prompt's rows as JSONL (`row_line`'s bytes) and how many there are."""
    if type(made) is Encoded:
        return made.lines, made.count
    return b"".join(map(row_line, made)), len(made)  # type: ignore[arg-type]


class _Pending:
    """Rows waiting for Parquet, as columns (None where a row has no such key)."""

    def __init__(self) -> None:
        self.count = 0
        self.columns: dict[str, list[Any]] = {}

    def _open(self, names: Iterable[str]) -> None:
        for name in names:
            if name not in self.columns:
                self.columns[name] = [None] * self.count

    def add_rows(self, rows: list[dict[str, Any]]) -> None:
        columns = self.columns
        for row in rows:
            self._open(row)
            for name, values in columns.items():
                values.append(row.get(name))
            self.count += 1

    def add(self, made: Encoded) -> None:
        self._open(made.columns)
        for name, values in self.columns.items():
            got = made.columns.get(name)
            values.extend(got if got is not None else [None] * made.count)
        self.count += made.count

    def take(self, count: int) -> tuple[dict[str, list[Any]], int]:
        """The first `count` rows (or all there are), removed from the pending ones."""
        count = min(count, self.count)
        taken = {name: values[:count] for name, values in self.columns.items()}
        for values in self.columns.values():
            del values[:count]
        self.count -= count
        return taken, count


def _table(
    columns: dict[str, list[Any]], count: int, schema: pa.Schema, json_columns: list[str]
) -> pa.Table:
    """A Parquet chunk from columns of Python values, the JSON columns as JSON text."""
    arrays = []
    for arrow_field in schema:
        values = columns.get(arrow_field.name)
        if values is None:
            arrays.append(pa.nulls(count, arrow_field.type))
            continue
        if arrow_field.name in json_columns:
            values = [None if v is None else json.dumps(v, ensure_ascii=False) for v in values]
        arrays.append(pa.array(values, type=arrow_field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


class _ParquetPass:
    """Parquet written in the JSONL pass, chunk by chunk, with the schema the columns seen so
    far give. If a later row changes the schema (a new column, a column turning mixed),
    writing stops here and `write_parquet` writes both files again from the JSONL."""

    def __init__(self, directory: Path, columns: _Columns) -> None:
        self.directory = directory
        self.columns = columns
        self.pending = {s: _Pending() for s in SPLITS}
        self.writers: dict[str, pq.ParquetWriter] = {}
        self.schema: tuple[pa.Schema, list[str]] | None = None
        self.broken = False

    def add(self, split: str, made: list[dict[str, Any]] | Encoded) -> None:
        if self.broken:
            return
        pending = self.pending[split]
        if type(made) is Encoded:
            pending.add(made)
        else:
            pending.add_rows(made)  # type: ignore[arg-type]
        if pending.count >= PARQUET_CHUNK:
            self._flush(split, *pending.take(PARQUET_CHUNK))

    def _current(self) -> tuple[pa.Schema, list[str]]:
        return _schema(self.columns.tags, self.columns.message_keys)

    def _flush(self, split: str, columns: dict[str, list[Any]], count: int) -> None:
        current = self._current()
        if self.schema is None:
            self.schema = current
        elif current != self.schema:
            self.broken = True
            return
        schema, json_columns = self.schema
        if split not in self.writers:
            self.writers[split] = pq.ParquetWriter(self.directory / f"{split}.parquet", schema)
        self.writers[split].write_table(_table(columns, count, schema, json_columns))

    def finish(self, counts: dict[str, int]) -> list[str] | None:
        """Write what is pending; the JSON columns, or None when the files must be rewritten."""
        for split in SPLITS:
            pending = self.pending[split]
            if pending.count and not self.broken:
                self._flush(split, *pending.take(pending.count))
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


class _Lines:
    """One split's JSONL: written and hashed by a thread (`WriteBehind`) in blocks of about
    `BLOCK` bytes, while the caller builds the next rows."""

    def __init__(self, handle: BinaryIO) -> None:
        self.hasher = hashlib.sha256()
        self.parts: list[bytes] = []
        self.size = 0

        def write(parts: list[bytes]) -> None:
            block = b"".join(parts)  # the copy of a megabyte or more releases the GIL
            handle.write(block)
            self.hasher.update(block)

        self.behind: WriteBehind[list[bytes]] = WriteBehind(write)

    def add(self, data: bytes) -> None:
        self.parts.append(data)
        self.size += len(data)
        if self.size >= BLOCK:
            self.flush()

    def flush(self) -> None:
        if self.parts:
            self.behind.write(self.parts)
            self.parts, self.size = [], 0

    def __enter__(self) -> "_Lines":
        return self

    def __exit__(self, kind: object, *rest: object) -> None:
        if kind is None:
            self.flush()
        self.behind.__exit__(kind, *rest)


def write_files(
    directory: Path,
    rows: Iterable[tuple[str, list[dict[str, Any]] | Encoded]],
    params: dict[str, Any],
) -> tuple[Written, list[str]]:
    """train/test .jsonl and .parquet from (external id, rows) per prompt, in one pass; the
    hashes, row counts and column types, and the columns Parquet holds as JSON text."""
    counts = dict.fromkeys(SPLITS, 0)
    columns = _Columns()
    parquet = _ParquetPass(directory, columns)
    try:
        with (
            open(directory / "train.jsonl", "wb") as train,
            open(directory / "test.jsonl", "wb") as test,
            _Lines(train) as train_lines,
            _Lines(test) as test_lines,
        ):
            lines = {"train": train_lines, "test": test_lines}
            for external_id, made in rows:
                split = "train" if in_train(external_id, params["split"]) else "test"
                columns.see(made)
                data, count = lines_of(made)
                lines[split].add(data)
                counts[split] += count
                parquet.add(split, made)
        json_columns = parquet.finish(counts)
    finally:
        parquet.close()
    hashers = {s: lines[s].hasher for s in SPLITS}
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


def _chunks(path: Path) -> Iterator[tuple[dict[str, list[Any]], int]]:
    pending = _Pending()
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            pending.add_rows([json.loads(line)])
            if pending.count >= PARQUET_CHUNK:
                yield pending.take(PARQUET_CHUNK)
    if pending.count:
        yield pending.take(pending.count)


def write_parquet(directory: Path, written: Written) -> list[str]:
    """train.parquet and test.parquet with the same rows as the JSONL; returns JSON columns."""
    schema, json_columns = parquet_schema(written)
    for split in SPLITS:
        with pq.ParquetWriter(directory / f"{split}.parquet", schema) as writer:
            for columns, count in _chunks(directory / f"{split}.jsonl"):
                writer.write_table(_table(columns, count, schema, json_columns))
            if not written.rows[split]:
                writer.write_table(schema.empty_table())
    return json_columns
