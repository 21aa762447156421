"""A gzip bomb against the served app: refused at once while labelers keep labeling."""

import gzip
import io
import json
import threading
import time

import httpx

from tests.browser.live import live_server, rlhf
from tests.helpers import ranking_items


def bomb(mib: int = 200) -> bytes:
    """`mib` MiB of newlines, gzip-compressed to about a thousandth of that."""
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=6) as out:
        chunk = b"\n" * (1024 * 1024)
        for _ in range(mib):
            out.write(chunk)
    return buffer.getvalue()


def token_of(database_url: str, email: str, role: str) -> str:
    out = rlhf(database_url, "users", "create", email, "--role", role, "--token", "--json")
    return json.loads(out)["token"]


def test_a_gzip_bomb_is_refused_while_a_labeler_keeps_labeling(tmp_path) -> None:
    database_url = f"sqlite:///{tmp_path / 'live.db'}"
    payload = bomb()
    with live_server(database_url, tmp_path / "server.log") as base:
        admin = {"Authorization": f"Bearer {token_of(database_url, 'a@example.com', 'admin')}"}
        labeler = {"Authorization": f"Bearer {token_of(database_url, 'l@example.com', 'labeler')}"}
        with httpx.Client(base_url=base, timeout=60) as client:
            project = client.post(
                "/api/v1/projects", json={"name": "p", "kind": "ranking", "k": 2}, headers=admin
            ).json()
            lines = "".join(json.dumps(x) + "\n" for x in ranking_items(400, k=2))
            imported = client.post(
                f"/api/v1/projects/{project['id']}/items", content=lines, headers=admin
            )
            assert imported.status_code == 200

        labels: list[tuple[float, float, int]] = []
        stop = threading.Event()

        def label() -> None:
            with httpx.Client(base_url=base, timeout=60) as own:
                while not stop.is_set():
                    start = time.monotonic()
                    task = own.get(f"/api/v1/projects/{project['id']}/tasks/next", headers=labeler)
                    if task.status_code != 200:
                        labels.append((start, time.monotonic(), task.status_code))
                        return
                    body = {"ranking": [r["id"] for r in task.json()["responses"]]}
                    url = f"/api/v1/assignments/{task.json()['assignment_id']}/annotations"
                    done = own.post(url, json=body, headers=labeler)
                    labels.append((start, time.monotonic(), done.status_code))

        worker = threading.Thread(target=label)
        worker.start()
        time.sleep(0.5)  # labeling is under way
        with httpx.Client(base_url=base, timeout=120) as client:
            sent = time.monotonic()
            answer = client.post(
                f"/api/v1/projects/{project['id']}/items",
                files={"file": ("bomb.jsonl.gz", payload)},
                headers=admin,
            )
            answered = time.monotonic()
        time.sleep(0.5)  # and goes on after
        stop.set()
        worker.join(timeout=60)

    assert answer.status_code == 413, answer.text
    assert "expands more than" in answer.json()["detail"]
    statuses = {status for _, _, status in labels}
    assert statuses == {201}, labels
    after = [end for start, end, _ in labels if start > answered]
    assert after, "labeling went on after the upload"
    print(
        f"gzip bomb ({len(payload)} bytes -> 200 MiB): answered {answer.status_code} in "
        f"{answered - sent:.3f} s; {len(labels)} labels stored meanwhile and after"
    )
