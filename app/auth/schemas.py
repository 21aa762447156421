"""Request/response models of users and tokens."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.auth.models import Role


class UserCreate(BaseModel):
    email: str = Field(max_length=320)
    role: Role
    password: str | None = Field(None, min_length=8, max_length=200)


class UserUpdate(BaseModel):
    is_active: bool | None = None
    role: Role | None = None
    password: str | None = Field(None, min_length=8, max_length=200)


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    email: str
    role: Role
    is_active: bool
    created_at: datetime


class TokenCreate(BaseModel):
    name: str = Field("", max_length=100)


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
