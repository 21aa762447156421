"""The server's log: one access line per request (method, path, status, duration, request id),
a setting that turns it off, and a line each time a web process starts (pid, version)."""

import logging
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata

from fastapi.testclient import TestClient

from tests.browser.live import free_port, rlhf, server_env

STARTED = re.compile(r"web process (\d+) started \(rlhf-studio (\S+)\)")


@contextmanager
def _records(name: str) -> Iterator[list[logging.LogRecord]]:
    """The records the logger `name` emits meanwhile."""
    found: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = found.append  # type: ignore[method-assign]
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    try:
        yield found
    finally:
        logger.removeHandler(handler)


def test_each_request_gets_one_access_line_with_its_request_id(app, factory) -> None:
    admin = factory.user("admin")
    with _records("rlhf.access") as records, TestClient(app) as client:
        answers = [
            ("GET", "/login", client.get("/login?next=/admin/runs")),
            ("GET", "/api/v1/projects", client.get("/api/v1/projects", headers=admin.headers)),
            (
                "GET",
                "/api/v1/projects/999",
                client.get("/api/v1/projects/999", headers=admin.headers),
            ),
            ("POST", "/api/v1/projects", client.post("/api/v1/projects", json={})),
        ]
    lines = [r.getMessage() for r in records]
    assert len(lines) == len(answers), lines
    for line, (method, path, answer) in zip(lines, answers, strict=True):
        request_id = answer.headers["x-request-id"]
        pattern = rf"{method} {re.escape(path)} {answer.status_code} \d+\.\dms id={request_id}"
        assert re.fullmatch(pattern, line), line
    assert [a.status_code for _, _, a in answers] == [200, 200, 404, 401]
    assert all(r.levelno == logging.INFO for r in records)


def test_rlhf_access_log_0_turns_the_access_lines_off(engine, monkeypatch) -> None:
    from app.config import get_settings
    from app.main import create_app

    monkeypatch.setenv("RLHF_ACCESS_LOG", "0")
    get_settings.cache_clear()
    with _records("rlhf.access") as records, TestClient(create_app()) as client:
        assert client.get("/login").status_code == 200
    get_settings.cache_clear()
    assert records == []


def _wait_for(log, pattern: re.Pattern[str], count: int, process) -> list[str]:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + 90
    while True:
        found = pattern.findall(log.read_text())
        if len(found) >= count:
            return found
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"wanted {count} × {pattern.pattern}:\n{log.read_text()}")
        time.sleep(0.2)


def test_rlhf_serve_logs_each_request_once_and_each_process_start(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'serve.db'}"
    rlhf(url, "db", "upgrade")
    log, port = tmp_path / "serve.log", free_port()
    command = [sys.executable, "-m", "app", "serve", "--port", str(port), "--workers", "2"]
    env = server_env(url) | {"RLHF_ACCESS_LOG": "1"}
    with open(log, "w") as out:
        server = subprocess.Popen(command, env=env, stdout=out, stderr=out, start_new_session=True)
    try:
        started = _wait_for(log, STARTED, 2, server)
        assert {v for _, v in started} == {metadata.version("rlhf-studio")}
        assert len({pid for pid, _ in started}) == 2
        deadline = time.monotonic() + 30
        while True:
            try:
                answer = urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=5)
                break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        request_id = answer.headers["X-Request-ID"]
        line = re.compile(rf"INFO rlhf\.access \[\d+\] GET /login 200 \S+ms id={request_id}")
        _wait_for(log, line, 1, server)
        text = log.read_text()
        assert text.count(request_id) == 1, text  # ours only: uvicorn's access log is off
        assert "HTTP/1.1" not in text

        # a web process that dies is restarted, and the new one says so
        os.kill(int(started[0][0]), signal.SIGKILL)
        again = _wait_for(log, STARTED, 3, server)
        assert again[2][0] not in {p for p, _ in started}
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        finally:
            if server.poll() is None:
                os.killpg(server.pid, signal.SIGKILL)
    assert len(re.findall(r"web process \d+ stopped", log.read_text())) == 2
