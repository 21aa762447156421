"""Reading an import file line by line, plain or gzip, within limits a hostile file cannot pass.

gzip is decompressed here in bounded steps, so a small file that expands enormously (a gzip
bomb) is refused after a few MiB rather than read for minutes: the decompressed size and the
decompressed/compressed ratio are capped, and so are the length of a line and the number of
lines. A truncated or corrupt gzip stream is a clear error, never an exception from deep inside.
"""

import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from app.config import get_settings
from app.errors import Invalid, TooLarge

GZIP_MAGIC = b"\x1f\x8b"
PARQUET_MAGIC = b"PAR1"
READ_BLOCK = 16 * 1024
OUT_BLOCK = 1024 * 1024
RATIO_FLOOR = 2 * OUT_BLOCK
"""The ratio cap applies once this much has been decompressed (small files may compress well)."""


@dataclass(frozen=True)
class ImportLimits:
    max_bytes: int
    """Decompressed bytes."""
    max_ratio: int
    """Decompressed/compressed bytes of a gzip file."""
    max_line_bytes: int
    max_lines: int

    @classmethod
    def from_settings(cls) -> "ImportLimits":
        """The limits configured for this process (RLHF_IMPORT_MAX_*)."""
        s = get_settings()
        return cls(
            s.import_max_bytes, s.import_max_ratio, s.import_max_line_bytes, s.import_max_lines
        )


def _plain(raw: BinaryIO, limits: ImportLimits) -> Iterator[bytes]:
    total = 0
    while block := raw.read(OUT_BLOCK):
        total += len(block)
        if total > limits.max_bytes:
            raise TooLarge(f"the file is larger than {limits.max_bytes} bytes", field="file")
        yield block


def _gunzip(raw: BinaryIO, limits: ImportLimits) -> Iterator[bytes]:
    stream = zlib.decompressobj(wbits=31)
    compressed = produced = 0
    in_member = False
    while block := raw.read(READ_BLOCK):
        compressed += len(block)
        data = block
        while data:
            in_member = True
            try:
                out = stream.decompress(data, OUT_BLOCK)
            except zlib.error as exc:
                raise Invalid(f"not valid gzip data ({exc})", field="file") from None
            produced += len(out)
            if produced > limits.max_bytes:
                raise TooLarge(
                    f"the file decompresses to more than {limits.max_bytes} bytes", field="file"
                )
            if produced > RATIO_FLOOR and produced > limits.max_ratio * compressed:
                raise TooLarge(
                    f"the gzip file expands more than {limits.max_ratio}-fold "
                    f"({compressed} compressed bytes gave {produced} so far); refused",
                    field="file",
                )
            if out:
                yield out
            if stream.eof:
                in_member = False
                data = stream.unused_data
                if not data.strip(b"\x00"):
                    data = b""  # padding after the last member
                elif not data.startswith(GZIP_MAGIC):
                    raise Invalid("not valid gzip data: garbage after the end", field="file")
                stream = zlib.decompressobj(wbits=31)  # the next member
            else:
                data = stream.unconsumed_tail
    if in_member:
        raise Invalid("truncated gzip file: it ends inside the compressed data", field="file")


def check(path: Path, limits: ImportLimits | None = None) -> int:
    """Read the file once without parsing (C speed): its lines, or the limit it breaks.

    A gzip bomb, a truncated or corrupt gzip stream and too many lines are refused here in
    milliseconds, before any line is parsed.
    """
    limits = limits or ImportLimits.from_settings()
    lines = 0
    last = b"\n"
    with open(path, "rb") as raw:
        gzipped = raw.read(2) == GZIP_MAGIC
        raw.seek(0)
        for block in _gunzip(raw, limits) if gzipped else _plain(raw, limits):
            lines += block.count(b"\n")
            if lines > limits.max_lines:
                raise TooLarge(f"more than {limits.max_lines} lines in one import", field="file")
            last = block
    return lines + (0 if last.endswith(b"\n") else 1)


def read_lines(path: Path, limits: ImportLimits | None = None) -> Iterator[tuple[int, str]]:
    """(line number, text) of a plain or gzip-compressed UTF-8 file, one line at a time."""
    limits = limits or ImportLimits.from_settings()
    with open(path, "rb") as raw:
        gzipped = raw.read(2) == GZIP_MAGIC
        raw.seek(0)
        blocks = _gunzip(raw, limits) if gzipped else _plain(raw, limits)
        number = 0
        pending = b""
        for block in blocks:
            parts = (pending + block).split(b"\n")
            pending = parts.pop()
            for data in parts:
                number += 1
                yield number, _line(number, data, limits)
            if len(pending) > limits.max_line_bytes:
                raise Invalid(
                    f"line {number + 1} is longer than {limits.max_line_bytes} bytes", field="file"
                )
        if pending:
            number += 1
            yield number, _line(number, pending, limits)


