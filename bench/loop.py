"""Closed-loop learning bench: does the product make a policy better on a reward it never sees?

Drives rlhf-studio as a user would: `rlhf db upgrade`, `rlhf users create`, `rlhf serve
--with-worker` (server and training worker as the README starts them), then only the REST API:
projects, imports, labels, snapshots, runs, models. The task, the hidden reward and the simulated
labelers are in bench/loop_task.py (hidden = share of positive minus share of negative words).

Round 0: a tiny causal LM built locally is SFT'd on demonstrations the labelers write.
Each round: the current policy samples K candidates per prompt (the trainer's sampling, run by
this script; the `generate` run kind is the next step), the labelers rank them through the API
(Bradley–Terry with temperature; `--adversarial` of them rank at random or in reverse), a
rankings snapshot and a prompts snapshot are frozen, an RM run and a PPO run (adaptive KL
controller, `--kl-target`) train, and the PPO policy generates the next round. Per round it
prints the mean hidden reward of the policy's samples on held-out prompts, the win rate of its
samples against the round-0 policy's (blind pairs judged by the hidden reward, Wilson 95%), the
RM's accuracy against the hidden reward on held-out pairs, and the KL to the round-0 policy and
the PPO run's own KL to its reference (both `trainer.ppo.sequence_kl`), and where the round's
time went (sampling, labeling, each run's wait for the worker, trainer start-up and work).

`--weighting none,reliability` runs the rounds once per consensus weighting of the rankings
snapshots (the product's labeler-quality fit), from one shared round 0 on one server, and reports
both. `--threads` (default 1) is the torch thread count of every process (OMP_NUM_THREADS of the
product): on a shared 2-core machine more threads per process spin-wait on each other. Writes
bench/results/loop-<weightings>.json.

    python bench/loop.py                                     # 3 rounds, weighting none
    python bench/loop.py --weighting none,reliability        # both, from one round 0
    python bench/loop.py --rounds 1 --prompts 16 --held-out 8
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import save, table  # noqa: E402
from bench.loop_task import (  # noqa: E402
    demonstration,
    hidden_reward,
    kl_to,
    labelers,
    mean_hidden,
    prompts,
    rm_accuracy,
    sample,
    win_rate,
)

RLHF = [sys.executable, "-m", "app"]
EMPTY = "(empty reply)"  # hidden reward 0, like an empty reply


def shown(reply: str) -> str:
    """A sampled reply as it can be imported: control characters (a byte-level tokenizer can
    sample NUL) dropped, an empty reply shown as EMPTY. The hidden reward is unchanged."""
    text = "".join(ch for ch in reply if ch.isprintable() or ch in "\n\t")
    return text or EMPTY


class Product:
    """The server and worker started as the README says, and an admin's API client."""

    def __init__(self, work: Path, port: int, threads: int) -> None:
        self.env = os.environ | {
            "RLHF_DATABASE_URL": f"sqlite:///{work}/loop.db",
            "RLHF_ARTIFACTS_DIR": str(work / "artifacts"),
            "RLHF_DEV": "1",
            "PYTHONPATH": str(ROOT),
        }
        if threads:  # the trainers' torch threads (OpenMP reads it in every process)
            self.env["OMP_NUM_THREADS"] = str(threads)
        subprocess.run([*RLHF, "db", "upgrade"], env=self.env, check=True, capture_output=True)
        out = subprocess.run(
            [*RLHF, "users", "create", "admin@loop.test", "--role", "admin", "--token", "--json"],
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        self.admin = {"Authorization": f"Bearer {json.loads(out)['token']}"}
        self.log = open(work / "server.log", "wb")  # noqa: SIM115
        self.server = subprocess.Popen(
            [*RLHF, "serve", "--port", str(port), "--with-worker"],
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
        for _ in range(300):
            try:
                if self.http.get("/api/v1/me", headers=self.admin).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        else:
            raise RuntimeError("the server did not start (see server.log)")

    def api(self, method: str, path: str, headers: dict | None = None, **kw) -> httpx.Response:
        """One request as the admin (or with `headers`); raises on an error status."""
        r = self.http.request(method, f"/api/v1{path}", headers=headers or self.admin, **kw)
        if r.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {r.status_code} {r.text[:500]}")
        return r

    def labeler_tokens(self, n: int) -> list[dict]:
        """n labeler accounts with API tokens, created through the API."""
        out = []
        for i in range(n):
            user = self.api("POST", "/users", json={"email": f"l{i}@loop.test", "role": "labeler"})
            token = self.api("POST", f"/users/{user.json()['id']}/tokens", json={"name": "loop"})
            out.append({"Authorization": f"Bearer {token.json()['token']}"})
        return out

    def project(self, name: str, kind: str, k: int, overlap: int, items: list[dict]) -> int:
        """Create a project and import its items (JSONL body)."""
        body = {"name": name, "kind": kind, "k": k, "overlap": overlap}
        pid = self.api("POST", "/projects", json=body).json()["id"]
        jsonl = "".join(json.dumps(x) + "\n" for x in items)
        self.api("POST", f"/projects/{pid}/items", content=jsonl.encode())
        return pid

    def label(self, pid: int, team: list, tokens: list[dict], answer) -> int:
        """Every labeler takes tasks until none is left; answer(labeler, task) → annotation."""
        n = 0
        for labeler, headers in zip(team, tokens, strict=True):
            while True:
                r = self.api("GET", f"/projects/{pid}/tasks/next", headers=headers)
                if r.status_code == 204:
                    break
                task = r.json()
                self.api(
                    "POST",
                    f"/assignments/{task['assignment_id']}/annotations",
                    headers=headers,
                    json=answer(labeler, task),
                )
                n += 1
        return n

    def snapshot(self, pid: int, kind: str, **params: str) -> int:
        """Freeze a snapshot (all rows to train: the bench holds out its own prompts)."""
        body = {"kind": kind, "split": 1.0, **params}
        return self.api("POST", f"/projects/{pid}/snapshots", json=body).json()["id"]

    def train(self, kind: str, snapshot: int, model: str, config: dict, **kw) -> dict:
        """Start a run and wait for it; return the registered output model.

        Its "timing" says where the run's time went: waiting for the worker, the trainer's
        start-up (process, imports, loading models: up to its first log line) and the rest.
        """
        body = {"kind": kind, "snapshot_id": snapshot, "model": model, "config": config, **kw}
        t0 = time.perf_counter()
        run = self.api("POST", "/runs", json=body).json()
        while run["status"] in ("queued", "running"):
            time.sleep(0.25)
            run = self.api("GET", f"/runs/{run['id']}").json()
        wall = time.perf_counter() - t0
        log = self.api("GET", f"/runs/{run['id']}/log", params={"lines": 5000}).text
        if run["status"] != "succeeded":
            raise RuntimeError(
                f"{kind} run {run['id']} {run['status']}: {run['error']}\n{log[-2000:]}"
            )
        models = self.api("GET", "/models").json()
        out = next(m for m in models if m["id"] == run["output_model_id"])
        return out | {"timing": run_timing(run, log, wall)}

    def close(self) -> None:
        """Stop the server (it stops its worker)."""
        self.server.terminate()
        self.server.wait(timeout=120)
        self.log.close()


def run_timing(run: dict, log: str, wall: float) -> dict[str, float]:
    """Seconds a run spent queued, starting the trainer (to its first log line) and working."""
    created, started, finished = (
        datetime.fromisoformat(run[k]).replace(tzinfo=None)
        for k in ("created_at", "started_at", "finished_at")
    )
    first = re.search(rf"^\[([0-9-]+ [0-9:]+)\] {run['kind']}: output_dir=", log, re.M)
    startup = (
        (datetime.strptime(first.group(1), "%Y-%m-%d %H:%M:%S") - started).total_seconds()
        if first
        else float("nan")
    )
    return {
        "wall": wall,
        "queued": (started - created).total_seconds(),
        "startup": startup,
        "work": (finished - started).total_seconds() - startup,
    }


def rounds(product: Product, args, weighting: str, ctx: dict) -> list[dict]:
    """Rounds 1…N from the round-0 policy with one consensus weighting; a row per round."""
    from trainer.reward import load_reward_model

    held_out, team, tokens, encoder = ctx["held_out"], ctx["team"], ctx["tokens"], ctx["encoder"]
    policy = round0 = ctx["round0"]
    old_flat = [hidden_reward(x) for g in ctx["base_replies"] for x in g]
    rows = []
    for rnd in range(1, args.rounds + 1):
        t_round = time.perf_counter()
        clock = Clock()
        train_prompts = prompts(args.prompts, seed=rnd)
        replies = sample(policy, train_prompts, args.k, args.reply_tokens, args.temperature, rnd)
        items = [  # an empty sample (EOS first) is shown as such: the import refuses ""
            {"id": f"r{rnd}-{i}", "prompt": q, "responses": [shown(x) for x in group]}
            for i, (q, group) in enumerate(zip(train_prompts, replies, strict=True))
        ]
        name = f"{weighting} · round {rnd} · ranking"
        pid = product.project(name, "ranking", args.k, args.overlap, items)
        clock.lap("sample")

        def rank(labeler: Any, task: dict) -> dict:
            order = labeler.rank([x["text"] for x in task["responses"]])
            return {"ranking": [task["responses"][i]["id"] for i in order]}

        n_labels = product.label(pid, team, tokens, rank)
        clock.lap("label")
        rm = product.train(
            "rm",
            product.snapshot(pid, "rankings", weighting=weighting),
            encoder,
            {"max_steps": args.rm_steps, "batch_size": 8, "learning_rate": 1e-3, "max_length": 64},
        )
        clock.lap("rm")
        ppo = product.train(
            "ppo",
            product.snapshot(pid, "prompts"),
            policy,
            {
                "max_steps": args.ppo_steps,
                "batch_size": 32,
                "mini_batch_size": 16,
                "response_length": args.reply_tokens,
                "learning_rate": args.ppo_lr,
                "lr_scheduler": "constant",
                "temperature": args.temperature,
                "kl_coef": 0.1,
                "kl_target": args.kl_target,
                "kl_horizon": 64,
            },
            reward_model=rm["path"],
        )
        clock.lap("ppo")
        policy = ppo["path"]
        new = sample(policy, held_out, 2, args.reply_tokens, args.temperature, 1000 + rnd)
        new_flat = [hidden_reward(x) for g in new for x in g]
        metrics = json.loads((Path(policy) / "metrics.jsonl").read_text().splitlines()[-1])
        row = {
            "weighting": weighting,
            "round": rnd,
            "labels": n_labels,
            "hidden_reward": mean_hidden(new),
            **win_rate(new_flat, old_flat),
            "rm_accuracy": rm_accuracy(
                load_reward_model(rm["path"]),
                held_out,
                sample(policy, held_out, 2, args.reply_tokens, args.temperature, 2000 + rnd),
            ),
            "kl_to_round0": kl_to(
                round0, policy, held_out, args.reply_tokens, args.temperature, 3000 + rnd
            ),
            "ppo_kl_last": metrics["kl"],
            "round_s": time.perf_counter() - t_round,
        }
        clock.lap("judge")
        row["timing"] = clock.laps | {"rm_run": rm["timing"], "ppo_run": ppo["timing"]}
        rows.append(row)
        print(table(rows, COLUMNS), flush=True)
    return rows


class Clock:
    """Seconds spent per phase."""

    def __init__(self) -> None:
        self.t = time.perf_counter()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = now - self.t
        self.t = now


COLUMNS = [
    "weighting",
    "round",
    "labels",
    "hidden_reward",
    "win_rate",
    "ci_low",
    "ci_high",
    "rm_accuracy",
    "kl_to_round0",
    "ppo_kl_last",
    "round_s",
]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--prompts", type=int, default=32, help="training prompts per round")
    p.add_argument("--held-out", type=int, default=32, help="prompts to judge each round on")
    p.add_argument("--k", type=int, default=4)
    p.add_argument("--labelers", type=int, default=10)
    p.add_argument("--overlap", type=int, default=3, help="labelers per prompt")
    p.add_argument("--adversarial", type=float, default=0.1)
    p.add_argument("--labeler-temperature", type=float, default=0.1)
    p.add_argument("--reply-tokens", type=int, default=10)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--sft-steps", type=int, default=60, help="round 0 SFT steps")
    p.add_argument("--rm-steps", type=int, default=40, help="reward-model steps per round")
    p.add_argument("--ppo-steps", type=int, default=12, help="PPO steps (32 episodes) per round")
    p.add_argument("--ppo-lr", type=float, default=1.5e-3, help="PPO learning rate")
    p.add_argument("--kl-target", type=float, default=6.0, help="PPO's adaptive controller")
    p.add_argument(
        "--weighting",
        default="none",
        help="consensus weighting of the rankings snapshots, or several separated by commas "
        "(each runs its own rounds from the same round 0): none | reliability (labeler "
        "quality fitted by the product)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads per process (OMP_NUM_THREADS of the product; 0 → torch's default)",
    )
    p.add_argument("--port", type=int, default=8160)
    args = p.parse_args()
    weightings = [w.strip() for w in args.weighting.split(",") if w.strip()]
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    from trainer.tiny import build_tiny_causal_lm, build_tiny_encoder

    t_start = time.perf_counter()
    clock = Clock()
    work = Path(tempfile.mkdtemp(prefix="bench-loop-"))
    base = str(build_tiny_causal_lm(work / "base-lm"))
    encoder = str(build_tiny_encoder(work / "encoder"))
    product = Product(work, args.port, args.threads)
    clock.lap("start")
    results: dict[str, list[dict]] = {}
    try:
        team = labelers(args.labelers, args.adversarial, args.labeler_temperature, seed=1)
        tokens = product.labeler_tokens(len(team))
        held_out = prompts(args.held_out, seed=99)
        r = random.Random(0)

        # Round 0: demonstrations written through the API, SFT.
        train_prompts = prompts(args.prompts, seed=0)
        items = [{"id": f"demo-{i}", "prompt": q} for i, q in enumerate(train_prompts * 2)]
        pid = product.project("round 0 · demonstrations", "demonstration", 1, 1, items)
        product.label(pid, team, tokens, lambda lab, task: {"demonstration": demonstration(r)})
        clock.lap("label")
        sft = product.train(
            "sft",
            product.snapshot(pid, "sft"),
            base,
            {
                "max_steps": args.sft_steps,
                "batch_size": 16,
                "learning_rate": 3e-3,
                "max_length": 64,
            },
        )
        clock.lap("sft")
        base_replies = sample(sft["path"], held_out, 2, args.reply_tokens, args.temperature, 1000)
        clock.lap("judge")
        round0 = {
            "round": 0,
            "hidden_reward": mean_hidden(base_replies),
            "win_rate": 0.5,
            "round_s": time.perf_counter() - t_start,
            "timing": clock.laps | {"sft_run": sft["timing"]},
        }
        print(table([round0], ["round", "hidden_reward", "round_s"]), flush=True)
        ctx = {
            "held_out": held_out,
            "team": team,
            "tokens": tokens,
            "encoder": encoder,
            "round0": sft["path"],
            "base_replies": base_replies,
        }
        for weighting in weightings:
            results[weighting] = rounds(product, args, weighting, ctx)
    finally:
        product.close()
    wall = time.perf_counter() - t_start
    rows = [round0] + [row for w in weightings for row in results.get(w, [])]
    print(table(rows, COLUMNS))
    for row in rows:
        t = row["timing"]
        runs = {k: v for k, v in t.items() if isinstance(v, dict)}
        print(
            f"round {row['round']} {row.get('weighting', '')}: "
            + ", ".join(f"{k} {v:.0f} s" for k, v in t.items() if not isinstance(v, dict))
            + "".join(
                f"; {k}: queued {v['queued']:.0f} s, start-up {v['startup']:.0f} s, "
                f"work {v['work']:.0f} s"
                for k, v in runs.items()
            )
        )
    load = os.getloadavg()
    path = save(
        f"loop-{'-'.join(weightings)}",
        {"args": vars(args), "round0": round0, "rounds": results, "wall_s": wall, "load": load},
    )
    print(f"results: {path} ({wall:.0f} s, load average {load[0]:.1f})")


if __name__ == "__main__":
    main()
