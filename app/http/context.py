"""Every response gets a request id and the security headers; anything unexpected a logged 500.

The outermost middleware of the app. A request id (`X-Request-ID`) names each request in the
log and in the answer, so a user's report of a 500 can be found. An exception that escapes the
app is logged with the request id and answered with a JSON 500 that carries it (the traceback
stays in the log). Each request ends with one access line (`rlhf.access`: method, path, status,
milliseconds, request id) unless RLHF_ACCESS_LOG=0; uvicorn's own access log stays off.
"""

import json
import logging
import os
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.config import get_settings
from app.logs import access

log = logging.getLogger("rlhf.http")

REQUEST_ID_HEADER = "X-Request-ID"

# No inline scripts anywhere: page scripts live under /static/js. Inline style attributes stay
# allowed (progress meters set their width).
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
)


_HEADERS = (
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
)
_HTTPS_HEADERS = (*_HEADERS, (b"strict-transport-security", b"max-age=31536000"))


def security_headers(scheme: str) -> tuple[tuple[bytes, bytes], ...]:
    """The headers every response carries (built once)."""
    return _HTTPS_HEADERS if scheme == "https" else _HEADERS


def is_https(scope: Scope) -> bool:
    """Whether the request arrived over HTTPS (as the server, or a trusted proxy, reports it)."""
    return scope.get("scheme") in ("https", "wss")


class RequestContextMiddleware:
    """Request id, security headers, the access log line, and a logged JSON 500 for anything
    unexpected."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.access_log = get_settings().access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        request_id = os.urandom(16).hex()  # as uuid4().hex, without building a UUID
        scope.setdefault("state", {})["request_id"] = request_id
        extra = [
            (REQUEST_ID_HEADER.lower().encode(), request_id.encode()),
            *security_headers(scope.get("scheme", "http")),
        ]
        status = 0  # none yet: the client left, or the app failed, before an answer started

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                present = {name.lower() for name, _ in message.get("headers", [])}
                headers = list(message.get("headers", []))
                headers += [(name, value) for name, value in extra if name not in present]
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            log.exception(
                "unexpected error in %s %s (request id %s)",
                scope.get("method"),
                scope.get("path"),
                request_id,
            )
            if status:
                raise  # the answer is half sent: the server drops the connection
            body = json.dumps(
                {
                    "detail": "internal server error; the log has the details under this id",
                    "request_id": request_id,
                }
            ).encode()
            await send_with_headers(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
        finally:
            if self.access_log:
                access.info(
                    "%s %s %s %.1fms id=%s",
                    scope.get("method"),
                    scope.get("path"),
                    status or "-",
                    (time.perf_counter() - began) * 1000,
                    request_id,
                )
