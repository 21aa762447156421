"""Validation errors as answers that always serialise, name the field and stay small."""

import math
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

MAX_ECHO = 200
"""Characters of the offending input echoed back in a 422."""


def json_safe(value: Any) -> Any:
    """`value` as plain JSON: NaN/Infinity as strings, long strings cut, objects as text."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return value if len(value) <= MAX_ECHO else value[:MAX_ECHO] + "…"
    if isinstance(value, bytes):
        return json_safe(value.decode("utf-8", "replace"))
    if isinstance(value, dict):
        return {str(k)[:MAX_ECHO]: json_safe(v) for k, v in list(value.items())[:50]}
    if isinstance(value, list | tuple | set):
        return [json_safe(v) for v in list(value)[:50]]
    return json_safe(str(value))


def is_page(request: Request) -> bool:
    """Whether the answer should be an HTML page (a browser asking for a page, not the API)."""
    return not request.url.path.startswith("/api/") and "text/html" in request.headers.get(
        "accept", ""
    )


def field_messages(errors: list[dict[str, Any]]) -> list[str]:
    """'field: message' lines (the location without 'body'/'query'/… in front)."""
    lines = []
    for error in errors:
        loc = [str(part) for part in error.get("loc", ())]
        where = ".".join(loc[1:] if len(loc) > 1 else loc) or "request"
        lines.append(f"{where}: {str(error.get('msg', 'invalid')).removeprefix('Value error, ')}")
    return lines


def request_validation_error(request: Request, exc: Exception) -> Response:
    """422 with the errors (pages: the error page listing them)."""
    assert isinstance(exc, RequestValidationError)
    from app.templating import render

    errors = list(exc.errors())
    if is_page(request):
        message = "; ".join(field_messages(errors))
        return render(request, "error.html", 422, code=422, message=message)
    detail = [
        {
            key: json_safe(value)
            for key, value in error.items()
            if key in ("type", "loc", "msg", "input", "ctx")
        }
        for error in errors
    ]
    return JSONResponse({"detail": detail}, status_code=422)
