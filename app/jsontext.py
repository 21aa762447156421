"""JSON text the fast way (orjson) with exactly the standard library's results.

`loads` gives the value `json.loads` gives: orjson's, unless orjson may have read it
differently (it reads integers beyond 64 bits as floats) or refused it, when the standard
parser (or the caller's) reads it again.

`row_line` gives the bytes of `json.dumps(row, ensure_ascii=False) + "\\n"` in UTF-8, byte for
byte. Export and snapshot files (and so snapshot content hashes) have always been written by
the standard encoder with its default separators (", " and ": "). orjson escapes strings
exactly as it does (every code point checked) but writes no spaces and spells some floats
differently, so strings go through orjson and the structure around them is written here;
anything unusual (a non-string key, a type that is not plain JSON) falls back to the standard
encoder. `template` encodes a row once with some strings left as holes (`Slot`), for rows of
one shape written many times: filled with `encoded` strings, it gives `row_line`'s bytes.
"""

import json
from collections.abc import Callable
from typing import Any

import orjson

HUGE = 2.0**63
"""A float at least this large may be an integer orjson read as a float."""


def has_huge_float(value: Any) -> bool:
    """Whether a decoded value holds a float of HUGE or more (anywhere inside)."""
    kind = type(value)
    if kind is float:
        return abs(value) >= HUGE
    if kind is dict:
        value = value.values()
    elif kind is not list:
        return False
    # A loop with the common leaves inline, not any(): this runs for every exported row.
    for item in value:
        kind = type(item)
        if kind is str or kind is int or item is None or kind is bool:
            continue
        if kind is float:
            if abs(item) >= HUGE:
                return True
        elif has_huge_float(item):
            return True
    return False


def loads(text: str | bytes, slow: Callable[[Any], Any] = json.loads) -> Any:
    """The value of JSON text, as `slow` (default json.loads) reads it."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return slow(text)
    # Walking the value costs less than scanning the text for a float first (0.36 µs for a
    # ranking's payload, against 1.1 µs for a regular expression's search).
    return slow(text) if has_huge_float(value) else value


_string = orjson.dumps


def dumps(value: Any) -> str:
    """Compact JSON text of a value to store (orjson; the standard encoder for what orjson
    refuses, e.g. integers beyond 64 bits)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value, ensure_ascii=False)


class _Unusual(Exception):
    """A value this encoder leaves to the standard one."""


def _float(value: float) -> bytes:
    if value != value:
        return b"NaN"
    if value in (float("inf"), float("-inf")):
        return b"Infinity" if value > 0 else b"-Infinity"
    return float.__repr__(value).encode()


def _encode(value: Any, out: list[bytes]) -> None:
    # Strings, the most common values, are encoded inline rather than by a recursive call.
    kind = type(value)
    if kind is str:
        out.append(_string(value))
    elif kind is dict:
        if not value:
            out.append(b"{}")
            return
        out.append(b"{")
        for key, item in value.items():
            if type(key) is not str:
                raise _Unusual
            out.append(_string(key))
            out.append(b": ")
            if type(item) is str:
                out.append(_string(item))
            else:
                _encode(item, out)
            out.append(b", ")
        out[-1] = b"}"
    elif kind is list or kind is tuple:
        if not value:
            out.append(b"[]")
            return
        out.append(b"[")
        for item in value:
            if type(item) is str:
                out.append(_string(item))
            else:
                _encode(item, out)
            out.append(b", ")
        out[-1] = b"]"
    elif value is None:
        out.append(b"null")
    elif kind is bool:
        out.append(b"true" if value else b"false")
    elif kind is int:
        out.append(int.__repr__(value).encode())
    elif kind is float:
        out.append(_float(value))
    elif kind is Slot:
        out.append(value)  # a hole, filled by `template`'s user
    else:
        raise _Unusual


class Slot(str):
    """A hole in a row, for `template`: a string to the row builders (a string prompt stays
    a string prompt), left open by the encoder."""

    hole: int

    def __new__(cls, hole: int) -> "Slot":
        made = super().__new__(cls, f"slot{hole}")
        made.hole = hole
        return made


def template(row: dict[str, Any]) -> tuple[bytes, tuple[int, ...]] | None:
    """The row's line as a bytes %-format with one `%b` per `Slot` and the slots' indexes in
    the order of their holes: `form % tuple(values[i] for i in order)`, each value a string
    `row_line` encodes as `encoded` does, gives `row_line` of the row with the strings in place.
    None when the row holds something `row_line` leaves to the standard encoder."""
    out: list[Any] = []
    try:
        _encode(row, out)
    except (_Unusual, orjson.JSONEncodeError):
        return None
    out.append(b"\n")
    form: list[bytes] = []
    order: list[int] = []
    for part in out:
        if type(part) is Slot:
            form.append(b"%b")
            order.append(part.hole)
        else:
            form.append(part.replace(b"%", b"%%"))
    return b"".join(form), tuple(order)


def encoded(text: str) -> bytes:
    """A string as `row_line` writes it (quoted and escaped), to fill a `template`'s hole.
    A copy of orjson's bytes, which keep orjson's whole 4 KiB output buffer: an export holding
    a batch's 20k encoded texts used 80 MiB more than the texts."""
    return bytes(memoryview(_string(text)))


def row_line(row: dict[str, Any]) -> bytes:
    """The row as one UTF-8 JSON line, exactly as the standard encoder writes it."""
    out: list[bytes] = []
    try:
        _encode(row, out)
    except (_Unusual, orjson.JSONEncodeError):
        return (json.dumps(row, ensure_ascii=False) + "\n").encode()
    out.append(b"\n")
    return b"".join(out)
