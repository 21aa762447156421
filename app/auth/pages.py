"""HTML routes: login and logout; for admins, users and API tokens."""

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse

from app.auth import service
from app.auth.models import ApiToken, User
from app.auth.security import SESSION_COOKIE
from app.config import get_settings
from app.db import SessionDep
from app.deps import AdminUser, OptionalUser, cookie_signer, csrf_guard
from app.errors import DomainError, TooManyRequests
from app.templating import render

router = APIRouter(tags=["pages"])


def _safe_next(value: str | None) -> str:
    return value if value and value.startswith("/") and not value.startswith("//") else "/"


def _landing(user: User, next: str | None) -> str:
    """Where a sign-in leads: the page asked for, else the Dashboard for an admin."""
    target = _safe_next(next)
    return "/admin" if target == "/" and user.is_admin else target


@router.get("/login")
def login_page(request: Request, user: OptionalUser, next: str | None = None):
    if user is not None:
        return RedirectResponse(_landing(user, next), status_code=303)
    return render(request, "login.html", next=_safe_next(next), error=None, email="")


@router.post("/login", dependencies=[Depends(csrf_guard)])
def login(
    request: Request,
    session: SessionDep,
    email: Annotated[str, Form()],
    password: Annotated[str, Form()],
    next: Annotated[str, Form()] = "/",
):
    settings = get_settings()
    try:
        user = service.authenticate(
            session=session,
            email=email,
            password=password,
            max_failures=settings.login_max_failures,
            lock_seconds=settings.login_lock_seconds,
        )
    except TooManyRequests as exc:
        return render(
            request, "login.html", 429, next=_safe_next(next), error=exc.message, email=email
        )
    if user is None:
        return render(
            request,
            "login.html",
            401,
            next=_safe_next(next),
            error="Wrong email or password.",
            email=email,
        )
    response = RedirectResponse(_landing(user, next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        cookie_signer().dump_session(user.id, user.session_epoch),
        max_age=settings.session_max_age,
        httponly=True,
        samesite="lax",
        secure=settings.secure_cookies,
    )
    return response


@router.post("/logout", dependencies=[Depends(csrf_guard)])
def logout() -> RedirectResponse:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


# Admin pages: users and API tokens.


def _users_page(request: Request, session: SessionDep, status_code: int = 200, **context: Any):
    context.setdefault("error", None)
    context.setdefault("notice", request.query_params.get("notice"))
    tokens: dict[int, list[ApiToken]] = {}
    for token in service.list_tokens(session=session):
        tokens.setdefault(token.user_id, []).append(token)
    return render(
        request,
        "admin/users.html",
        status_code,
        users=service.list_users(session=session),
        tokens=tokens,
        **context,
    )


def _back(notice: str) -> RedirectResponse:
    return RedirectResponse(f"/admin/users?{urlencode({'notice': notice})}", status_code=303)


@router.get("/admin/users")
def users_page(request: Request, session: SessionDep, _: AdminUser):
    return _users_page(request, session)


@router.post("/admin/users")
def create_user(
    request: Request,
    session: SessionDep,
    _: AdminUser,
    email: Annotated[str, Form()],
    role: Annotated[str, Form()],
    password: Annotated[str, Form()],
):
    try:
        user = service.create_user(session=session, email=email, role=role, password=password)
        session.commit()
    except DomainError as exc:
        session.rollback()
        return _users_page(request, session, 422, error=exc.message, email=email, role=role)
    return _back(f"Created {user.email} ({user.role}).")


@router.post("/admin/users/{user_id}/active")
def set_active(
    request: Request,
    user_id: int,
    session: SessionDep,
    admin: AdminUser,
    active: Annotated[bool, Form()],
):
    user = service.get(session=session, user_id=user_id)
    try:
        service.update_user(session=session, user=user, by=admin, is_active=active)
    except DomainError as exc:
        return _users_page(request, session, exc.status_code, error=exc.message)
    session.commit()
    return _back(f"{user.email} is {'active' if active else 'deactivated'}.")


@router.post("/admin/users/{user_id}/password")
def reset_password(
    request: Request,
    user_id: int,
    session: SessionDep,
    _: AdminUser,
    password: Annotated[str, Form()],
):
    user = service.get(session=session, user_id=user_id)
    try:
        service.set_password(session=session, user=user, password=password)
        session.commit()
    except DomainError as exc:
        session.rollback()
        return _users_page(request, session, 422, error=f"{user.email}: {exc.message}")
    return _back(f"New password set for {user.email}; their other sessions ended.")


@router.post("/admin/users/{user_id}/tokens")
def issue_token(
    request: Request,
    user_id: int,
    session: SessionDep,
    _: AdminUser,
    name: Annotated[str, Form(max_length=100)] = "",
):
    user = service.get(session=session, user_id=user_id)
    token, plain = service.create_token(session=session, user=user, name=name)
    session.commit()
    # The token is shown on this response only; it is never stored or put into a URL.
    return _users_page(request, session, new_token=(user, token, plain))


@router.post("/admin/tokens/{token_id}/revoke")
def revoke_token(token_id: int, session: SessionDep, _: AdminUser) -> RedirectResponse:
    token = service.revoke_token(session=session, token_id=token_id)
    session.commit()
    return _back(f"Token {token.prefix}… revoked.")
