"""PPO against TRL 1.9.0's PPOTrainer at matched KL: a β sweep, a reward-vs-KL frontier, speed.

A random tiny Llama policy; a reward model trained first by our `rm` trainer on the same
backbone (TRL feeds the policy's tokens straight into the reward model, so both share it) on
rankings where responses with more marker words are better; raw RM scores on both sides. Same
batch (16 episodes), minibatches (2), PPO epochs (4), response length, temperature and learning
rate. KL is one quantity on both sides: per response, the sum over its tokens of
log π − log π_ref (TRL's `objective/kl`, our `kl`), averaged over the last fifth of the steps.

For each fixed β of `--betas` both trainers run once; the frontier is the reward gained
(last − first score) against that KL, drawn into bench/results/train_ppo.png beside the JSON.
TRL's reward at our KL is read off its frontier by linear interpolation. Then our adaptive
controller runs alone with `--kl-target` (TRL 1.9 has none): the share of steps after warm-up
whose KL lies within ±20% of the target is reported.

    .venv-trl19/bin/python bench/train_ppo.py              # with trl==1.9.0 (see README)
    python bench/train_ppo.py --skip-trl                    # ours alone (trl ≥ 1.10 has no PPO)
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import metrics_rows, rankings, save, sentence, table, write_jsonl  # noqa: E402
from trainer import ppo, reward  # noqa: E402
from trainer.configs import PPOConfig, RewardConfig  # noqa: E402
from trainer.data import render_prompt  # noqa: E402
from trainer.runtime import load_tokenizer  # noqa: E402
from trainer.tiny import build_tiny_causal_lm  # noqa: E402


def run_ours(policy: str, rm: str, prompts: str, args, out: Path, beta: float, **kw) -> dict:
    """trainer.ppo with the reward model; curves from metrics.jsonl."""
    cfg = PPOConfig(
        model=policy,
        reward_model=rm,
        train_file=prompts,
        eval_fraction=0.0,
        output_dir=str(out),
        max_steps=args.steps,
        batch_size=args.batch_size,
        mini_batch_size=args.batch_size // 2,
        response_length=args.response_length,
        learning_rate=args.lr,
        temperature=args.temperature,
        kl_coef=beta,
        save_every=10**9,
        **({"adaptive_kl": False} | kw),
    )
    t0 = time.perf_counter()
    ppo.train(cfg)
    wall = time.perf_counter() - t0
    rows = metrics_rows(out)
    loop_s = sum(args.batch_size / r["episodes_per_s"] for r in rows)
    return {
        "trainer": "ours",
        "beta": beta,
        "episodes_per_s": len(rows) * args.batch_size / loop_s,
        "wall_s": wall,
        "score": [r["score"] for r in rows],
        "kl": [r["kl"] for r in rows],
        "kl_coef": [r["kl_coef"] for r in rows],
    }


def run_trl(policy: str, rm: str, prompt_texts: list[str], args, out: Path, beta: float) -> dict:
    """TRL 1.9.0's experimental PPOTrainer on the same prompts, models and settings."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification
    from trl.experimental.ppo import PPOConfig as TRLPPOConfig
    from trl.experimental.ppo import PPOTrainer

    tok = load_tokenizer(policy, padding_side="left")
    ids = [tok(t)["input_ids"] for t in prompt_texts]
    targs = TRLPPOConfig(
        output_dir=str(out),
        per_device_train_batch_size=args.batch_size,
        num_mini_batches=2,
        num_ppo_epochs=4,
        total_episodes=args.steps * args.batch_size,
        response_length=args.response_length,
        temperature=args.temperature,
        learning_rate=args.lr,
        kl_coef=beta,
        stop_token="eos",
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        num_sample_generations=0,
        use_cpu=not torch.cuda.is_available(),
        bf16=False,
        seed=42,
    )
    trainer = PPOTrainer(
        args=targs,
        processing_class=tok,
        model=AutoModelForCausalLM.from_pretrained(policy),
        ref_model=AutoModelForCausalLM.from_pretrained(policy),
        reward_model=AutoModelForSequenceClassification.from_pretrained(rm, num_labels=1),
        value_model=AutoModelForSequenceClassification.from_pretrained(policy, num_labels=1),
        train_dataset=Dataset.from_list([{"input_ids": x} for x in ids]),
    )
    t0 = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - t0
    logs = [x for x in trainer.state.log_history if "objective/scores" in x]
    return {
        "trainer": "TRL 1.9.0 PPOTrainer",
        "beta": beta,
        "episodes_per_s": args.steps * args.batch_size / wall,
        "wall_s": wall,
        "score": [x["objective/scores"] for x in logs],
        "kl": [x["objective/kl"] for x in logs],
    }


