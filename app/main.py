"""create_app(): routers, middleware, templates, static files."""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import backpressure, http, logs
from app.aggregation import api as aggregation_api
from app.aggregation import pages as aggregation_pages
from app.auth import api as auth_api
from app.auth import pages as auth_pages
from app.auth.security import CSRF_COOKIE, new_csrf_token
from app.config import get_settings
from app.datasets import api as datasets_api
from app.datasets import pages as datasets_pages
from app.db import configure_threads
from app.db_async import dispose_async_engines
from app.deps import LoginRequired, cookie_signer
from app.errors import DomainError
from app.http.context import is_https
from app.http.errors import is_page
from app.labeling import api as labeling_api
from app.labeling import lane
from app.labeling import pages as labeling_pages
from app.labeling.hot import warm_up
from app.memory import Memory
from app.projects import api as projects_api
from app.projects import pages as projects_pages
from app.projects.importer import ImportFailed
from app.prompts import api as prompts_api
from app.prompts import pages as prompts_pages
from app.quality import api as quality_api
from app.quality import pages as quality_pages
from app.runs import api as runs_api
from app.runs import judge_pages, round_pages
from app.runs import pages as runs_pages
from app.templating import ROOT, render, templates


class CsrfCookieMiddleware:
    """Gives every browser a signed CSRF token cookie (pages only; the API skips this)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(("/api/", "/static/")):
            await self.app(scope, receive, send)
            return
        signer = cookie_signer()
        cookies = _cookies(scope)
        loaded = signer.load_csrf(cookies.get(CSRF_COOKIE))
        fresh = loaded is None
        token = new_csrf_token() if loaded is None else loaded
        scope.setdefault("state", {})["csrf_token"] = token

        async def send_with_cookie(message: Message) -> None:
            if fresh and message["type"] == "http.response.start":
                settings = get_settings()
                value = f"{CSRF_COOKIE}={signer.dump_csrf(token)}; Path=/; HttpOnly; SameSite=Lax"
                if settings.secure_cookies or is_https(scope):
                    value += "; Secure"
                message.setdefault("headers", []).append((b"set-cookie", value.encode()))
            await send(message)

        await self.app(scope, receive, send_with_cookie)


def _cookies(scope: Scope) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in scope.get("headers", []):
        if name == b"cookie":
            for part in value.decode("latin-1").split(";"):
                key, _, val = part.strip().partition("=")
                out[key] = val
    return out


def _error_page(request: Request, status_code: int, message: str) -> Response:
    return render(request, "error.html", status_code, code=status_code, message=message)


def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if is_page(request):
        return _error_page(request, exc.status_code, str(exc.detail))
    return JSONResponse(
        {"detail": exc.detail}, status_code=exc.status_code, headers=getattr(exc, "headers", None)
    )


def _domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DomainError)
    if is_page(request):
        return _error_page(request, exc.status_code, exc.message)
    body: dict[str, Any] = {"detail": exc.message}
    if exc.field:
        body["field"] = exc.field
    if isinstance(exc, ImportFailed):
        body["errors"] = [e.model_dump() for e in exc.errors]
        body["error_count"] = exc.error_count
        if exc.unit != "line":
            body["unit"] = exc.unit
    return JSONResponse(body, status_code=exc.status_code)


def _login_redirect(request: Request, exc: Exception) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={target}", status_code=303)


def _favicon() -> FileResponse:
    """The icon browsers fetch from /favicon.ico on their own (pages link the SVG one)."""
    return FileResponse(
        ROOT / "static" / "favicon.ico",
        media_type="image/x-icon",
        headers={"Cache-Control": "public, max-age=86400"},
    )


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    """Size the worker threads to the pool and warm the hot path; close the engine at the end.
    The log says when this web process starts serving and when it stops."""
    await configure_threads()
    await warm_up()
    logs.server.info("web process %d started (rlhf-studio %s)", os.getpid(), logs.version())
    yield
    await dispose_async_engines()
    logs.server.info("web process %d stopped", os.getpid())


def create_app() -> FastAPI:
    """The web application."""
    get_settings()  # refuse to start on a placeholder secret outside dev mode
    logs.configure()
    app = FastAPI(
        title="rlhf-studio",
        version=logs.version(),
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
        # The app sets up no OpenTelemetry; FastAPI's check for it cost ~3% of a hot request.
        telemetry={"tracing": False, "metrics": False},
    )
    app.state.memory = Memory()
    app.add_middleware(CsrfCookieMiddleware)
    http.install(app)
    backpressure.install(app)
    http.wrap(app)  # last, so outermost: every answer, early ones too, has the request id
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(LoginRequired, _login_redirect)
    app.mount("/static", StaticFiles(directory=ROOT / "static"), name="static")
    app.add_api_route("/favicon.ico", _favicon, include_in_schema=False)
    for module in (
        labeling_api,  # first: the labeling hot path is matched before every other route
        auth_api,
        projects_api,
        prompts_api,
        aggregation_api,
        datasets_api,
        auth_pages,
        labeling_pages,
        projects_pages,
        prompts_pages,
        aggregation_pages,
        datasets_pages,
        quality_api,
        quality_pages,
        runs_api,
        round_pages,  # before runs_pages: /admin/models/leaderboard is not a model id
        judge_pages,  # before runs_pages: /admin/runs/judge is not a run id
        runs_pages,
    ):
        app.include_router(module.router)
    # The hot path's routes without FastAPI's per-request machinery (refuses to start if one
    # of them declares what the lane cannot run).
    lane.install(app.router, labeling_api.router.routes, labeling_api.HOT)
    # The dashboard (projects) tells when no training worker is alive, without importing runs.
    templates.env.globals["workers_running"] = runs_pages.workers_running
    return app
