"""Back-pressure: a bounded number of requests in flight per process, and a quick 503 with
Retry-After instead of a long hang when the database has no connection free."""

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.types import ASGIApp, Receive, Scope, Send

from app.config import get_settings
from app.db_async import DatabaseBusy

RETRY_AFTER = "1"
"""Seconds a client is told to wait before it tries again."""


def _busy(message: str) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=503, headers={"Retry-After": RETRY_AFTER})


class InFlightLimit:
    """Answers 503 at once when this process already serves `max_in_flight` requests."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.in_flight = 0
        self.limit = get_settings().max_in_flight

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/static/"):
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            await _busy("the server is busy; try again in a moment")(scope, receive, send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


def _database_busy(_request: Request, _exc: Exception) -> Response:
    return _busy("the database is busy; try again in a moment")


def install(app: FastAPI) -> None:
    """Add the in-flight limit and the 503 answers for an exhausted connection pool."""
    app.add_middleware(InFlightLimit)
    app.add_exception_handler(DatabaseBusy, _database_busy)
    app.add_exception_handler(PoolTimeout, _database_busy)
