"""JSON routes: who am I, users and API tokens (admins manage; everyone sees their own)."""

from fastapi import APIRouter

from app.auth import service
from app.auth.schemas import NewToken, TokenCreate, TokenOut, UserCreate, UserOut, UserUpdate
from app.db import SessionDep
from app.deps import AdminUser, CurrentUser
from app.http.bounds import Id

router = APIRouter(prefix="/api/v1", tags=["users"])


@router.get("/me", response_model=UserOut)
def me(user: CurrentUser) -> object:
    return user


@router.get("/users", response_model=list[UserOut])
def list_users(session: SessionDep, _: AdminUser) -> object:
    return service.list_users(session=session)


@router.post("/users", response_model=UserOut, status_code=201)
def create_user(body: UserCreate, session: SessionDep, _: AdminUser) -> object:
    user = service.create_user(
        session=session, email=body.email, role=body.role, password=body.password
    )
    session.commit()
    return user


@router.patch("/users/{user_id}", response_model=UserOut)
def update_user(user_id: Id, body: UserUpdate, session: SessionDep, admin: AdminUser) -> object:
    user = service.update_user(
        session=session,
        user=service.get(session=session, user_id=user_id),
        by=admin,
        is_active=body.is_active,
        role=body.role,
        password=body.password,
    )
    session.commit()
    return user


@router.get("/tokens", response_model=list[TokenOut])
def list_tokens(session: SessionDep, user: CurrentUser) -> object:
    return service.list_tokens(session=session, user_id=None if user.is_admin else user.id)


@router.post("/users/{user_id}/tokens", response_model=NewToken, status_code=201)
def create_token(user_id: Id, body: TokenCreate, session: SessionDep, _: AdminUser) -> object:
    user = service.get(session=session, user_id=user_id)
    token, plain = service.create_token(session=session, user=user, name=body.name)
    session.commit()
    return NewToken(**TokenOut.model_validate(token).model_dump(), token=plain)


@router.delete("/tokens/{token_id}", response_model=TokenOut)
def revoke_token(token_id: Id, session: SessionDep, _: AdminUser, force: bool = False) -> object:
    """Revoke a token; 409 if no admin could sign in afterwards (unless `force`)."""
    token = service.revoke_token(session=session, token_id=token_id, force=force)
    session.commit()
    return token
