"""Public ids: what a labeler sees instead of row ids (assignments, prompts, responses,
annotations).

Row ids carry order: prompts imported before the gold items have smaller ids than the gold
items, a generation run writes one model's responses before the other's. A labeler who saw row
ids could tell a gold task from a real one, or which model wrote a response. Every id in the
labeler's API and pages is therefore a keyed pseudo-random permutation of the row id (a
six-round Feistel network over 48 bits, keyed from the secret key, one key per kind of id):
unique, stable, below 2**53 (exact in JavaScript), and in no order a labeler can use without the
key. Admin pages and the admin API keep row ids.
"""

import hashlib
from collections.abc import Callable
from enum import StrEnum
from functools import cache
from typing import Any

from app.config import get_settings
from app.http.bounds import MAX_ID, MAX_PUBLIC

BITS = 48
HALF = BITS // 2
MASK = (1 << HALF) - 1
ROUNDS = 6


class Kind(StrEnum):
    assignment = "assignment"
    prompt = "prompt"
    response = "response"
    annotation = "annotation"


@cache
def _keys(kind: Kind, secret: str) -> tuple[bytes, ...]:
    root = hashlib.blake2b(secret.encode(), digest_size=32, person=b"rlhf-public-id").digest()
    return tuple(
        hashlib.blake2b(f"{kind}:{i}".encode(), key=root, digest_size=16).digest()
        for i in range(ROUNDS)
    )


def _round(key: bytes, half: int) -> int:
    digest = hashlib.blake2b(half.to_bytes(4, "big"), key=key, digest_size=4).digest()
    return int.from_bytes(digest, "big") & MASK


def encode(kind: Kind, row_id: int) -> int:
    """The public id of a row id (0 < row id < 2**31)."""
    keys = _keys(kind, get_settings().secret_key)
    left, right = row_id >> HALF, row_id & MASK
    for key in keys:
        left, right = right, left ^ _round(key, right)
    return (left << HALF) | right


def decode(kind: Kind, public_id: int) -> int:
    """The row id of a public id; 0 (no row) for a value that is no public id."""
    if isinstance(public_id, bool) or not 0 <= public_id <= MAX_PUBLIC:
        return 0
    keys = _keys(kind, get_settings().secret_key)
    left, right = public_id >> HALF, public_id & MASK
    for key in reversed(keys):
        left, right = right ^ _round(key, left), left
    row_id = (left << HALF) | right
    return row_id if row_id <= MAX_ID else 0


def response_map(row_ids: list[int]) -> dict[int, int]:
    """Public id → row id of an assignment's responses."""
    return {encode(Kind.response, int(rid)): int(rid) for rid in row_ids}


# --- payloads ---------------------------------------------------------------------------------


def _ids(payload: dict[str, Any], flags: dict[str, Any], f: Callable[[int], int]) -> tuple:
    """The payload and flags with every response id passed through `f`: the ranking's ids,
    the keys of scores, flags and per-response answers (an answer that is an object)."""
    out = dict(payload)
    if "ranking" in payload:
        out["ranking"] = [
            [f(int(r)) for r in entry] if isinstance(entry, list) else f(int(entry))
            for entry in payload["ranking"]
        ]
    if "scores" in payload:
        out["scores"] = _keys_of(payload["scores"], f)
    if isinstance(payload.get("answers"), dict):
        out["answers"] = {
            name: {str(f(int(k))): v for k, v in value.items()}
            if isinstance(value, dict)
            else value
            for name, value in payload["answers"].items()
        }
    return out, _keys_of(flags, f)


def _keys_of(values: dict[str, Any], f: Callable[[int], int]) -> dict[str, Any]:
    return {str(f(int(k))): v for k, v in values.items()}


def to_rows(
    payload: dict[str, Any], flags: dict[str, Any], shown: dict[int, int]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A payload checked against the public ids `shown` (public → row) in row ids."""
    return _ids(payload, flags, shown.__getitem__)


def to_public(payload: dict[str, Any], flags: dict[str, Any]) -> tuple[dict, dict]:
    """A stored payload and its flags as the labeler who wrote it sees them."""
    return _ids(payload, flags, lambda rid: encode(Kind.response, rid))


def annotation(row: Any) -> dict[str, Any]:
    """An annotation row (the labeler's own) with public ids, for AnnotationOut."""
    values = dict(row._mapping) if hasattr(row, "_mapping") else _columns(row)
    payload, flags = to_public(values["payload"] or {}, values["flags"] or {})
    return values | {
        "id": encode(Kind.annotation, values["id"]),
        "prompt_id": encode(Kind.prompt, values["prompt_id"]),
        "assignment_id": _maybe(Kind.assignment, values["assignment_id"]),
        "supersedes_id": _maybe(Kind.annotation, values["supersedes_id"]),
        "payload": payload,
        "flags": flags,
    }


def assignment(row: Any) -> dict[str, Any]:
    """An assignment row (the labeler's own) with public ids, for AssignmentOut."""
    values = dict(row._mapping) if hasattr(row, "_mapping") else _columns(row)
    return values | {
        "id": encode(Kind.assignment, values["id"]),
        "prompt_id": encode(Kind.prompt, values["prompt_id"]),
        "response_ids": [encode(Kind.response, int(r)) for r in values["response_ids"] or []],
    }


def _maybe(kind: Kind, row_id: int | None) -> int | None:
    return None if row_id is None else encode(kind, row_id)


def _columns(obj: Any) -> dict[str, Any]:
    return {c.key: getattr(obj, c.key) for c in obj.__table__.columns}
