"""AI feedback as a tracked annotator: does the product measure a judge right, save human labels
with it, and catch labelers who copy its suggestions?

Drives rlhf-studio as a user would (bench/loop.py's `Product`: `rlhf db upgrade`, an admin token,
`rlhf serve --with-worker` on SQLite, then only the REST API). The task and the hidden reward are
bench/loop_task.py's (share of positive minus negative words): each ranking item (K=2) is a
unique prompt with two 6-word demonstration replies of different hidden reward; 10% more items
are gold (`"gold": {"ranking": [better, worse]}`).

The judge is an OpenAI-compatible chat endpoint this script serves (http.server in a thread),
started as a `judge` run with `{"endpoint", "endpoint_model", "judge_template"}`. It perceives
d̂ = (h_A − h_B) + ε, ε ~ N(0, σ) fixed per unordered pair (seeded from the prompt's "#tag" and
the two texts, so both orders agree and the bench can recompute it), answers the side d̂
favours with P = sigmoid(|d̂| / s) in its logprobs (s = σ), and for 5% of pairs answers "A" in
both orders (position bias: the app sees the orders disagree, an
abstention). σ is found by bisection on the items' pairs so that the judge's accuracy on the
pairs it decides is `--judge-accuracy`.

Simulated people: Bradley–Terry, P(right) = sigmoid(|h_A − h_B| / τ), 10% of them answer in
reverse; they label in a round robin (one task each per turn), so a prompt's overlap comes
from different people. "Labels" below are every human submit, gold items included.

(b) arm U: overlap 3, order id, no judge; people label everything; snapshots at every tenth of
    the real labels. Arm J: the same items, a judge run first, `order=judge-uncertainty` and
    `judge_accepts` (`--accept`, on the certainty scale 2·P − 1) with `judge_fills` (`--fills`,
    3: an accepted label completes its prompt); people label in serving order until none is left,
    a `pairs` snapshot with `sources: "all"` at every tenth of U's labels. Accuracy: the
    consensus pair of a prompt against the hidden order; a prompt without a row counts 0.5.
(a) arm U's project, then a judge run on it: the judge's true accuracy (a `pairs` snapshot with
    `sources: "ai"`), its Quality-API agreement with the people's consensus (mean Kendall τ-b;
    for K=2 a pair is τ = 1 or −1, so accuracy = (τ + 1)/2) and its gold accuracy.
(c) a project with suggestions prefilled and a judge of accuracy `--anchor-judge-accuracy`:
    3 blind labelers submit the task's suggestion when it has one, 6 careful ones ignore it;
    per labeler gold accuracy, suggestion agreement and flags from the Quality API.

    python bench/judge_feedback.py                  # 400 prompts, 12 labelers
    python bench/judge_feedback.py --prompts 200    # quicker

Prints a table per part and writes bench/results/judge_feedback.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import save, table  # noqa: E402
from bench.loop import Product  # noqa: E402
from bench.loop_task import Labeler, demonstration, hidden_reward, prompts  # noqa: E402

TEMPLATE = "{prompt}\nA: {a}\nB: {b}"
BIAS_SHARE = 0.05
BUDGETS = [i / 10 for i in range(1, 11)]


# ---------------------------------------------------------------------- items


def make_items(n: int, seed: int, gold_share: float) -> list[dict]:
    """n unique prompts with two replies of different hidden reward, then gold items."""
    r = random.Random(seed)
    texts = prompts(n + round(gold_share * n), seed=seed)
    items = []
    for i, q in enumerate(texts):
        a = demonstration(r)
        b = demonstration(r)
        while hidden_reward(b) == hidden_reward(a):
            b = demonstration(r)
        item: dict[str, Any] = {
            "id": f"s{seed}-{i}",
            "prompt": f"{q} #{seed}-{i}",
            "responses": [a, b],
        }
        if i >= n:
            item["gold"] = {"ranking": [0, 1] if hidden_reward(a) > hidden_reward(b) else [1, 0]}
        items.append(item)
    return items


def better(item: dict) -> str:
    a, b = item["responses"]
    return a if hidden_reward(a) > hidden_reward(b) else b


# ---------------------------------------------------------------------- the judge


def pair_draw(prompt: str, a: str, b: str) -> tuple[float, bool, str]:
    """(z, biased, canonical first text) of the unordered pair: ε = σ·z on h(first) − h(second)."""
    x, y = sorted((a, b))
    tag = prompt.rsplit("#", 1)[-1]  # the item's tag: the judge sees the prompt as "User: …"
    digest = hashlib.sha256(f"{tag}\x00{x}\x00{y}".encode()).digest()
    r = random.Random(int.from_bytes(digest[:8], "big"))
    return r.gauss(0.0, 1.0), r.random() < BIAS_SHARE, x


class SimJudge:
    """The judge's answers: d̂ = h_A − h_B + ε; `sigma` set by `calibrate`."""

    def __init__(self) -> None:
        self.sigma = 1.0

    def d_hat(self, prompt: str, a: str, b: str) -> float:
        z, _, first = pair_draw(prompt, a, b)
        eps = self.sigma * z if a == first else -self.sigma * z
        return hidden_reward(a) - hidden_reward(b) + eps

    def answer(self, question: str) -> tuple[str, float]:
        """(letter, P(letter)) for a question written with TEMPLATE."""
        prompt, _, rest = question.partition("\nA: ")
        a, _, b = rest.partition("\nB: ")
        _, biased, _ = pair_draw(prompt, a, b)
        d = self.d_hat(prompt, a, b)
        p = 1.0 / (1.0 + math.exp(-abs(d) / self.sigma))
        if biased:
            return "A", p
        return ("A" if d > 0 else "B"), p

    def accuracy(self, items: list[dict], sigma: float) -> float:
        """Share of the decided (not position-biased) pairs it orders like the hidden reward."""
        hits = n = 0
        for item in items:
            a, b = item["responses"]
            z, biased, first = pair_draw(item["prompt"], a, b)
            if biased:
                continue
            second = b if first == a else a
            d = hidden_reward(first) - hidden_reward(second)
            hits += (d + sigma * z > 0) == (d > 0)
            n += 1
        return hits / n

    def calibrate(self, items: list[dict], target: float) -> float:
        """σ by bisection so that `accuracy` is the target (accuracy falls as σ grows)."""
        lo, hi = 1e-4, 50.0
        for _ in range(60):
            mid = (lo + hi) / 2
            if self.accuracy(items, mid) > target:
                lo = mid
            else:
                hi = mid
        self.sigma = (lo + hi) / 2
        return self.accuracy(items, self.sigma)


