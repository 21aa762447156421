"""Settings, read from the environment with the prefix RLHF_."""

from functools import lru_cache
from pathlib import Path

from pydantic import model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRETS = {"", "changeme", "change-me", "secret", "dev"}
DEV_SECRET = "rlhf-studio-development-secret-do-not-use-in-production"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RLHF_", env_file=".env", extra="ignore")

    database_url: str = "sqlite:///./rlhf.db"
    """SQLAlchemy URL; PostgreSQL in production (postgresql+psycopg://…), SQLite embedded."""
    secret_key: str = ""
    """Signs session and CSRF cookies. Required outside dev mode."""
    dev: bool = False
    """Development mode: allows the built-in secret key and non-secure cookies."""
    artifacts_dir: Path = Path("./artifacts")
    """Where dataset snapshots, run directories and models are written."""
    session_max_age: int = 14 * 24 * 3600
    """Seconds a login session lasts."""
    login_max_failures: int = 5
    """Failed logins in a row before the account is locked for `login_lock_seconds`."""
    login_lock_seconds: int = 60
    secure_cookies: bool = False
    """Mark cookies Secure even when the request arrived as plain HTTP (e.g. behind a TLS proxy
    that does not forward the scheme). Requests served over HTTPS always get Secure cookies."""
    max_body_bytes: int = 2 * 1024 * 1024
    """Largest request body (JSON, forms); larger ones get 413."""
    max_upload_bytes: int = 512 * 1024 * 1024
    """Largest body of an import upload (compressed size for .jsonl.gz); larger ones get 413."""
    import_max_bytes: int = 2 * 1024 * 1024 * 1024
    """Largest import after decompression."""
    import_max_ratio: int = 100
    """Largest decompressed/compressed size ratio of a gzip import (a gzip bomb is refused)."""
    import_max_line_bytes: int = 4 * 1024 * 1024
    """Longest line of an import file."""
    import_max_lines: int = 5_000_000
    """Most lines (blank ones included) in one import file."""
    web_processes: int = 1
    """Web server processes; `rlhf serve` sets it (default: one per CPU core)."""
    db_connections: int = 60
    """Database connections the whole web server may hold, all processes together; each
    process gets an equal share, half for the asyncio engine, half for the sync engine."""
    db_pool_size: int | None = None
    """Connections per engine and process; default: derived from db_connections."""
    max_in_flight: int = 512
    """Requests one process serves at once; more get 503 with Retry-After at once."""
    run_stale_seconds: int = 60
    """A running run whose worker has not heart-beaten for this long shows `stale` and is
    requeued; a worker silent this long counts as gone."""
    worker_heartbeat_seconds: float = 5.0
    """How often a worker heart-beats (its own row and its run's); well under run_stale_seconds."""
    run_retry_seconds: float = 10.0
    """Backoff before a retried attempt; doubles with each attempt."""
    access_log: bool = True
    """One log line per request (method, path, status, duration, request id);
    RLHF_ACCESS_LOG=0 turns it off."""
    trainer_launcher: str = "python"
    """How the worker starts the trainer: python (python -m trainer) or accelerate."""
    ray_address: str = ""
    """A Ray cluster (`ray.init`'s address, e.g. 10.0.0.5:6379) that trains the runs (sft, rm,
    dpo, ppo) through Ray Train instead of this machine (trainer/ray_cluster.py); needs the
    `ray` extra. Empty: the worker's own machine."""

    def pool_size(self) -> int:
        """Connections each engine of one web process keeps (no overflow)."""
        if self.db_pool_size is not None:
            return self.db_pool_size
        return max(4, self.db_connections // (2 * max(1, self.web_processes)))

    @model_validator(mode="after")
    def _refuse_placeholder_secret(self) -> "Settings":
        if self.secret_key.strip().lower() in PLACEHOLDER_SECRETS:
            if not self.dev:
                raise ValueError(
                    "RLHF_SECRET_KEY is missing or a placeholder; set a long random value "
                    "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`) "
                    "or run in development mode with RLHF_DEV=1"
                )
            self.secret_key = DEV_SECRET
        return self


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (cached; tests clear the cache)."""
    return Settings()
