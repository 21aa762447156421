"""HTML routes: login and logout; for admins, users and API tokens."""

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse
from pydantic import ValidationError

from app.auth import service
from app.auth.models import ApiToken, User
from app.auth.schemas import TokenCreate, UserCreate, UserUpdate
from app.auth.security import SESSION_COOKIE
from app.config import get_settings
from app.db import SessionDep
from app.deps import AdminUser, OptionalUser, cookie_signer, csrf_guard
from app.errors import Conflict, DomainError, TooManyRequests, validation_messages
from app.http.bounds import Id, form_bool
from app.templating import render

router = APIRouter(tags=["pages"])


def _safe_next(value: str | None) -> str:
    """A local path to go to after login ('/' for anything else: other hosts, odd characters)."""
    if not value or len(value) > 2000 or not value.startswith("/") or value[1:2] in ("/", "\\"):
        return "/"
    return value if value.isprintable() else "/"


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
    email: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
):
    settings = get_settings()
    if not email.strip() or not password:
        return render(
            request,
            "login.html",
            422,
            next=_safe_next(next),
            error="Enter your email and password.",
            email=email[:320],
        )
    if len(email) > 320 or len(password) > 200 or "\x00" in email + password:
        email, password = "", ""  # cannot be an account: answered like a wrong password
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
    key = service.start_session(session=session, user=user, max_age=settings.session_max_age)
    cookie = cookie_signer().dump_session(user.id, user.session_epoch, key)
    session.commit()
    response = RedirectResponse(_landing(user, next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=settings.session_max_age,
        httponly=True,
        samesite="lax",
        secure=settings.secure_cookies or request.url.scheme == "https",
    )
    return response


@router.post("/logout", dependencies=[Depends(csrf_guard)])
def logout(request: Request, session: SessionDep) -> RedirectResponse:
    """Sign this browser out: its session ends on the server too (a copy of the cookie stops
    working), the user's other browsers stay signed in."""
    data = cookie_signer().load_session(request.cookies.get(SESSION_COOKIE, ""))
    key = data.get("k") if data is not None else None
    if isinstance(key, str):
        service.end_session(session=session, key=key)
        session.commit()
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


def _message(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(validation_messages(exc))
    return exc.message if isinstance(exc, DomainError) else str(exc)


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
    email: Annotated[str, Form()] = "",
    role: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
):
    try:
        body = UserCreate.model_validate({"email": email, "role": role, "password": password})
        user = service.create_user(
            session=session, email=body.email, role=body.role, password=body.password
        )
        session.commit()
    except (ValidationError, DomainError) as exc:
        session.rollback()
        return _users_page(
            request, session, 422, error=_message(exc), email=email[:320], role=role[:20]
        )
    return _back(f"Created {user.email} ({user.role}).")


@router.post("/admin/users/{user_id}/active")
def set_active(
    request: Request,
    user_id: Id,
    session: SessionDep,
    admin: AdminUser,
    active: Annotated[str, Form()] = "",
):
    user = service.get(session=session, user_id=user_id)
    on = form_bool(active)
    try:
        service.update_user(session=session, user=user, by=admin, is_active=on)
    except DomainError as exc:
        session.rollback()
        return _users_page(request, session, exc.status_code, error=exc.message)
    session.commit()
    return _back(f"{user.email} is {'active' if on else 'deactivated'}.")


@router.post("/admin/users/{user_id}/password")
def reset_password(
    request: Request,
    user_id: Id,
    session: SessionDep,
    _: AdminUser,
    password: Annotated[str, Form()] = "",
):
    user = service.get(session=session, user_id=user_id)
    try:
        body = UserUpdate.model_validate({"password": password})
        service.set_password(session=session, user=user, password=body.password or "")
        session.commit()
    except (ValidationError, DomainError) as exc:
        session.rollback()
        return _users_page(request, session, 422, error=f"{user.email}: {_message(exc)}")
    return _back(f"New password set for {user.email}; their other sessions ended.")


@router.post("/admin/users/{user_id}/tokens")
def issue_token(
    request: Request,
    user_id: Id,
    session: SessionDep,
    _: AdminUser,
    name: Annotated[str, Form()] = "",
):
    user = service.get(session=session, user_id=user_id)
    try:
        body = TokenCreate.model_validate({"name": name})
    except ValidationError as exc:
        return _users_page(request, session, 422, error=f"token name: {_message(exc)}")
    token, plain = service.create_token(session=session, user=user, name=body.name)
    session.commit()
    # The token is shown on this response only; it is never stored or put into a URL.
    return _users_page(request, session, new_token=(user, token, plain))


@router.post("/admin/tokens/{token_id}/revoke")
def revoke_token(request: Request, token_id: Id, session: SessionDep, _: AdminUser):
    try:
        token = service.revoke_token(session=session, token_id=token_id)
    except Conflict as exc:
        session.rollback()
        return _users_page(request, session, 409, error=exc.message)
    session.commit()
    return _back(f"Token {token.prefix}… revoked.")