class JudgeServer:
    """An OpenAI-compatible chat-completions endpoint answering with `judge` (logprobs too)."""

    def __init__(self, judge: SimJudge) -> None:
        owner = judge

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                says, p = owner.answer(body["messages"][0]["content"])
                other = "B" if says == "A" else "A"
                lp_says, lp_other = math.log(max(p, 1e-12)), math.log(max(1 - p, 1e-12))
                top = [{"token": says, "logprob": lp_says}, {"token": other, "logprob": lp_other}]
                choice = {
                    "index": 0,
                    "message": {"role": "assistant", "content": says},
                    "finish_reason": "stop",
                    "logprobs": {
                        "content": [{"token": says, "logprob": lp_says, "top_logprobs": top}]
                    },
                }
                data = json.dumps(
                    {
                        "id": "c",
                        "object": "chat.completion",
                        "model": "sim-judge",
                        "choices": [choice],
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/v1"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# ---------------------------------------------------------------------- the product


def create(product: Product, name: str, items: list[dict], **settings: Any) -> int:
    """A K=2 ranking project with overlap 3 (unless set), its items imported."""
    body = {"name": name, "kind": "ranking", "k": 2, "overlap": 3} | settings
    pid = product.api("POST", "/projects", json=body).json()["id"]
    jsonl = "".join(json.dumps(x) + "\n" for x in items)
    product.api("POST", f"/projects/{pid}/items", content=jsonl.encode())
    return pid


def people(product: Product, prefix: str, kinds: list[str], tau: float, seed: int) -> list[dict]:
    """Labeler accounts with tokens, each with its simulated behaviour."""
    out = []
    for i, kind in enumerate(kinds):
        email = f"{prefix}{i}@judge.test"
        user = product.api("POST", "/users", json={"email": email, "role": "labeler"}).json()
        token = product.api("POST", f"/users/{user['id']}/tokens", json={"name": "bench"})
        out.append(
            {
                "id": user["id"],
                "email": email,
                "kind": kind,
                "sim": Labeler("reverse" if kind == "reverse" else "honest", tau, seed * 100 + i),
                "headers": {"Authorization": f"Bearer {token.json()['token']}"},
            }
        )
    return out


def own_answer(person: dict, task: dict) -> dict:
    order = person["sim"].rank([x["text"] for x in task["responses"]])
    return {"ranking": [task["responses"][i]["id"] for i in order]}


def blind_answer(person: dict, task: dict) -> dict:
    suggestion = task.get("suggestion")
    if suggestion and suggestion.get("ranking"):
        return {"ranking": suggestion["ranking"]}
    return own_answer(person, task)


def label_round_robin(
    product: Product,
    pid: int,
    team: list[dict],
    answer: Callable[[dict, dict], dict],
    after: Callable[[int, str], None] = lambda n, prompt: None,
    stop: Callable[[], bool] = lambda: False,
) -> int:
    """Each person takes one task per turn until none is left for anyone (or `stop`);
    `after(labels so far, prompt text)` runs after each submit."""
    n = 0
    active = list(team)
    while active and not stop():
        for person in list(active):
            r = product.api("GET", f"/projects/{pid}/tasks/next", headers=person["headers"])
            if r.status_code == 204:
                active.remove(person)
                continue
            task = r.json()
            product.api(
                "POST",
                f"/assignments/{task['assignment_id']}/annotations",
                headers=person["headers"],
                json=answer(person, task),
            )
            n += 1
            after(n, task["messages"][0]["content"] if task["messages"] else "")
            if stop():
                break
    return n


def run_judge(product: Product, pid: int, url: str) -> dict:
    """A judge run of the endpoint on the project, waited for."""
    config = {
        "endpoint": url,
        "endpoint_model": "sim-judge",
        "judge_template": TEMPLATE,
        "endpoint_backoff": 0.05,
    }
    run = product.api("POST", "/runs", json={"kind": "judge", "project": pid, "config": config})
    run = run.json()
    while run["status"] in ("queued", "running"):
        time.sleep(0.5)
        run = product.api("GET", f"/runs/{run['id']}").json()
    if run["status"] != "succeeded":
        log = product.api("GET", f"/runs/{run['id']}/log", params={"lines": 200}).text
        raise RuntimeError(f"judge run {run['id']} {run['status']}: {run['error']}\n{log}")
    return run


def pair_rows(product: Product, pid: int, sources: str) -> list[dict]:
    """The rows of a fresh `pairs` snapshot (consensus, split 1.0) with these sources."""
    sid = product.snapshot(pid, "pairs", sources=sources)
    text = product.api("GET", f"/snapshots/{sid}/files/train.jsonl").text
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def accuracy(rows: list[dict], items: list[dict], missing: float | None = 0.5) -> dict:
    """Share of the real items whose pair row orders them like the hidden reward; an item
    without a row counts `missing` (None: left out)."""
    by_prompt: dict[str, list[float]] = {}
    truth = {x["prompt"]: better(x) for x in items}
    for row in rows:
        if row["prompt"] in truth:
            by_prompt.setdefault(row["prompt"], []).append(
                float(row["chosen"] == truth[row["prompt"]])
            )
    scores = []
    for x in items:
        got = by_prompt.get(x["prompt"])
        if got:
            scores.append(sum(got) / len(got))
        elif missing is not None:
            scores.append(missing)
    covered = sum(1 for x in items if by_prompt.get(x["prompt"]))
    return {"accuracy": sum(scores) / max(len(scores), 1), "rows": covered}


def quality(product: Product, pid: int) -> dict:
    return product.api("GET", f"/projects/{pid}/quality").json()


# ---------------------------------------------------------------------- parts


def arm_u(product: Product, args, items: list[dict], real: list[dict], team: list[dict]) -> dict:
    """Uniform serving, no judge: the accuracy curve at every tenth of the real labels."""
    pid = create(product, "U · uniform", items)
    real_prompts = {x["prompt"] for x in real}
    total_real = len(real) * 3
    marks = [round(b * total_real) for b in BUDGETS]
    state = {"real": 0}
    curve: list[dict] = []

    def after(n: int, prompt: str) -> None:
        state["real"] += prompt in real_prompts
        if marks and state["real"] >= marks[0]:
            marks.pop(0)
            curve.append(
                {"arm": "U", "labels": n} | accuracy(pair_rows(product, pid, "human"), real)
            )

    n = label_round_robin(product, pid, team, own_answer, after)
    final = accuracy(pair_rows(product, pid, "human"), real)
    if not curve or curve[-1]["labels"] != n:
        curve.append({"arm": "U", "labels": n} | final)
    return {"project": pid, "labels": n, "final": final, "curve": curve}


def arm_j(
    product: Product,
    args,
    items: list[dict],
    real: list[dict],
    team: list[dict],
    judge: SimJudge,
    url: str,
    u_labels: int,
) -> dict:
    """A judge first, judge-uncertainty serving, confident judge labels accepted."""
    pid = create(product, "J · judge-uncertainty", items, order="judge-uncertainty")
    run_judge(product, pid, url)
    settings = {"judge_accepts": args.accept, "judge_fills": args.fills}
    product.api("PATCH", f"/projects/{pid}", json=settings)
    ai = pair_rows(product, pid, "ai")
    accepted = accepted_share(judge, real, args.accept)
    marks = [round(b * u_labels) for b in BUDGETS]

    def point(n: int) -> dict:
        """Accuracy with every label (the figure), and with the people's alone (diagnosis)."""
        people_only = accuracy(pair_rows(product, pid, "human"), real)
        return (
            {"arm": "J", "labels": n}
            | accuracy(pair_rows(product, pid, "all"), real)
            | {"human_only_accuracy": people_only["accuracy"]}
        )

    curve = [point(0)]

    def after(n: int, prompt: str) -> None:
        if marks and n >= marks[0]:
            marks.pop(0)
            curve.append(point(n))

    n = label_round_robin(product, pid, team, own_answer, after, stop=lambda: not marks)
    if curve[-1]["labels"] != n:
        curve.append(point(n))
    return {
        "project": pid,
        "labels": n,
        "judge_accuracy_labels": accuracy(ai, real, missing=None),
        "final_by_group": by_group(
            product, pid, real, accepted_items(judge, real, args.accept), ["all", "human"]
        ),
        "accepted": accepted,
        "curve": curve,
    }


def accepted_items(judge: SimJudge, real: list[dict], accept: float) -> list[dict]:
    """The real items whose judge label fills a slot: certainty as the app reads it (2·P − 1,
    P the same in both orders) at least `accept`; a position-biased pair's orders disagree
    (certainty 0)."""
    out = []
    for item in real:
        a, b = item["responses"]
        if pair_draw(item["prompt"], a, b)[1]:
            continue
        d = judge.d_hat(item["prompt"], a, b)
        if 2.0 / (1.0 + math.exp(-abs(d) / judge.sigma)) - 1.0 >= accept:
            out.append(item)
    return out


def accepted_share(judge: SimJudge, real: list[dict], accept: float) -> dict:
    """The share of real prompts whose judge label is accepted, and how often it is right."""
    chosen = accepted_items(judge, real, accept)
    right = sum(
        (judge.d_hat(x["prompt"], *x["responses"]) > 0)
        == (hidden_reward(x["responses"][0]) > hidden_reward(x["responses"][1]))
        for x in chosen
    )
    return {"share": len(chosen) / len(real), "accuracy": right / max(len(chosen), 1)}


def by_group(
    product: Product, pid: int, real: list[dict], accepted: list[dict], sources: list[str]
) -> dict:
    """Final accuracy on the prompts whose judge label is accepted and on the others."""
    keys = {x["prompt"] for x in accepted}
    groups = {
        "accepted": [x for x in real if x["prompt"] in keys],
        "others": [x for x in real if x["prompt"] not in keys],
    }
    out = {}
    for source in sources:
        rows = pair_rows(product, pid, source)
        out[source] = {g: accuracy(rows, items)["accuracy"] for g, items in groups.items()}
    return out


def part_a(product: Product, u: dict, real: list[dict], url: str) -> dict:
    """The judge on arm U's fully labeled project."""
    pid = u["project"]
    run_judge(product, pid, url)
    true = accuracy(pair_rows(product, pid, "ai"), real, missing=None)
    report = quality(product, pid)
    row = next(x for x in report["labelers"] if x["ai"])
    tau = row["agreement"]
    measured = (tau + 1) / 2 if tau is not None else None
    return {
        "project": pid,
        "judge_true_accuracy": true["accuracy"],
        "judge_labels_on_real_prompts": true["rows"],
        "quality_agreement_tau": tau,
        "quality_agreement_as_accuracy": measured,
        "quality_gold_accuracy": row["gold_accuracy"],
        "gold_seen": row["gold_seen"],
        "difference": None if measured is None else measured - true["accuracy"],
        "within_0.05": None if measured is None else abs(measured - true["accuracy"]) <= 0.05,
    }


def part_c(product: Product, args, judge: SimJudge, url: str) -> dict:
    """Prefilled suggestions from a weaker judge: blind and careful labelers."""
    items = make_items(args.prompts, seed=3, gold_share=0.1)
    real = [x for x in items if "gold" not in x]
    achieved = judge.calibrate(items, args.anchor_judge_accuracy)
    pid = create(product, "C · prefilled suggestions", items, suggestions="prefilled")
    run_judge(product, pid, url)
    true = accuracy(pair_rows(product, pid, "ai"), real, missing=None)
    team = people(product, "c", ["blind"] * 3 + ["careful"] * 6, args.temperature, seed=3)
    answers = {"blind": blind_answer, "careful": own_answer}
    n = label_round_robin(product, pid, team, lambda p, t: answers[p["kind"]](p, t))
    report = quality(product, pid)
    by_id = {x["user_id"]: x for x in report["labelers"]}
    rows = []
    for person in team:
        q = by_id[person["id"]]
        rows.append(
            {
                "labeler": person["email"],
                "kind": person["kind"],
                "labels": q["labels"],
                "gold_seen": q["gold_seen"],
                "gold_accuracy": q["gold_accuracy"],
                "suggestion_agreement": q["suggestion_agreement"],
                "suggestion_prompts": q["suggestion_prompts"],
                "flags": ",".join(q["flags"]) or "-",
                "evidence": [e["evidence"] for e in q["evidence"]],
            }
        )
    judge_row = next(x for x in report["labelers"] if x["ai"])
    flagged = {r["labeler"] for r in rows if "follows-suggestions" in r["flags"]}
    blind = {r["labeler"] for r in rows if r["kind"] == "blind"}
    return {
        "project": pid,
        "sigma": judge.sigma,
        "judge_accuracy_target": args.anchor_judge_accuracy,
        "judge_accuracy_sim": achieved,
        "judge_true_accuracy": true["accuracy"],
        "judge_gold_accuracy": judge_row["gold_accuracy"],
        "labels": n,
        "labelers": rows,
        "flag_exactly_on_blind": flagged == blind,
    }


def fewest_to_reach(curve: list[dict], target: float) -> int | None:
    return next((p["labels"] for p in curve if p["accuracy"] >= target - 1e-9), None)


# ---------------------------------------------------------------------- main


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--prompts", type=int, default=400, help="real prompts per project")
    p.add_argument("--labelers", type=int, default=12)
    p.add_argument("--adversarial", type=float, default=0.1, help="share answering in reverse")
    p.add_argument("--temperature", type=float, default=0.1, help="people's Bradley–Terry τ")
    p.add_argument("--judge-accuracy", type=float, default=0.8)
    p.add_argument("--anchor-judge-accuracy", type=float, default=0.7, help="part (c)'s judge")
    p.add_argument(
        "--accept", type=float, default=0.6, help="judge_accepts of arm J (certainty 2·P − 1)"
    )
    p.add_argument(
        "--fills",
        type=int,
        default=3,
        help="judge_fills of arm J: the overlap slots an accepted judge label fills (3: all)",
    )
    p.add_argument("--port", type=int, default=8170)
    args = p.parse_args()

    t_start = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="bench-judge-"))
    judge = SimJudge()
    server = JudgeServer(judge)
    product = Product(work, args.port, threads=1)
    out: dict[str, Any] = {"args": vars(args)}
    try:
        items = make_items(args.prompts, seed=1, gold_share=0.1)
        real = [x for x in items if "gold" not in x]
        achieved = judge.calibrate(items, args.judge_accuracy)
        bad = round(args.adversarial * args.labelers)
        team = people(
            product,
            "h",
            ["honest"] * (args.labelers - bad) + ["reverse"] * bad,
            args.temperature,
            seed=1,
        )
        print(
            f"judge: σ = s = {judge.sigma:.4f} for accuracy {achieved:.3f} on the decided pairs "
            f"(target {args.judge_accuracy}); {BIAS_SHARE:.0%} of pairs position-biased",
            flush=True,
        )

        t = time.perf_counter()
        u = arm_u(product, args, items, real, team)
        u_wall = time.perf_counter() - t

        t = time.perf_counter()
        a = part_a(product, u, real, server.url)
        a["wall_s"] = time.perf_counter() - t
        out["a"] = a
        print("\n(a) the judge's measured agreement vs its true accuracy [within 0.05]")
        print(
            table(
                [a],
                [
                    "judge_true_accuracy",
                    "quality_agreement_tau",
                    "quality_agreement_as_accuracy",
                    "quality_gold_accuracy",
                    "gold_seen",
                    "difference",
                    "within_0.05",
                    "wall_s",
                ],
            ),
            flush=True,
        )

        t = time.perf_counter()
        j = arm_j(product, args, items, real, team, judge, server.url, u["labels"])
        j_wall = time.perf_counter() - t
        u["final_by_group"] = by_group(
            product, u["project"], real, accepted_items(judge, real, args.accept), ["human"]
        )
        target = u["final"]["accuracy"]
        reach = fewest_to_reach(j["curve"], target)
        saved = None if reach is None else 1 - reach / u["labels"]
        out["b"] = {
            "accept": args.accept,
            "fills": args.fills,
            "u": u,
            "j": j,
            "u_final_accuracy": target,
            "j_labels_to_reach": reach,
            "share_saved": saved,
            "wall_s": u_wall + j_wall,
            "u_wall_s": u_wall,
            "j_wall_s": j_wall,
        }
        print(
            f"\n(b) judge-uncertainty + judge_accepts={args.accept}, judge_fills={args.fills} "
            "vs uniform "
            "[U's final accuracy with ≥ 40% fewer labels]"
        )
        print(
            table(
                u["curve"] + j["curve"],
                ["arm", "labels", "accuracy", "rows", "human_only_accuracy"],
            )
        )
        print(
            f"U: {u['labels']} labels, final accuracy {target:.4f}; J's judge labels "
            f"{j['judge_accuracy_labels']['accuracy']:.4f} accurate on "
            f"{j['judge_accuracy_labels']['rows']} prompts; certainty ≥ {args.accept} on "
            f"{j['accepted']['share']:.1%} of prompts ({j['accepted']['accuracy']:.4f} "
            f"accurate); J reaches U's "
            f"final accuracy with {reach} labels"
            + ("" if saved is None else f" ({saved:.1%} saved)")
            + f"; wall U {u_wall:.0f} s, J {j_wall:.0f} s",
            flush=True,
        )
        groups = [
            {"arm": "U", "sources": "human"} | u["final_by_group"]["human"],
            {"arm": "J", "sources": "all"} | j["final_by_group"]["all"],
            {"arm": "J", "sources": "human"} | j["final_by_group"]["human"],
        ]
        print("final accuracy on the prompts whose judge label is accepted, and the others:")
        print(table(groups, ["arm", "sources", "accepted", "others"]), flush=True)

        t = time.perf_counter()
        c = part_c(product, args, judge, server.url)
        c["wall_s"] = time.perf_counter() - t
        out["c"] = c
        print(
            f"\n(c) prefilled suggestions of a {c['judge_true_accuracy']:.3f}-accurate judge "
            f"(gold {c['judge_gold_accuracy']}) [flag exactly on the blind]"
        )
        print(
            table(
                c["labelers"],
                [
                    "labeler",
                    "kind",
                    "labels",
                    "gold_seen",
                    "gold_accuracy",
                    "suggestion_agreement",
                    "suggestion_prompts",
                    "flags",
                ],
            )
        )
        print(
            f"flag fired exactly on the blind: {c['flag_exactly_on_blind']}; "
            f"wall {c['wall_s']:.0f} s",
            flush=True,
        )
    finally:
        product.close()
        server.close()
    wall = time.perf_counter() - t_start
    out |= {"wall_s": wall, "load": os.getloadavg()}
    path = save("judge_feedback", out)
    print(f"results: {path} ({wall:.0f} s, load average {out['load'][0]:.1f})")


if __name__ == "__main__":
    main()
