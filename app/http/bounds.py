"""Bounded input types shared by every route and request schema.

Ids fit the id columns (INTEGER: signed 32-bit on PostgreSQL), offsets a signed 64-bit integer,
page sizes are bounded, and text has a length limit and no NUL character (PostgreSQL cannot
store one). Each is an `Annotated` alias, so the bound
shows in the OpenAPI description and a violation is a 422 naming the field.
"""

import json
import math
from typing import Annotated, Any

from annotated_types import Ge, Le
from pydantic import AfterValidator, StringConstraints

MAX_INT64 = 2**63 - 1
MAX_ID = 2**31 - 1
MAX_PUBLIC = 2**48 - 1
"""The largest id a labeler sees (`app.labeling.public`)."""
"""Ids, steps and other keys are INTEGER columns (PostgreSQL's integer is 32-bit)."""
MAX_PAGE = 1000
"""Largest page a list route returns."""


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain the NUL character")
    return value


def _finite_json(value: Any) -> Any:
    """Free-form JSON without NaN/Infinity and without NUL in any string or key."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("NaN and Infinity are not JSON numbers")
    if isinstance(value, str):
        return _no_nul(value)
    if isinstance(value, dict):
        for key, item in value.items():
            _finite_json(key)
            _finite_json(item)
    elif isinstance(value, list):
        for item in value:
            _finite_json(item)
    return value


Id = Annotated[int, Ge(1), Le(MAX_ID)]
"""A database id (path, query or body)."""
PublicId = Annotated[int, Ge(0), Le(MAX_PUBLIC)]
"""An id as a labeler sees it (`app.labeling.public`): assignments on the labeling routes."""
AfterId = Annotated[int, Ge(0), Le(MAX_ID)]
"""A keyset position: the id (or step) to continue after."""
Limit = Annotated[int, Ge(1), Le(MAX_PAGE)]
"""A page size."""
Offset = Annotated[int, Ge(0), Le(MAX_INT64)]
"""Rows to skip."""
Seed = Annotated[int, Ge(0), Le(2**32 - 1)]
"""A random seed."""
MAX_PAGE_NUMBER = 10_000_000
"""Largest page number of a paged HTML list."""


def text(max_length: int, min_length: int = 0) -> Any:
    """A string of at most `max_length` characters without NUL (optionally a minimum)."""
    return Annotated[
        str,
        StringConstraints(min_length=min_length, max_length=max_length),
        AfterValidator(_no_nul),
    ]


Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(_no_nul),
]
"""A name (of a project, a model): trimmed, not blank, at most 200 characters, no NUL."""


Keyword = text(40)
"""A short keyword such as a kind, a status or a file name (checked by the route)."""
SearchText = text(1000)
"""A search or filter string (may be empty)."""
ModelRefQuery = text(1000)
"""A model reference passed in a query string (may be empty)."""

Json = Annotated[Any, AfterValidator(_finite_json)]
"""Free-form JSON value: no NaN/Infinity, no NUL."""
JsonObject = Annotated[dict[str, Any], AfterValidator(_finite_json)]
"""Free-form JSON object: no NaN/Infinity, no NUL."""

Email = text(320, 3)
Password = text(200, 8)
Reason = text(2000)
Instructions = text(100_000)
"""Project instructions (markdown)."""
ModelRef = text(1000, 1)
"""A registered model's id or name, a local path, or a hub id."""


def loads_object(value: str, what: str) -> dict[str, Any]:
    """Parse a JSON object typed into a form; ValueError names `what` and the problem."""

    def refuse(constant: str) -> Any:
        raise ValueError(f"{what}: {constant} is not a JSON number")

    try:
        parsed = json.loads(value, parse_constant=refuse)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{what}: invalid JSON: {exc.msg} at column {exc.colno}") from None
    if not isinstance(parsed, dict):
        raise ValueError(f"{what} must be a JSON object")
    try:
        return _finite_json(parsed)
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None


def form_bool(value: str) -> bool:
    """A checkbox or a boolean form field: checked/true/on/1/yes is True, anything else False."""
    return value.strip().lower() in {"1", "true", "on", "yes", "checked"}
