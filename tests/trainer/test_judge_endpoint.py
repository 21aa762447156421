"""The endpoint judge against a chat-completions server started in the test (http.server in a
thread): answers in both orders, malformed answers, retries, outages, the concurrency limit,
and a judge process stopped (SIGTERM) and killed (SIGKILL) midway."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.trainer.trainer_testdata import write_jsonl
from trainer import EXIT_OK, EXIT_PREEMPTED, EXIT_UNAVAILABLE, EXIT_USAGE
from trainer.__main__ import main
from trainer.configs import ConfigError, JudgeConfig
from trainer.judge import JUDGMENTS_FILE, judge
from trainer.judge_endpoint import EndpointError, read_answer

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = "{prompt}\nA: {a}\nB: {b}"
ITEMS = [
    {
        "id": "k3",
        "prompt": "first",
        "responses": [
            {"id": "x", "text": "good"},
            {"id": "y", "text": "good good good"},
            {"id": "z", "text": "meh"},
        ],
    },
    {
        "id": "k2",
        "messages": [{"role": "user", "content": "hi"}],
        "responses": [{"id": 1, "text": "meh"}, {"id": 2, "text": "good good"}],
    },
]


def completion(text: str, logprobs: dict | None = None) -> dict[str, Any]:
    choice: dict[str, Any] = {
        "index": 0,
        "message": {"role": "assistant", "content": text},
        "finish_reason": "stop",
    }
    if logprobs is not None:
        choice["logprobs"] = logprobs
    return {"id": "c", "object": "chat.completion", "model": "judge-m", "choices": [choice]}


def parse(question: str) -> tuple[str, str, str]:
    """(prompt, a, b) of a question written with TEMPLATE."""
    head, _, rest = question.partition("\nA: ")
    a, _, b = rest.partition("\nB: ")
    return head, a, b


def by_goodness(question: str, n: int) -> tuple[int, Any]:
    """The response with more "good" in it wins."""
    _, a, b = parse(question)
    return 200, completion("A" if a.count("good") > b.count("good") else "B")


Reply = Callable[[str, int], tuple[int, Any]]


class ChatServer:
    """A chat-completions server in a thread; `reply(question, n)` gives (status, body) of the
    n-th request (a dict is sent as JSON, a str as it is). Counts requests in flight."""

    def __init__(self, reply: Reply, delay: Callable[[int], float] = lambda n: 0.0) -> None:
        self.reply, self.delay = reply, delay
        self.lock = threading.Lock()
        self.active = self.max_active = 0
        self.requests: list[tuple[str, dict[str, str], dict[str, Any]]] = []

    def __enter__(self) -> ChatServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    n = len(server.requests)
                    server.requests.append((self.path, dict(self.headers), body))
                    server.active += 1
                    server.max_active = max(server.max_active, server.active)
                try:
                    time.sleep(server.delay(n))
                    status, payload = server.reply(body["messages"][0]["content"], n)
                finally:
                    with server.lock:  # before answering: the client may send the next at once
                        server.active -= 1
                data = (payload if isinstance(payload, str) else json.dumps(payload)).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    if status == 429:
                        self.send_header("Retry-After", "0")
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client gave up (its timeout) and closed the connection
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/v1"
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def questions(self) -> list[str]:
        return [body["messages"][0]["content"] for _, _, body in self.requests]


def _cfg(tmp_path: Path, url: str, items: list[dict] = ITEMS, **kw: Any) -> JudgeConfig:
    tmp_path.mkdir(parents=True, exist_ok=True)
    values = {
        "endpoint": url,
        "endpoint_model": "judge-m",
        "judge_template": TEMPLATE,
        "endpoint_backoff": 0.01,
        "endpoint_retries": 3,
    }
    return JudgeConfig(
        train_file=write_jsonl(tmp_path / "items.jsonl", items),
        output_dir=str(tmp_path / "out"),
        **(values | kw),
    )


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / JUDGMENTS_FILE).read_text().splitlines()]


def _summary(out: Path) -> dict[str, Any]:
    return json.loads((out / "summary.json").read_text())


def _items(n: int) -> list[dict]:
    return [
        {"id": f"i{k}", "prompt": f"q{k}", "responses": ["meh", "good " * (1 + k % 3)]}
        for k in range(n)
    ]


def test_endpoint_asks_both_orders_and_ranks_by_the_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUDGE_KEY", "s3cret")
    with ChatServer(by_goodness) as server:
        assert judge(_cfg(tmp_path, server.url, endpoint_key_env="JUDGE_KEY")) == EXIT_OK
    rows = {r["id"]: r for r in _rows(tmp_path / "out")}
    k3 = rows["k3"]
    assert k3["ranking"] == ["y", "x", "z"] and k3["scores"] == {"x": 1.0, "y": 2.0, "z": 0.0}
    assert k3["margin"] == 1.0 and k3["orders_agree"] is True and k3["abstained"] is False
    assert k3["preference"] == 1.0  # no logprobs: the answer is taken as certain
    assert rows["k2"]["ranking"] == [2, 1] and rows["k2"]["reason"] is None
    asked = [parse(q) for q in server.questions()]
    assert len(asked) == 2 * (3 + 1)  # every pair in both orders
    assert ("first", "good", "meh") in asked and ("first", "meh", "good") in asked
    assert ("User: hi", "meh", "good good") in asked  # a conversation rendered as text
    for path, headers, body in server.requests:
        assert path == "/v1/chat/completions"
        assert headers["Authorization"] == "Bearer s3cret"
        assert body["model"] == "judge-m" and body["temperature"] == 0
        assert body["logprobs"] is True and body["max_tokens"] == 4
    assert "s3cret" not in (tmp_path / "out" / "run_config.json").read_text()
    assert _summary(tmp_path / "out")["this_run"]["requests"] == 8


def test_logprobs_weigh_the_preference(tmp_path: Path) -> None:
    def sure_at_80(question: str, n: int) -> tuple[int, Any]:
        _, body = by_goodness(question, n)
        says = body["choices"][0]["message"]["content"]
        other = "B" if says == "A" else "A"
        top = [{"token": says, "logprob": -0.2231}, {"token": other, "logprob": -1.6094}]
        first = {"token": says, "logprob": -0.2231, "top_logprobs": top}
        return 200, completion(says, {"content": [first]})

    with ChatServer(sure_at_80) as server:
        assert judge(_cfg(tmp_path, server.url, items=ITEMS[1:])) == EXIT_OK
    (row,) = _rows(tmp_path / "out")
    assert row["ranking"] == [2, 1] and row["preference"] == pytest.approx(0.8, abs=1e-3)


def test_malformed_answers_are_abstentions_never_a_crash(tmp_path: Path) -> None:
    def odd(question: str, n: int) -> tuple[int, Any]:
        prompt = parse(question)[0]
        if prompt == "chatty":
            return 200, completion("Both responses are fine.")
        if prompt == "not-json":
            return 200, "<html>oops</html>"
        if prompt == "no-choices":
            return 200, {"object": "chat.completion", "choices": []}
        if prompt == "too-long":
            return 400, {"error": {"message": "context length exceeded"}}
        return by_goodness(question, n)

    items = [
        {"id": p, "prompt": p, "responses": ["meh", "good"]}
        for p in ("chatty", "not-json", "no-choices", "too-long", "fine")
    ]
    with ChatServer(odd) as server:
        assert judge(_cfg(tmp_path, server.url, items=items)) == EXIT_OK
    rows = {r["id"]: r for r in _rows(tmp_path / "out")}
    assert rows["fine"]["ranking"] == [1, 0] and rows["fine"]["abstained"] is False
    reasons = {
        "chatty": "malformed answer (neither A nor B)",
        "not-json": "malformed response (not JSON)",
        "no-choices": "malformed response (no choices[0].message.content)",
        "too-long": "request refused (HTTP 400)",
    }
    for item, why in reasons.items():
        row = rows[item]
        assert row["abstained"] is True and row["ranking"] is None, item
        assert row["orders_agree"] is None and why in row["reason"], item
    summary = _summary(tmp_path / "out")
    assert summary["abstained"] == 4 and summary["this_run"]["unusable_answers"] == 8
    assert summary["this_run"]["retries"] == 0  # a bad answer is not retried


def test_a_judge_that_follows_the_position_abstains(tmp_path: Path) -> None:
    with ChatServer(lambda q, n: (200, completion("**A**"))) as server:
        assert judge(_cfg(tmp_path, server.url)) == EXIT_OK
    rows = _rows(tmp_path / "out")
    assert all(r["abstained"] and r["orders_agree"] is False for r in rows)
    assert all("the two orders disagree" in r["reason"] for r in rows)
    summary = _summary(tmp_path / "out")
    assert summary["this_run"]["disagreeing_pairs"] == 4 and summary["orders_disagree"] == 2


def test_timeouts_5xx_and_429_are_retried_then_the_job_goes_on(tmp_path: Path) -> None:
    def flaky(question: str, n: int) -> tuple[int, Any]:
        if n == 1:
            return 500, {"error": "boom"}
        if n == 2:
            return 429, {"error": "slow down"}
        return by_goodness(question, n)

    slow_first = ChatServer(flaky, delay=lambda n: 2.5 if n == 0 else 0.0)
    with slow_first as server:
        cfg = _cfg(tmp_path, server.url, endpoint_concurrency=1, endpoint_timeout=0.8)
        assert judge(cfg) == EXIT_OK
    rows = {r["id"]: r for r in _rows(tmp_path / "out")}
    assert rows["k3"]["ranking"] == ["y", "x", "z"] and rows["k2"]["ranking"] == [2, 1]
    run = _summary(tmp_path / "out")["this_run"]
    assert run["retries"] == 3 and run["requests"] == 8 + 3  # a timeout, a 500, a 429


def test_an_endpoint_that_stays_down_fails_the_job_with_the_cause(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    config = tmp_path / "run.json"
    values = {"endpoint": url, "endpoint_model": "m", "endpoint_backoff": 0.01}
    config.write_text(json.dumps(values | {"endpoint_retries": 2}))
    data = write_jsonl(tmp_path / "items.jsonl", ITEMS)
    argv = ["judge", "--config", str(config), "--train-file", data]
    t0 = time.monotonic()
    assert main([*argv, "--output-dir", str(tmp_path / "out")]) == EXIT_UNAVAILABLE
    assert time.monotonic() - t0 < 10
    err = capsys.readouterr().err
    assert f"error: judge endpoint http://127.0.0.1:{port}/v1/chat/completions failed 3 " in err
    assert "times in a row; last: ConnectError" in err


def test_what_was_judged_before_an_outage_is_kept(tmp_path: Path) -> None:
    def dies(question: str, n: int) -> tuple[int, Any]:
        return by_goodness(question, n) if n < 2 else (503, {"error": "overloaded"})

    with ChatServer(dies) as server:
        cfg = _cfg(tmp_path, server.url, items=_items(3), endpoint_concurrency=1)
        with pytest.raises(EndpointError, match=r"failed 4 times in a row; last: HTTP 503: "):
            judge(cfg)
    assert [r["id"] for r in _rows(tmp_path / "out")] == ["i0"]
    assert len(server.requests) == 2 + 4


def test_a_refused_key_or_model_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with ChatServer(lambda q, n: (401, {"error": "bad key"})) as server:
        cfg = _cfg(tmp_path, server.url)
        argv = ["judge", "--set", f"endpoint={server.url}", "--set", "endpoint_model=m"]
        argv += ["--train-file", cfg.train_file, "--output-dir", cfg.output_dir]
        argv += ["--set", "endpoint_concurrency=1"]
        assert main([*argv, "--set", f"judge_template={TEMPLATE}"]) == EXIT_USAGE
        assert len(server.requests) == 1  # not retried, and nothing more asked
    assert "refused the request: HTTP 401" in capsys.readouterr().err
    monkeypatch.delenv("NO_SUCH_KEY", raising=False)
    with pytest.raises(ConfigError, match="endpoint_key_env names NO_SUCH_KEY, which is not set"):
        judge(_cfg(tmp_path / "k", "http://127.0.0.1:9/v1", endpoint_key_env="NO_SUCH_KEY"))


def test_no_more_requests_in_flight_than_the_concurrency(tmp_path: Path) -> None:
    with ChatServer(by_goodness, delay=lambda n: 0.2) as server:
        cfg = _cfg(tmp_path, server.url, items=_items(8), endpoint_concurrency=3)
        assert judge(cfg) == EXIT_OK
    assert len(server.requests) == 16 and server.max_active == 3
    assert len(_rows(tmp_path / "out")) == 8


def test_read_answer_accepts_the_usual_shapes() -> None:
    for text, p in [("A", 1.0), ("B.", 0.0), ("**B**", 0.0), ("Response A is better", 1.0)]:
        assert read_answer(completion(text)).p_a == p, text
    for text in ("a better one is B", "AB", "", "Neither"):
        assert read_answer(completion(text)).p_a is None, text
    assert read_answer({"choices": [{"message": {"content": None}}]}).p_a is None
    assert read_answer([1, 2]).p_a is None
    lp = {"content": [{"token": " B", "logprob": -0.1, "top_logprobs": "junk"}]}
    assert read_answer(completion("B", lp)).p_a == 0.0  # junk logprobs: the text decides


def test_a_stopped_or_killed_judge_resumes_and_writes_each_id_once(tmp_path: Path) -> None:
    items = _items(24)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINER_")}
    env["PYTHONPATH"] = str(REPO)

    def start(cfg: JudgeConfig) -> subprocess.Popen:
        config = tmp_path / "run.json"
        config.write_text(json.dumps({k: getattr(cfg, k) for k in cfg.__dataclass_fields__}))
        cmd = [sys.executable, "-m", "trainer", "judge", "--config", str(config)]
        return subprocess.Popen(cmd, cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)

    def lines() -> int:
        path = tmp_path / "out" / JUDGMENTS_FILE
        return path.read_text().count("\n") if path.exists() else 0

    def wait_for(more_than: int, proc: subprocess.Popen) -> None:
        deadline = time.monotonic() + 120
        while lines() <= more_than:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline
            time.sleep(0.05)

    delay = {"s": 0.05}
    with ChatServer(by_goodness, delay=lambda n: delay["s"]) as server:
        cfg = _cfg(tmp_path, server.url, items=items, endpoint_concurrency=2)  # chunks of 8
        proc = start(cfg)
        wait_for(0, proc)  # the first chunk is written
        delay["s"] = 2.0  # the next chunk would take 8 · 2 questions · 2 s / 2 slots ≥ 14 s
        proc.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        assert proc.wait(timeout=60) == EXIT_PREEMPTED
        assert time.monotonic() - t0 < 10  # the chunk in flight was cut short
        stopped = lines()
        assert 8 <= stopped < 16
        delay["s"] = 0.05
        proc = start(cfg)
        wait_for(stopped, proc)
        proc.kill()
        proc.wait(timeout=60)
        assert judge(cfg) == EXIT_OK
    ids = [r["id"] for r in _rows(tmp_path / "out")]
    assert sorted(ids) == sorted(it["id"] for it in items) and len(ids) == 24


def test_the_judge_runs_from_a_thread_that_runs_an_event_loop(tmp_path: Path) -> None:
    """A caller inside a running event loop (a notebook, a host application, a test session
    with a browser driver) gets the same judgments: the judge's loop has its own thread."""

    async def inside_a_loop() -> int:
        return judge(_cfg(tmp_path, server.url))

    with ChatServer(by_goodness) as server, ThreadPoolExecutor(1) as caller:
        # A thread of its own: this test's thread may run a loop already (a browser test's).
        assert caller.submit(asyncio.run, inside_a_loop()).result() == EXIT_OK
    rows = {r["id"]: r for r in _rows(tmp_path / "out")}
    assert rows["k3"]["ranking"] == ["y", "x", "z"]
