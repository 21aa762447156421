"""Users, logins and API tokens.

Every change that ends or narrows someone's access (password, active flag, role, a revoked
token, an ended session) drops the identities the web process keeps when its transaction
commits (`lookup.forget_after_commit`); the caller commits as usual."""

from collections.abc import Collection
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.auth import lookup
from app.auth.models import ApiToken, LoginSession, Role, User
from app.auth.security import (
    hash_password,
    hash_token,
    new_api_token,
    new_session_key,
    verify_password,
)
from app.base import utcnow
from app.errors import Conflict, Invalid, NotFound, TooManyRequests


def normalize_email(email: str) -> str:
    email = email.strip().lower()
    if "@" not in email or len(email) > 320:
        raise Invalid(f"not an email address: {email!r}", field="email")
    return email


def create_user(*, session: Session, email: str, role: str, password: str | None = None) -> User:
    """Create a user (the caller commits); the email must be new."""
    email = normalize_email(email)
    if role not in Role.__members__:
        raise Invalid(f"role must be admin or labeler, not {role!r}", field="role")
    if password is not None and len(password) < 8:
        raise Invalid("password must have at least 8 characters", field="password")
    if session.scalar(select(User.id).where(User.email == email)) is not None:
        raise Conflict(f"a user with email {email} exists already", field="email")
    user = User(email=email, role=role, password_hash=hash_password(password) if password else None)
    session.add(user)
    session.flush()
    return user


def get(*, session: Session, user_id: int) -> User:
    """The user with this id, or NotFound."""
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"no user {user_id}")
    return user


def get_by_email(*, session: Session, email: str) -> User | None:
    """The user with this email, if any."""
    return session.scalar(select(User).where(User.email == email.strip().lower()))


def get_by_ref(*, session: Session, ref: str) -> User:
    """A user by id or by email (what the CLI's USER argument takes), or NotFound."""
    user = get_by_email(session=session, email=ref)
    if user is None and ref.isdigit():
        user = session.get(User, int(ref))
    if user is None:
        raise NotFound(f"no user with id or email {ref!r}", field="user")
    return user


def source_annotators(
    *, session: Session, names: Collection[str], source: str | None = None
) -> tuple[dict[str, int], int]:
    """The ids of the source annotators named `tool:id` (`labelstudio:7`, `arena:<judge>`),
    and how many were created (the caller commits) as labelers who cannot sign in: no password,
    no token, and a name no email address can take (it has no @). `source`: what users.source
    says of them (default: the tool, the part before the colon; "ai" for a judge)."""
    wanted = sorted(set(names))
    found: dict[str, int] = {}
    for start in range(0, len(wanted), 500):
        part = wanted[start : start + 500]
        rows = session.execute(select(User.email, User.id, User.source).where(User.email.in_(part)))
        for email, user_id, source in rows:
            if source is None:
                raise Conflict(f"{email} is a person's account, not a source annotator")
            found[email] = user_id
    existed = len(found)
    for name in wanted:
        if name not in found:
            tool, _, ref = name.partition(":")
            if not tool or not ref or "@" in name or len(name) > 320:
                raise Invalid(f"not a source annotator's name (tool:id): {name!r}", field="user")
            user = User(
                email=name, role=Role.labeler, password_hash=None, source=(source or tool)[:20]
            )
            session.add(user)
            session.flush()
            found[name] = user.id
    return found, len(found) - existed


def _refuse_source(user: User) -> None:
    if user.source is not None:
        raise Invalid(
            f"{user.email} is a source annotator (labels imported from {user.source}): it "
            "cannot sign in, so it takes no password, token or role",
            field="user",
        )


def list_users(*, session: Session) -> list[User]:
    """Every user, oldest first."""
    return list(session.scalars(select(User).order_by(User.id)))


def authenticate(
    *, session: Session, email: str, password: str, max_failures: int, lock_seconds: int
) -> User | None:
    """Check a login; count failures (committed) and lock the account after too many in a row."""
    user = get_by_email(session=session, email=email)
    now = utcnow()
    if user is None or user.source is not None:
        verify_password(None, password)
        return None
    if user.locked_until is not None and user.locked_until > now:
        wait = int((user.locked_until - now).total_seconds()) + 1
        raise TooManyRequests(f"too many failed logins; try again in {wait} s")
    if not user.is_active or not verify_password(user.password_hash, password):
        user.failed_logins += 1
        if user.failed_logins >= max_failures:
            user.locked_until = now + timedelta(seconds=lock_seconds)
            user.failed_logins = 0
        session.commit()
        return None
    if user.failed_logins or user.locked_until:
        user.failed_logins = 0
        user.locked_until = None
        session.commit()
    return user


def start_session(*, session: Session, user: User, max_age: int) -> str:
    """A new sign-in for `user` (the caller commits); returns the key its cookie carries. The
    user's sign-ins older than `max_age` seconds (their cookies expired) are deleted."""
    expired = utcnow() - timedelta(seconds=max_age)
    session.execute(
        delete(LoginSession).where(
            LoginSession.user_id == user.id, LoginSession.created_at < expired
        )
    )
    key = new_session_key()
    session.add(LoginSession(user_id=user.id, key_hash=hash_token(key)))
    session.flush()
    return key