def summarise(res: dict) -> dict:
    """Reward gained and KL over the last fifth of the steps."""
    n = max(1, len(res["score"]) // 5)
    first = sum(res["score"][:n]) / n
    last = sum(res["score"][-n:]) / n
    return {
        **res,
        "score_first": first,
        "score_last": last,
        "gain": last - first,
        "kl_last": sum(res["kl"][-n:]) / n,
    }


def interpolate(x: float, points: list[tuple[float, float]]) -> float | None:
    """y at x on the piecewise-linear curve through points (None outside their x range)."""
    points = sorted(points)
    for (x0, y0), (x1, y1) in zip(points, points[1:], strict=False):
        if x0 <= x <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return None


def plot(results: list[dict], path: Path) -> None:
    """Reward gained against KL, one line per trainer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name in dict.fromkeys(r["trainer"] for r in results):
        pts = sorted((r["kl_last"], r["gain"], r["beta"]) for r in results if r["trainer"] == name)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name)
        for kl, gain, beta in pts:
            ax.annotate(
                f"β={beta:g}", (kl, gain), fontsize=7, textcoords="offset points", xytext=(3, 3)
            )
    ax.set_xlabel("KL to reference (nats per response)")
    ax.set_ylabel("reward gained (last − first)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--steps", type=int, default=24, help="PPO steps (rollout batches)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--response-length", type=int, default=24)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--betas", type=float, nargs="+", default=[0.02, 0.1, 0.5])
    p.add_argument("--kl-target", type=float, default=3.0, help="adaptive run (0 → skip it)")
    p.add_argument("--rm-steps", type=int, default=60, help="reward-model training steps")
    p.add_argument("--skip-trl", action="store_true")
    args = p.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-ppo-"))
    policy = str(build_tiny_causal_lm(work / "policy", hidden_size=args.hidden))
    rm_cfg = RewardConfig(
        model=policy,
        train_file=write_jsonl(work / "rankings.jsonl", rankings(256, 4, seed=3, words=8)),
        output_dir=str(work / "rm"),
        max_steps=args.rm_steps,
        batch_size=8,
        learning_rate=1e-3,
        normalize=False,
        save_every=10**9,
    )
    reward.train(rm_cfg)
    r = random.Random(0)
    prompts = [{"prompt": sentence(r, 6)} for _ in range(args.steps * args.batch_size)]
    prompt_file = write_jsonl(work / "prompts.jsonl", prompts)

    tok = load_tokenizer(policy)
    texts = [render_prompt(tok, x["prompt"]) for x in prompts]
    results = []
    for beta in args.betas:  # interleaved, so a busy spell hits both sides
        out = work / f"beta-{beta:g}"
        results.append(
            summarise(run_ours(policy, rm_cfg.output_dir, prompt_file, args, out / "ours", beta))
        )
        if not args.skip_trl:
            try:
                results.append(
                    summarise(run_trl(policy, rm_cfg.output_dir, texts, args, out / "trl", beta))
                )
            except ImportError as e:
                print(f"TRL PPO unavailable ({e}); reporting ours alone", file=sys.stderr)
                args.skip_trl = True
    trl_front = [(x["kl_last"], x["gain"]) for x in results if x["trainer"] != "ours"]
    for res in results:
        if res["trainer"] == "ours" and trl_front:
            res["trl_gain_at_this_kl"] = interpolate(res["kl_last"], trl_front)
    cols = ["trainer", "beta", "episodes_per_s", "score_first", "score_last", "gain", "kl_last"]
    cols += ["trl_gain_at_this_kl"] if trl_front else []
    print(table(results, cols))
    speed = {
        name: sum(x["episodes_per_s"] for x in results if x["trainer"] == name)
        / max(1, sum(x["trainer"] == name for x in results))
        for name in dict.fromkeys(x["trainer"] for x in results)
    }
    print(
        "episodes/s (mean over the sweep): " + ", ".join(f"{k} {v:.1f}" for k, v in speed.items())
    )

    adaptive = None
    if args.kl_target:
        res = run_ours(
            policy,
            rm_cfg.output_dir,
            prompt_file,
            args,
            work / "adaptive",
            args.betas[0],
            kl_target=args.kl_target,
            adaptive_kl=True,
            kl_horizon=args.batch_size * 4,
        )
        res["adaptive_kl"] = True
        after = res["kl"][len(res["kl"]) // 3 :]  # warm-up: the first third of the steps
        within = [abs(k / args.kl_target - 1) <= 0.2 for k in after]
        adaptive = {
            **summarise(res),
            "kl_target": args.kl_target,
            "share_within_20pct": sum(within) / len(within),
            "kl_after_warmup_mean": sum(after) / len(after),
        }
        print(
            f"adaptive (target {args.kl_target}): KL after warm-up "
            f"mean {adaptive['kl_after_warmup_mean']:.2f}, "
            f"{adaptive['share_within_20pct']:.0%} of steps within ±20%"
        )
    path = save(
        "train_ppo",
        {"args": vars(args), "results": results, "episodes_per_s": speed, "adaptive": adaptive},
    )
    png = path.with_suffix(".png")
    plot(results, png)
    print(f"results: {path}\nfrontier: {png}")


if __name__ == "__main__":
    main()
