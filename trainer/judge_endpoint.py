"""A judge behind an OpenAI-compatible chat-completions endpoint, asked pairwise.

Each question (both orders of every pair, trainer/judge_rules.py) is one request:
  POST {endpoint}/chat/completions  {"model": endpoint_model, "messages": [{"role": "user",
  "content": question}], "temperature": 0, "max_tokens": endpoint_max_tokens,
  "logprobs": true, "top_logprobs": 5}   (the last two only with endpoint_logprobs)
with "Authorization: Bearer $KEY" when endpoint_key_env names the variable holding the key.

The answer is read from choices[0].message.content: "A", "B", "**B**", "Response A …" (the
first letter, after an optional "Response"/"Answer"). When the server returns logprobs, the
first answer token that is A or B gives P(A) against P(B) from its top_logprobs; otherwise the
answer counts as certain. An answer that says neither, a body that is not the wire format, or a
request the server refuses as bad (HTTP 400, 413, 422, …) makes that order unusable: the pair
becomes a tie, the item may abstain, and the job goes on.

Connection errors, timeouts, HTTP 429 and 5xx are retried `endpoint_retries` times, waiting
`endpoint_backoff` seconds and twice as long each time (at most 60 s, or what Retry-After asks,
up to 10 minutes); then the job fails with the cause (EndpointError → EXIT_UNAVAILABLE), keeping
what it wrote. HTTP 401, 403, 404 and 405 fail it at once (EndpointRefused, a config error).
At most `endpoint_concurrency` requests are in flight (asyncio + httpx, one connection pool).
"""

from __future__ import annotations

import asyncio
import math
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from trainer.configs import ConfigError, JudgeConfig
from trainer.judge_rules import Item, PairVote, orders_of, pairwise_row, question

MAX_BACKOFF = 60.0
"""Longest wait between two tries of our own choosing (seconds)."""
MAX_RETRY_AFTER = 600.0
"""Longest wait a server's Retry-After header may ask for (seconds)."""
POLL_SECONDS = 0.1
"""How often a chunk in flight looks at the stop flag (SIGTERM)."""

_OPENERS = r"""[\s*_"'`\[(]*"""  # markdown, quotes, brackets
LABEL = re.compile(
    rf"^{_OPENERS}(?:(?i:response|answer|output)\s*[:\-]?\s*)?{_OPENERS}([AB])(?![A-Za-z0-9])"
)
"""The capital letter an answer starts with (after markdown, quotes, "Response"/"Answer")."""


class EndpointError(RuntimeError):
    """The endpoint kept failing (connection errors, timeouts, 429, 5xx) through the retries.
    `done` holds the verdicts finished before the failure (they are written, not lost)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.done: list[tuple[dict[str, Any], list[PairVote] | None]] = []


class EndpointRefused(ConfigError):
    """The endpoint refused the requests themselves (401, 403, 404, 405): a config to fix."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "endpoint")
        self.done: list[tuple[dict[str, Any], list[PairVote] | None]] = []


@dataclass
class Answer:
    """One order's answer: P(A) against P(B), or why it could not be read."""

    p_a: float | None
    why: str | None = None


def chat_url(endpoint: str) -> str:
    """The chat-completions URL of a base URL (…/v1) or of the full URL."""
    url = endpoint.rstrip("/")
    return url if url.endswith("/chat/completions") else url + "/chat/completions"


def _label(token: Any) -> str | None:
    text = str(token).strip().strip("*_\"'`[(")
    return text if text in ("A", "B") else None


def logprob_p_a(logprobs: Any) -> float | None:
    """P(A) / (P(A) + P(B)) at the first answer token that is A or B, from its top_logprobs;
    None when the server sent none."""
    try:
        for entry in logprobs["content"][:8]:
            if _label(entry["token"]) is None:
                continue
            best = {"A": -math.inf, "B": -math.inf}
            for cand in [entry, *(entry.get("top_logprobs") or [])]:
                label = _label(cand["token"])
                if label is not None:
                    best[label] = max(best[label], float(cand["logprob"]))
            la, lb = best["A"], best["B"]
            if lb == -math.inf:
                return 1.0
            if la == -math.inf:
                return 0.0
            return 1.0 / (1.0 + math.exp(lb - la))
    except (KeyError, TypeError, ValueError, AttributeError, IndexError):
        return None
    return None


def read_answer(body: Any) -> Answer:
    """The answer in a chat-completions response body; never raises."""
    try:
        choice = body["choices"][0]
        content = choice["message"]["content"]
    except (KeyError, IndexError, TypeError):
        return Answer(None, "malformed response (no choices[0].message.content)")
    match = LABEL.match(content) if isinstance(content, str) else None
    if match is None:
        return Answer(None, "malformed answer (neither A nor B)")
    says_a = match.group(1) == "A"
    p = logprob_p_a(choice.get("logprobs") if isinstance(choice, dict) else None)
    if p is None or p == 0.5 or (p > 0.5) != says_a:  # the text decides; logprobs only weigh it
        p = 1.0 if says_a else 0.0
    return Answer(p)


def _retry_after(value: str | None) -> float | None:
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and math.isfinite(seconds) and seconds >= 0 else None