def _line(number: int, data: bytes, limits: ImportLimits) -> str:
    if number > limits.max_lines:
        raise TooLarge(f"more than {limits.max_lines} lines in one import", field="file")
    if len(data) > limits.max_line_bytes:
        raise Invalid(f"line {number} is longer than {limits.max_line_bytes} bytes", field="file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"\x00not utf-8 at byte {exc.start}"


class _Blocks:
    """A binary file-like over decompressed blocks, for a streaming JSON parser; it notes
    whether the text read so far escapes a NUL character (`\\u0000`, the only way JSON can
    hold one; a raw NUL byte is caught too), so records need no search for it until one does."""

    def __init__(self, blocks: Iterator[bytes]) -> None:
        self.blocks = blocks
        self.pending = b""
        self.nul = False
        self.tail = b""

    def read(self, size: int = -1) -> bytes:
        while not self.pending:
            block = next(self.blocks, None)
            if block is None:
                return b""
            self.pending = block
            joined = self.tail + block
            self.nul = self.nul or b"\\u0000" in joined or b"\x00" in block
            self.tail = block[-8:]
        if size < 0 or size >= len(self.pending):
            out, self.pending = self.pending, b""
        else:
            out, self.pending = self.pending[:size], self.pending[size:]
        return out


@dataclass(frozen=True)
class Records:
    """What an import file holds: JSON lines, one JSON array, or a Parquet table."""

    unit: str
    """What a record is called in errors: line, record (of a JSON array) or row (Parquet)."""
    total: int
    """Where the last record ends, in the unit of the positions `read_records` yields."""


def _first_byte(path: Path, limits: ImportLimits) -> bytes:
    with open(path, "rb") as raw:
        head = raw.read(4)
        raw.seek(0)
        if head == PARQUET_MAGIC:
            return head
        blocks = _gunzip(raw, limits) if head[:2] == GZIP_MAGIC else _plain(raw, limits)
        for block in blocks:
            stripped = block.lstrip()
            if stripped:
                return stripped[:1]
    return b""


def records_of(path: Path, lines: int, limits: ImportLimits | None = None) -> Records:
    """How `read_records` will read the file (`lines`: what `check` counted)."""
    limits = limits or ImportLimits.from_settings()
    first = _first_byte(path, limits)
    if first == PARQUET_MAGIC:
        import pyarrow.parquet as pq

        try:
            return Records("row", pq.ParquetFile(path).metadata.num_rows)
        except Exception as exc:  # noqa: BLE001 - pyarrow raises several kinds
            raise Invalid(f"not a readable Parquet file ({exc})"[:300], field="file") from None
    if first == b"[":
        return Records("record", path.stat().st_size)
    return Records("line", lines)


def read_records(
    path: Path, kind: Records, limits: ImportLimits | None = None
) -> Iterator[tuple[int, int, Any, bool]]:
    """(number, position, value, clean) of each record of a JSON array or Parquet file (JSON
    lines: `read_lines`), decoded. A JSON array is parsed as it streams (ijson), so memory holds
    one element at a time whatever the file's size; its position is how far the file was read,
    and `clean` says the text so far escaped no NUL character (the record holds none)."""
    limits = limits or ImportLimits.from_settings()
    if kind.unit == "row":
        import pyarrow.parquet as pq

        number = 0
        for batch in pq.ParquetFile(path).iter_batches(batch_size=1000):
            for row in batch.to_pylist():
                number += 1
                yield number, number, row, False
        return
    import ijson

    with open(path, "rb") as raw:
        gzipped = raw.read(2) == GZIP_MAGIC
        raw.seek(0)
        stream = _Blocks(_gunzip(raw, limits) if gzipped else _plain(raw, limits))
        number = 0
        try:
            for value in ijson.items(stream, "item", use_float=True):
                number += 1
                yield number, raw.tell(), value, not stream.nul
        except ijson.JSONError as exc:
            raise Invalid(
                f"the JSON array breaks off after record {number}: {exc}"[:300], field="file"
            ) from None
