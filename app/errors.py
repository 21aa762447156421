"""Domain errors; the app turns them into JSON 4xx answers that say what and where."""

from typing import Any

from pydantic import ValidationError


class DomainError(Exception):
    status_code = 400

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class NotFound(DomainError):
    status_code = 404


class Forbidden(DomainError):
    status_code = 403


class Conflict(DomainError):
    status_code = 409


class Gone(DomainError):
    status_code = 410


class Invalid(DomainError):
    status_code = 422


class TooLarge(DomainError):
    status_code = 413


class TooManyRequests(DomainError):
    status_code = 429


def validation_messages(exc: ValidationError, prefix: str = "") -> list[str]:
    """Pydantic errors as 'field: message' lines a person can act on (prefix: '--' for flags,
    which name a field as its option does: `lease_seconds` as `--lease-seconds`)."""

    def name(e: Any) -> str:
        field = ".".join(str(p) for p in e["loc"]) or "form"
        return field.replace("_", "-") if prefix == "--" else field

    return [f"{prefix}{name(e)}: " + e["msg"].removeprefix("Value error, ") for e in exc.errors()]
