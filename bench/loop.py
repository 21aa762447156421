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
the PPO run's own KL to its reference. Writes bench/results/loop.json.

    python bench/loop.py                        # 3 rounds
    python bench/loop.py --rounds 1 --prompts 32
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


class Product:
    """The server and worker started as the README says, and an admin's API client."""

    def __init__(self, work: Path, port: int) -> None:
        self.env = os.environ | {
            "RLHF_DATABASE_URL": f"sqlite:///{work}/loop.db",
            "RLHF_ARTIFACTS_DIR": str(work / "artifacts"),
            "RLHF_DEV": "1",
            "PYTHONPATH": str(ROOT),
        }
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
        """Start a run and wait for it; return the registered output model."""
        body = {"kind": kind, "snapshot_id": snapshot, "model": model, "config": config, **kw}
        run = self.api("POST", "/runs", json=body).json()
        while run["status"] in ("queued", "running"):
            time.sleep(1)
            run = self.api("GET", f"/runs/{run['id']}").json()
        if run["status"] != "succeeded":
            log = self.api("GET", f"/runs/{run['id']}/log").text[-2000:]
            raise RuntimeError(f"{kind} run {run['id']} {run['status']}: {run['error']}\n{log}")
        models = self.api("GET", "/models").json()
        return next(m for m in models if m["id"] == run["output_model_id"])

    def close(self) -> None:
        """Stop the server (it stops its worker)."""
        self.server.terminate()
        self.server.wait(timeout=120)
        self.log.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--prompts", type=int, default=64, help="training prompts per round")
    p.add_argument("--held-out", type=int, default=48, help="prompts to judge each round on")
    p.add_argument("--k", type=int, default=4)
    p.add_argument("--labelers", type=int, default=10)
    p.add_argument("--overlap", type=int, default=3, help="labelers per prompt")
    p.add_argument("--adversarial", type=float, default=0.1)
    p.add_argument("--labeler-temperature", type=float, default=0.1)
    p.add_argument("--reply-tokens", type=int, default=10)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--kl-target", type=float, default=6.0, help="PPO's adaptive controller")
    p.add_argument(
        "--weighting",
        default="none",
        help="consensus weighting of the rankings snapshot: "
        "none | reliability (labeler quality fitted by the product)",
    )
    p.add_argument("--port", type=int, default=8160)
    args = p.parse_args()

    from trainer.tiny import build_tiny_causal_lm, build_tiny_encoder

    t_start = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="bench-loop-"))
    base = str(build_tiny_causal_lm(work / "base-lm"))
    encoder = str(build_tiny_encoder(work / "encoder"))
    product = Product(work, args.port)
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
        sft = product.train(
            "sft",
            product.snapshot(pid, "sft"),
            base,
            {"max_steps": 60, "batch_size": 16, "learning_rate": 3e-3, "max_length": 64},
        )
        policy, round0 = sft["path"], sft["path"]

        def judge(policy_dir: str, seed: int) -> list[list[str]]:
            return sample(policy_dir, held_out, 2, args.reply_tokens, args.temperature, seed)

        base_replies = judge(round0, seed=1000)
        rows = [
            {
                "round": 0,
                "hidden_reward": mean_hidden(base_replies),
                "win_rate": 0.5,
                "seconds": time.perf_counter() - t_start,
            }
        ]
        print(table(rows, list(rows[0])), flush=True)

        for rnd in range(1, args.rounds + 1):
            train_prompts = prompts(args.prompts, seed=rnd)
            replies = sample(
                policy, train_prompts, args.k, args.reply_tokens, args.temperature, seed=rnd
            )
            items = [  # an empty sample (EOS first) is shown as such: the import refuses ""
                {"id": f"r{rnd}-{i}", "prompt": q, "responses": [x or EMPTY for x in group]}
                for i, (q, group) in enumerate(zip(train_prompts, replies, strict=True))
            ]
            pid = product.project(f"round {rnd} · ranking", "ranking", args.k, args.overlap, items)

            def rank(labeler, task) -> dict:  # type: ignore[no-untyped-def]
                order = labeler.rank([x["text"] for x in task["responses"]])
                return {"ranking": [task["responses"][i]["id"] for i in order]}

            n_labels = product.label(pid, team, tokens, rank)
            rm = product.train(
                "rm",
                product.snapshot(pid, "rankings", weighting=args.weighting),
                encoder,
                {"max_steps": 40, "batch_size": 8, "learning_rate": 1e-3, "max_length": 64},
            )
            ppo = product.train(
                "ppo",
                product.snapshot(pid, "prompts"),
                policy,
                {
                    "max_steps": 12,
                    "batch_size": 32,
                    "mini_batch_size": 16,
                    "response_length": args.reply_tokens,
                    "learning_rate": 3e-3,
                    "lr_scheduler": "constant",
                    "temperature": args.temperature,
                    "kl_coef": 0.1,
                    "kl_target": args.kl_target,
                    "kl_horizon": 64,
                },
                reward_model=rm["path"],
            )
            policy = ppo["path"]
            new = judge(policy, seed=1000 + rnd)
            new_flat = [hidden_reward(x) for g in new for x in g]
            old_flat = [hidden_reward(x) for g in base_replies for x in g]
            from trainer.reward import load_reward_model

            metrics = json.loads((Path(policy) / "metrics.jsonl").read_text().splitlines()[-1])
            rows.append(
                {
                    "round": rnd,
                    "labels": n_labels,
                    "hidden_reward": mean_hidden(new),
                    **win_rate(new_flat, old_flat),
                    "rm_accuracy": rm_accuracy(
                        load_reward_model(rm["path"]), held_out, judge(policy, seed=2000 + rnd)
                    ),
                    "kl_to_round0": kl_to(
                        round0, policy, held_out, [g[0] for g in new], args.temperature
                    ),
                    "ppo_kl_last": metrics["kl"],
                    "seconds": time.perf_counter() - t_start,
                }
            )
            print(table(rows, list(rows[-1])), flush=True)
    finally:
        product.close()
    path = save(f"loop-{args.weighting}", {"args": vars(args), "rounds": rows})
    print(f"results: {path} ({time.perf_counter() - t_start:.0f} s)")


if __name__ == "__main__":
    main()