class EndpointJudge:
    """Asks the endpoint every question of a chunk of items, concurrently."""

    kind = "endpoint"

    def __init__(self, cfg: JudgeConfig, key: str | None) -> None:
        self.cfg, self.url = cfg, chat_url(cfg.endpoint)
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}
        # The judge's own event loop, on its own thread: the caller's thread may run a loop
        # already (a notebook, a host application), and run_until_complete would refuse it.
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="judge", daemon=True)
        self.thread.start()
        self.client: httpx.AsyncClient | None = None
        self.slots: asyncio.Semaphore | None = None
        self.requests = self.retries = 0

    def chunk_items(self, k: int) -> int:
        """Items per chunk: about 8 requests per concurrency slot."""
        return max(1, 8 * self.cfg.endpoint_concurrency // max(1, k * (k - 1)))

    def judge(
        self, items: list[Item], stop: Callable[[], bool]
    ) -> list[tuple[dict[str, Any], list[PairVote] | None]]:
        """Verdicts of the items finished (all, unless `stop` turned true first)."""
        return self._wait(self._chunk(items, stop))

    def _wait(self, coro: Any) -> Any:
        """Run `coro` on the judge's loop; the caller's thread waits (signals still reach it)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    async def _chunk(
        self, items: list[Item], stop: Callable[[], bool]
    ) -> list[tuple[dict[str, Any], list[PairVote] | None]]:
        if self.client is None:
            n = self.cfg.endpoint_concurrency
            self.client = httpx.AsyncClient(
                timeout=httpx.Timeout(self.cfg.endpoint_timeout),
                limits=httpx.Limits(max_connections=n, max_keepalive_connections=n),
            )
            self.slots = asyncio.Semaphore(n)
        pending = {asyncio.ensure_future(self._item(it)) for it in items}
        done: list[tuple[dict[str, Any], list[PairVote] | None]] = []
        error: BaseException | None = None
        try:
            while pending and error is None and not stop():
                finished, pending = await asyncio.wait(
                    pending, timeout=POLL_SECONDS, return_when=asyncio.FIRST_COMPLETED
                )
                for task in finished:
                    if task.exception() is None:
                        done.append(task.result())
                    else:
                        error = error or task.exception()
        finally:
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if error is not None:
            if isinstance(error, EndpointError | EndpointRefused):
                error.done = done
            raise error
        return done

    async def _item(self, item: Item) -> tuple[dict[str, Any], list[PairVote] | None]:
        texts = [text for _, text in item.responses]
        orders = orders_of(len(texts))
        try:
            async with asyncio.TaskGroup() as group:
                asks = [
                    group.create_task(
                        self._ask(
                            question(
                                self.cfg.judge_template,
                                item.prompt,
                                *((texts[i], texts[j]) if which == 0 else (texts[j], texts[i])),
                            )
                        )
                    )
                    for _, i, j, which in orders
                ]
        except BaseExceptionGroup as group_error:  # the first failure, not the group
            raise group_error.exceptions[0] from None
        votes = [PairVote(i, j) for _, i, j, which in orders if which == 0]
        for (n, _, _, which), task in zip(orders, asks, strict=True):
            answer = task.result()
            if answer.p_a is None:
                votes[n].unusable.append(answer.why or "unusable answer")
            elif which == 0:
                votes[n].first = answer.p_a  # i was A
            else:
                votes[n].second = 1.0 - answer.p_a  # i was B
        return pairwise_row(item, votes), votes

    async def _ask(self, text: str) -> Answer:
        body: dict[str, Any] = {
            "model": self.cfg.endpoint_model,
            "messages": [{"role": "user", "content": text}],
            "temperature": 0,
            "max_tokens": self.cfg.endpoint_max_tokens,
        }
        if self.cfg.endpoint_logprobs:
            body |= {"logprobs": True, "top_logprobs": 5}
        assert self.slots is not None
        async with self.slots:
            response = await self._post(body)
        if isinstance(response, Answer):
            return response
        try:
            return read_answer(response.json())
        except ValueError:
            return Answer(None, "malformed response (not JSON)")

    async def _post(self, body: dict[str, Any]) -> httpx.Response | Answer:
        """The server's response, retried on connection errors, timeouts, 429 and 5xx."""
        cfg, last = self.cfg, ""
        assert self.client is not None
        for attempt in range(cfg.endpoint_retries + 1):
            wait = min(cfg.endpoint_backoff * 2**attempt, MAX_BACKOFF)
            self.requests += 1
            try:
                response = await self.client.post(self.url, json=body, headers=self.headers)
            except httpx.TransportError as e:  # connect, read and write errors and timeouts
                last = f"{type(e).__name__}" + (f": {e}" if str(e) else "")
            else:
                code = response.status_code
                if code < 400:
                    return response
                said = " ".join(response.text.split())[:200]
                if code == 429 or code >= 500:
                    last = f"HTTP {code}" + (f": {said}" if said else "")
                    after = _retry_after(response.headers.get("retry-after"))
                    if after is not None:
                        wait = max(wait, min(after, MAX_RETRY_AFTER))
                elif code in (401, 403, 404, 405):
                    key = cfg.endpoint_key_env or "no key"
                    raise EndpointRefused(
                        f"endpoint {self.url} refused the request: HTTP {code}"
                        + (f": {said}" if said else "")
                        + f" (check endpoint, endpoint_model and the key: {key})"
                    )
                else:
                    return Answer(None, f"request refused (HTTP {code})")
            if attempt < cfg.endpoint_retries:
                self.retries += 1
                await asyncio.sleep(wait)
        tries = cfg.endpoint_retries + 1
        raise EndpointError(
            f"judge endpoint {self.url} failed {tries} "
            f"{'time' if tries == 1 else 'times'} in a row; last: {last}"
        )

    def summary(self) -> dict[str, Any]:
        """Requests sent (retries included) and retries."""
        return {"requests": self.requests, "retries": self.retries}

    def close(self) -> None:
        if self.client is not None:
            self._wait(self.client.aclose())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()
