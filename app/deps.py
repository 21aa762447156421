"""Request dependencies as Annotated aliases: CurrentUser, AdminUser, LabelerUser."""

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from app.auth import lookup
from app.auth.models import User
from app.auth.security import (
    CSRF_COOKIE,
    CSRF_FIELD,
    CSRF_HEADER,
    SESSION_COOKIE,
    CookieSigner,
)
from app.config import get_settings

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


class LoginRequired(Exception):
    """Raised on HTML pages without a session; the app answers with a redirect to /login."""


def cookie_signer() -> CookieSigner:
    settings = get_settings()
    return CookieSigner(settings.secret_key, settings.session_max_age)


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def csrf_token_of(request: Request) -> str | None:
    """The CSRF token bound to this browser (set by the middleware in app.main)."""
    return getattr(request.state, "csrf_token", None)


async def csrf_guard(request: Request) -> None:
    """State-changing requests authenticated by cookie must echo the CSRF token."""
    if request.method in SAFE_METHODS or _bearer(request) is not None:
        return
    expected = cookie_signer().load_csrf(request.cookies.get(CSRF_COOKIE))
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if not expected or not sent or not secrets.compare_digest(expected, sent):
        raise HTTPException(403, "CSRF token missing or wrong; reload the page and try again")


async def session_csrf_guard(request: Request) -> None:
    """The CSRF check for requests that a session cookie authenticates."""
    if SESSION_COOKIE in request.cookies:
        await csrf_guard(request)


async def _user_from_request(request: Request) -> User | None:
    memory = request.app.state.memory
    token = _bearer(request)
    if token is not None:
        return await lookup.user_for_token(memory, token)
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    data = cookie_signer().load_session(cookie)
    if data is None:
        return None
    return await lookup.user_for_session(memory, data)


async def optional_user(request: Request) -> User | None:
    """The signed-in user, or None."""
    return await _user_from_request(request)


async def current_user(request: Request) -> User:
    """The signed-in user; 401 for the API, a redirect to /login for pages. A request that a
    session cookie authenticates passes the CSRF check first (`session_csrf_guard`).

    Resolved on the asyncio engine (kept briefly in the app's memory): no request holds a
    pooled connection while it waits for a thread, and routes get a detached User (identity
    columns only).
    One dependency with no sub-dependencies: the labeling hot path resolves it per request.
    """
    await session_csrf_guard(request)
    user = await _user_from_request(request)
    if user is None:
        if request.url.path.startswith("/api/"):
            raise HTTPException(
                401,
                "sign in or send Authorization: Bearer <token>",
                headers={"WWW-Authenticate": "Bearer"},
            )
        raise LoginRequired()
    request.state.user = user
    return user


CurrentUser = Annotated[User, Depends(current_user)]
OptionalUser = Annotated[User | None, Depends(optional_user)]


async def admin_user(user: CurrentUser) -> User:
    if not user.is_admin:
        raise HTTPException(403, "admins only")
    return user


AdminUser = Annotated[User, Depends(admin_user)]
LabelerUser = CurrentUser
"""Labelers label; admins may label too (to try a project out)."""
