"""Request bodies: a maximum size (413) and JSON without NaN/Infinity (422).

The size is counted on the bytes as they stream in, not only from Content-Length, so a chunked
body cannot get past it. Import uploads have their own, larger limit. A JSON body is parsed once
here with NaN and Infinity refused (Python's parser accepts them; JSON does not), and handed on
unchanged.
"""

import json
import re
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import jsontext
from app.config import get_settings

UPLOAD_PATHS = re.compile(r"^(/api/v1/projects/[^/]+/items|/admin/projects/[^/]+/import)/?$")
BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes")


class NonFiniteNumber(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    raise NonFiniteNumber(name)


def _strict_loads(text: str | bytes) -> Any:
    """json.loads refusing NaN and Infinity (jsontext.loads's slow path here)."""
    return json.loads(text, parse_constant=_refuse_constant)


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return ""


def is_json(content_type: str) -> bool:
    """Whether a Content-Type names JSON (application/json or a +json type)."""
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


async def _answer(send: Send, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


PARSED_JSON = "rlhf.json"
"""Scope key: (body, value) of a JSON body this middleware read (values as json.loads gives)."""


class BodyLimitMiddleware:
    """413 for bodies over the configured size; 422 for JSON bodies with NaN or Infinity."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        settings = get_settings()
        upload = UPLOAD_PATHS.match(scope["path"]) is not None
        limit = settings.max_upload_bytes if upload else settings.max_body_bytes
        length = _header(scope, b"content-length")
        if length.isdigit() and int(length) > limit:
            await _answer(send, 413, {"detail": str(BodyTooLarge(limit).detail)})
            return

        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            if not upload and is_json(_header(scope, b"content-type")):
                replay = await self._checked_json(scope, counted, send)
                if replay is None:
                    return
                await self.app(scope, replay, watch)
            else:
                await self.app(scope, counted, watch)
        except BodyTooLarge as exc:
            if started:
                raise
            await _answer(send, 413, {"detail": exc.detail})

    async def _checked_json(self, scope: Scope, receive: Receive, send: Send) -> Receive | None:
        """Read the whole JSON body; answer 422 (None) if it has NaN/Infinity, else replay it."""
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        try:
            value = jsontext.loads(body, slow=_strict_loads)
        except NonFiniteNumber as exc:
            detail = {
                "type": "json_invalid",
                "loc": ["body"],
                "msg": f"JSON does not allow {exc}; send a finite number or null",
            }
            await _answer(send, 422, {"detail": [detail]})
            return None
        except (ValueError, RecursionError):
            pass  # not JSON at all: the route's own validation answers
        else:
            # Kept for a route that reads the body the same way (app/labeling/lane.py).
            scope[PARSED_JSON] = (body, value)
        return replay(body, receive)


def replay(body: bytes, receive: Receive) -> Receive:
    """`receive` for an app after the body was read: the body again first, then `receive`."""
    sent = False

    async def again() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return again
