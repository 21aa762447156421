"""A lean HTTP/1.1 keep-alive client for load generators: one connection per simulated user.

The labelers of a load test stand for browsers on other machines; on a small bench machine
the load generator shares the cores with the server and the database, so it must cost little.
httpx spends ~10 ms of CPU per request with a hundred connections (its pool and its
per-request machinery); this client writes a request and reads `Content-Length` bytes back
(~0.1 ms). It speaks only what the rlhf-studio API answers with: no chunked bodies, no
redirects, no TLS.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson


class HttpError(Exception):
    """The connection failed or the answer was not HTTP."""


class Answer:
    __slots__ = ("status", "headers", "body")

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return orjson.loads(self.body)


class Connection:
    """One keep-alive connection to `host:port`; reconnects after the server closes it."""

    def __init__(self, host: str, port: int, timeout: float = 30.0) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, headers: dict[str, str], json: Any = None
    ) -> Answer:
        body = b"" if json is None else orjson.dumps(json)
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if json is not None:
            lines.append("Content-Type: application/json")
        lines.append(f"Content-Length: {len(body)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        for attempt in (0, 1):
            fresh = self.writer is None
            try:
                return await asyncio.wait_for(self._exchange(head + body), self.timeout)
            except (ConnectionError, asyncio.IncompleteReadError) as exc:
                # A kept-alive connection the server closed meanwhile: one retry on a new one.
                self.close()
                if fresh or attempt:
                    raise HttpError(f"{type(exc).__name__}: {exc}") from exc
            except TimeoutError as exc:
                self.close()
                raise HttpError("timed out") from exc
        raise AssertionError("unreachable")

    async def _exchange(self, data: bytes) -> Answer:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(data)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = raw[:-4].decode("latin-1").split("\r\n")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/"):
            raise HttpError(f"not an HTTP answer: {status_line!r}")
        headers: dict[str, str] = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "chunked" in headers.get("transfer-encoding", ""):
            raise HttpError("chunked answers are not supported")
        length = int(headers.get("content-length", "0"))
        body = await self.reader.readexactly(length) if length else b""
        if headers.get("connection", "").lower() == "close":
            self.close()
        return Answer(int(parts[1]), headers, body)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None
