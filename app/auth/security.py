"""Password hashing, API token generation and signed cookies."""

import hashlib
import secrets
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from itsdangerous import BadSignature, URLSafeTimedSerializer

_hasher = PasswordHasher()
TOKEN_PREFIX = "rlhf_"
SESSION_COOKIE = "rlhf_session"
CSRF_COOKIE = "rlhf_csrf"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    if not password_hash:
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def new_api_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def new_session_key() -> str:
    """The secret a session cookie carries (stored hashed, as API tokens are)."""
    return secrets.token_urlsafe(32)


class CookieSigner:
    """Signs and verifies the session and CSRF cookie values (with an age limit)."""

    def __init__(self, secret_key: str, max_age: int) -> None:
        self._session = URLSafeTimedSerializer(secret_key, salt="rlhf-session")
        self._csrf = URLSafeTimedSerializer(secret_key, salt="rlhf-csrf")
        self.max_age = max_age

    def dump_session(self, user_id: int, epoch: int, key: str) -> str:
        return self._session.dumps({"u": user_id, "e": epoch, "k": key})

    def load_session(self, value: str) -> dict[str, Any] | None:
        try:
            data = self._session.loads(value, max_age=self.max_age)
        except BadSignature:
            return None
        return data if isinstance(data, dict) else None

    def dump_csrf(self, token: str) -> str:
        return self._csrf.dumps(token)

    def load_csrf(self, value: str | None) -> str | None:
        if not value:
            return None
        try:
            token = self._csrf.loads(value, max_age=self.max_age)
        except BadSignature:
            return None
        return token if isinstance(token, str) else None
