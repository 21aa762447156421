"""A real uvicorn server in a subprocess, on a migrated SQLite file (browser tests, screenshots)."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SECRET = os.environ.get("RLHF_SECRET_KEY", "browser-test-secret-key-0123456789-abcdefghijklmnop")
"""The suite's own key (tests/conftest.py) when set: public ids the tests compute then match
the server's."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(database_url: str) -> dict[str, str]:
    return os.environ | {
        "RLHF_DATABASE_URL": database_url,
        "RLHF_DEV": "1",
        "RLHF_SECRET_KEY": SECRET,
    }


def rlhf(database_url: str, *args: str) -> str:
    """Run the `rlhf` command against the database; returns its output."""
    command = [sys.executable, "-c", "from app.cli import main; main()", *args]
    done = subprocess.run(
        command, env=server_env(database_url), capture_output=True, text=True, check=True
    )
    return done.stdout


@contextmanager
def live_server(database_url: str, log: Path) -> Iterator[str]:
    """Migrate the database, serve the app on a free port, yield its base URL."""
    rlhf(database_url, "db", "upgrade")
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "app.main:create_app",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    # Snapshots the server writes go beside its log, not into the working tree.
    env = {"RLHF_ARTIFACTS_DIR": str(log.parent / "artifacts")} | server_env(database_url)
    with open(log, "w") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=out)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{base}/login", timeout=1)
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the server did not start: {log.read_text()}") from None
                time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)
