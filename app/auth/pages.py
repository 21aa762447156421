"""HTML routes: login and logout."""

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse

from app.auth import service
from app.auth.security import SESSION_COOKIE
from app.config import get_settings
from app.db import SessionDep
from app.deps import OptionalUser, cookie_signer, csrf_guard
from app.errors import TooManyRequests
from app.templating import render

router = APIRouter(tags=["pages"])


def _safe_next(value: str | None) -> str:
    return value if value and value.startswith("/") and not value.startswith("//") else "/"


@router.get("/login")
def login_page(request: Request, user: OptionalUser, next: str | None = None):  # type: ignore[no-untyped-def]
    if user is not None:
        return RedirectResponse(_safe_next(next), status_code=303)
    return render(request, "login.html", next=_safe_next(next), error=None, email="")


@router.post("/login", dependencies=[Depends(csrf_guard)])
def login(  # type: ignore[no-untyped-def]
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
    response = RedirectResponse(_safe_next(next), status_code=303)
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
