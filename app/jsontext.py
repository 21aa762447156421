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
encoder.
"""

import json
import re
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


_MAY_HOLD_FLOAT = re.compile(r"[.eE]|\d{19}")
"""Text without a fraction, an exponent or 19 digits in a row holds no float (a ranking's
payload, say): no need to walk the value for a huge one."""


def loads(text: str | bytes, slow: Callable[[Any], Any] = json.loads) -> Any:
    """The value of JSON text, as `slow` (default json.loads) reads it."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return slow(text)
    if isinstance(text, str) and _MAY_HOLD_FLOAT.search(text) is None:
        return value
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
    else:
        raise _Unusual


def row_line(row: dict[str, Any]) -> bytes:
    """The row as one UTF-8 JSON line, exactly as the standard encoder writes it."""
    out: list[bytes] = []
    try:
        _encode(row, out)
    except (_Unusual, orjson.JSONEncodeError):
        return (json.dumps(row, ensure_ascii=False) + "\n").encode()
    out.append(b"\n")
    return b"".join(out)
