"""Settings refuse a missing or placeholder secret outside development mode."""

import pytest
from pydantic import ValidationError

from app.config import DEV_SECRET, Settings


@pytest.mark.parametrize("secret", ["", "changeme", "secret"])
def test_placeholder_secret_is_refused_in_production(secret: str) -> None:
    with pytest.raises(ValidationError, match="RLHF_SECRET_KEY"):
        Settings(secret_key=secret, dev=False)


def test_dev_mode_gets_the_development_secret() -> None:
    assert Settings(secret_key="", dev=True).secret_key == DEV_SECRET


def test_a_real_secret_is_kept() -> None:
    assert Settings(secret_key="x" * 40, dev=False).secret_key == "x" * 40
