"""Users, their sign-ins (browser sessions) and API tokens."""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from app.base import Base, utcnow


class Role(StrEnum):
    admin = "admin"
    labeler = "labeler"


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    is_active: Mapped[bool] = mapped_column(default=True)
    failed_logins: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None]
    source: Mapped[str | None] = mapped_column(String(20))
    """The tool a source annotator's labels were imported from (labelstudio, argilla, oasst,
    arena), or "ai" for a judge (`judge:<model>`, whose labels a judge run stores); such a user
    is named after the source's id (`labelstudio:7`) and never signs in. None for people."""
    session_epoch: Mapped[int] = mapped_column(default=0)
    """Bumped on password reset or deactivation: older session cookies stop working (with their
    `LoginSession` rows, which are deleted then; the epoch also refuses a login that raced)."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    @property
    def is_admin(self) -> bool:
        return self.role == Role.admin


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    """sha256 of the token; the token itself is shown once and never stored."""
    prefix: Mapped[str] = mapped_column(String(12))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class LoginSession(Base):
    """One browser's sign-in. Its cookie carries a random key; only the key's sha256 is stored.
    Signing out deletes the row (that browser only); a new password or deactivation deletes all
    of the user's rows."""

    __tablename__ = "sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