def end_session(*, session: Session, key: str) -> None:
    """Sign one browser out: its cookie stops working, the user's other sign-ins go on."""
    session.execute(delete(LoginSession).where(LoginSession.key_hash == hash_token(key)))
    lookup.forget_after_commit(session)


def _end_sessions(session: Session, user: User) -> None:
    """End every sign-in of `user` (the epoch also refuses a cookie of a login that raced)."""
    user.session_epoch += 1
    session.execute(delete(LoginSession).where(LoginSession.user_id == user.id))


def set_password(*, session: Session, user: User, password: str) -> None:
    """Set a new password and end all the user's sessions (never a source annotator's)."""
    _refuse_source(user)
    if len(password) < 8:
        raise Invalid("password must have at least 8 characters", field="password")
    user.password_hash = hash_password(password)
    _end_sessions(session, user)
    user.locked_until = None
    user.failed_logins = 0
    lookup.forget_after_commit(session)


def set_active(*, session: Session, user: User, active: bool) -> None:
    """Activate or deactivate a user; deactivation ends their sessions and tokens' use."""
    if not active:
        _keep_an_admin(session=session, user=user)
    user.is_active = active
    if not active:
        _end_sessions(session, user)
    lookup.forget_after_commit(session)


def update_user(
    *,
    session: Session,
    user: User,
    by: User,
    is_active: bool | None = None,
    role: str | None = None,
    password: str | None = None,
) -> User:
    """Change a user's active flag, role or password; nobody deactivates or demotes themselves."""
    if user.id == by.id and (is_active is False or (role is not None and role != user.role)):
        raise Conflict("you cannot deactivate or demote yourself")
    if is_active is not None:
        set_active(session=session, user=user, active=is_active)
    if role is not None:
        set_role(session=session, user=user, role=role)
    if password is not None:
        set_password(session=session, user=user, password=password)
    return user


def set_role(*, session: Session, user: User, role: str) -> None:
    """Make a user an admin or a labeler; the last active admin stays an admin."""
    if role not in Role.__members__:
        raise Invalid(f"role must be admin or labeler, not {role!r}", field="role")
    if role != user.role:
        _refuse_source(user)
    if role != Role.admin:
        _keep_an_admin(session=session, user=user)
    user.role = role
    lookup.forget_after_commit(session)


def _keep_an_admin(*, session: Session, user: User) -> None:
    """Conflict if `user` is the last active admin (who would lose the role or the account)."""
    if not (user.is_admin and user.is_active):
        return
    # Lock the active admins' rows (PostgreSQL) so two admins cannot demote each other at once;
    # on SQLite the write transaction already serialises this.
    others = session.scalars(
        select(User.id)
        .where(User.role == Role.admin, User.is_active.is_(True), User.id != user.id)
        .with_for_update()
    ).all()
    if not others:
        raise Conflict(
            f"{user.email} is the last active admin; make another user an admin first",
            field="role",
        )


def create_token(*, session: Session, user: User, name: str = "") -> tuple[ApiToken, str]:
    """A new API token for `user`; the plain token is returned once and never stored. A source
    annotator gets none."""
    _refuse_source(user)
    plain = new_api_token()
    token = ApiToken(user_id=user.id, name=name, token_hash=hash_token(plain), prefix=plain[:9])
    session.add(token)
    session.flush()
    return token, plain


def list_tokens(*, session: Session, user_id: int | None = None) -> list[ApiToken]:
    """API tokens, of one user or of all."""
    query = select(ApiToken).order_by(ApiToken.id)
    if user_id is not None:
        query = query.where(ApiToken.user_id == user_id)
    return list(session.scalars(query))


def revoke_token(*, session: Session, token_id: int, force: bool = False) -> ApiToken:
    """Revoke a token (kept for the record); refused if no admin could sign in afterwards."""
    token = session.get(ApiToken, token_id)
    if token is None:
        raise NotFound(f"no API token {token_id}")
    if token.revoked_at is None:
        if not force and not _admin_can_sign_in(session=session, without_token=token.id):
            raise Conflict(
                f"revoking token {token.prefix}… leaves no active admin with a password or a "
                "live token: nobody could sign in as an admin; set a password or issue another "
                "token first (or revoke with force)",
                field="token_id",
            )
        token.revoked_at = utcnow()
        lookup.forget_after_commit(session)
    return token


def _admin_can_sign_in(*, session: Session, without_token: int) -> bool:
    """Whether some active admin has a password or a live token other than `without_token`."""
    admins = select(User.id).where(User.role == Role.admin, User.is_active.is_(True))
    with_password = admins.where(User.password_hash.is_not(None)).limit(1)
    if session.scalar(with_password) is not None:
        return True
    live = select(ApiToken.id).where(
        ApiToken.user_id.in_(admins), ApiToken.revoked_at.is_(None), ApiToken.id != without_token
    )
    return session.scalar(live.limit(1)) is not None


def user_from_token(*, session: Session, plain: str) -> User | None:
    """The active user owning a live API token, if any."""
    row = session.execute(
        select(User, ApiToken)
        .join(ApiToken, ApiToken.user_id == User.id)
        .where(ApiToken.token_hash == hash_token(plain), ApiToken.revoked_at.is_(None))
    ).first()
    if row is None or not row.User.is_active:
        return None
    return row.User
