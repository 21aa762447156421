"""Request/response models of users and tokens."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from app.auth.models import Role
from app.http.bounds import Email, Password, text


class UserCreate(BaseModel):
    email: Email
    role: Role
    password: Password | None = None


class UserUpdate(BaseModel):
    is_active: bool | None = None
    role: Role | None = None
    password: Password | None = None


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    email: str
    role: Role
    is_active: bool
    source: str | None = None
    """The tool a source annotator's labels were imported from (it cannot sign in); None for
    people."""
    created_at: datetime


class TokenCreate(BaseModel):
    name: text(100) = ""  # type: ignore[valid-type]


class TokenOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    user_id: int
    name: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


class NewToken(TokenOut):
    token: str
    """The token itself, shown this once."""
