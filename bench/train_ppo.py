"""PPO against TRL 1.9.0's PPOTrainer at matched KL: a β sweep, a reward-vs-KL frontier, speed.

The task has a learning signal a tiny model can follow. A tiny Llama is SFT'd on replies of
eight words in which one word in ten is the marker word; a reward model (our `rm` trainer, on
the SFT policy's backbone: TRL feeds the policy's token ids straight into the reward model, so
both must share a tokenizer) learns rankings where more markers are better. PPO then starts from
the SFT policy; both trainers get the same prompts, models, batch (16 episodes), minibatches (2),
PPO epochs (4), response length, temperature and learning rate, and the raw RM score.

Both final policies are judged by one function (`evaluate`): replies sampled on held-out prompts,
their RM score (the reward both optimised), their markers per reply (the ground truth the RM
approximates) and their KL to the SFT policy: per reply, the sum over its tokens of
log π − log π_ref (`trainer.ppo.sequence_kl`; TRL's `objective/kl` is the same sum). The
frontier is the held-out score gained over the SFT policy against that KL, one point per β of
`--betas`, drawn into bench/results/train_ppo.png beside the JSON; TRL's gain at each of our
KLs is read off its frontier (through the SFT policy at KL 0) by linear interpolation. Then our
adaptive controller runs alone with `--kl-target` (TRL 1.9 has none) and the share of steps after
warm-up whose KL lies within ±20% of the target is reported.

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

from bench.common import (  # noqa: E402
    MARKER,
    WORDS,
    metrics_rows,
    rankings,
    save,
    sentence,
    table,
    write_jsonl,
)
from trainer import ppo, reward, sft  # noqa: E402
from trainer.configs import PPOConfig, RewardConfig, SFTConfig  # noqa: E402
from trainer.data import render_prompt  # noqa: E402
from trainer.factories import load_tokenizer  # noqa: E402
from trainer.reward import load_reward_model  # noqa: E402
from trainer.tiny import build_tiny_causal_lm  # noqa: E402

TRL = "TRL 1.9.0 PPOTrainer"


def run_ours(
    policy: str, rm: str, prompts: str, args, out: Path, beta: float, seed: int = 42, **kw
) -> dict:
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
        seed=seed,
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
        "seed": seed,
        "model": str(out),
        "episodes_per_s": len(rows) * args.batch_size / loop_s,
        "wall_s": wall,
        "score": [r["score"] for r in rows],
        "kl": [r["kl"] for r in rows],
        "kl_coef": [r["kl_coef"] for r in rows],
    }


def run_trl(
    policy: str, rm: str, prompt_texts: list[str], args, out: Path, beta: float, seed: int = 42
) -> dict:
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
        seed=seed,
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
    trainer.save_model(str(out / "policy"))
    logs = [x for x in trainer.state.log_history if "objective/scores" in x]
    return {
        "trainer": TRL,
        "beta": beta,
        "seed": seed,
        "model": str(out / "policy"),
        "episodes_per_s": args.steps * args.batch_size / wall,
        "wall_s": wall,
        "score": [x["objective/scores"] for x in logs],
        "kl": [x["objective/kl"] for x in logs],
    }


@torch.no_grad()
def evaluate(policy_dir: str, ref_dir: str, rm, prompts: list[str], args, seed: int) -> dict:
    """One judge for every policy: held-out RM score, markers per reply and KL to the reference.

    Replies are sampled as PPO samples them (temperature, response length, cut after EOS); the
    KL is `sequence_kl` on those replies, the score is the RM's on their text.
    """
    from transformers import AutoModelForCausalLM

    tok = load_tokenizer(ref_dir, padding_side="left")
    policy = ppo.PolicyWithValue(AutoModelForCausalLM.from_pretrained(policy_dir)).eval()
    ref = ppo.PolicyWithValue(AutoModelForCausalLM.from_pretrained(ref_dir)).eval()
    cfg = PPOConfig(response_length=args.response_length, temperature=args.temperature)
    torch.manual_seed(seed)
    queries = [tok(render_prompt(tok, p))["input_ids"] for p in prompts]
    ro = ppo.rollout(policy, ref, tok, queries, cfg, "cpu")
    kl = ppo.sequence_kl(ro["logprobs"], ro["ref_logprobs"], ro["mask"])  # (N,)
    texts: list[str] = []

    def score_fn(prompts: list, replies: list[str], ids: list) -> torch.Tensor:
        texts.extend(replies)
        return rm.score_responses(prompts, replies)

    score = ppo.score_responses(score_fn, tok, prompts, ro)
    return {
        "eval_score": float(score.mean()),
        "eval_kl": float(kl.mean()),
        "eval_markers": sum(t.split().count(MARKER) for t in texts) / len(texts),
    }


def summarise(res: dict) -> dict:
    """Training curves in brief: score over the first and last fifth of the steps, last KL."""
    n = max(1, len(res["score"]) // 5)
    return {
        **res,
        "score_first": sum(res["score"][:n]) / n,
        "score_last": sum(res["score"][-n:]) / n,
        "kl_last": sum(res["kl"][-n:]) / n,
    }


def interpolate(x: float, points: list[tuple[float, float]]) -> float | None:
    """y at x on the piecewise-linear curve through points (None outside their x range)."""
    points = sorted(points)
    for (x0, y0), (x1, y1) in zip(points, points[1:], strict=False):
        if x0 <= x <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return None


def mean_points(results: list[dict]) -> list[dict]:
    """One point per (trainer, β): the mean over seeds of each numeric figure."""
    keys = ["episodes_per_s", "eval_kl", "eval_score", "gain", "eval_markers"]
    out = []
    for name, beta in dict.fromkeys((r["trainer"], r["beta"]) for r in results):
        runs = [r for r in results if r["trainer"] == name and r["beta"] == beta]
        out.append(
            {"trainer": name, "beta": beta, "seeds": len(runs)}
            | {k: sum(r[k] for r in runs) / len(runs) for k in keys}
        )
    return out


def frontier(results: list[dict], name: str) -> list[tuple[float, float]]:
    """(held-out KL, score gained) of a trainer's runs, with the SFT policy's (0, 0)."""
    return [(0.0, 0.0)] + sorted((r["eval_kl"], r["gain"]) for r in results if r["trainer"] == name)


def plot(points: list[dict], results: list[dict], path: Path) -> bool:
    """Held-out score gained against KL: a line through each trainer's means over seeds, each
    run a faint dot; False without matplotlib."""
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for name in dict.fromkeys(r["trainer"] for r in points):
        pts = frontier(points, name)
        (line,) = ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name)
        runs = [r for r in results if r["trainer"] == name]
        ax.scatter(
            [r["eval_kl"] for r in runs],
            [r["gain"] for r in runs],
            s=8,
            alpha=0.35,
            color=line.get_color(),
        )
        for r in points:
            if r["trainer"] == name:
                ax.annotate(
                    f"β={r['beta']:g}",
                    (r["eval_kl"], r["gain"]),
                    fontsize=7,
                    textcoords="offset points",
                    xytext=(3, -9 if name == TRL else 3),
                )
    ax.set_xlabel("KL to the SFT policy (nats per reply, held-out)")
    ax.set_ylabel("RM score gained (held-out)")
    ax.set_title("PPO frontier: more reward at the same KL is better", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return True


def demonstrations(n: int, seed: int, marker_rate: float) -> list[dict]:
    """SFT records: a short prompt, a reply of 8 words in which each word is the marker with
    probability `marker_rate` (so the SFT policy writes words, some of them markers)."""
    r = random.Random(seed)
    out = []
    for _ in range(n):
        words = [MARKER if r.random() < marker_rate else r.choice(WORDS) for _ in range(8)]
        out.append({"prompt": sentence(r, 6), "completion": " ".join(words)})
    return out


def reward_rankings(n: int, eos: str) -> list[dict]:
    """Rankings by marker count; half of them with every response ending in the EOS text.

    TRL scores a response with its EOS token (the RM reads the last token); ours scores the text
    without it. Training on both forms lets the one RM read both sides.
    """
    out = rankings(n, 4, seed=3, words=8)
    for rec in out[::2]:
        rec["responses"] = [x + eos for x in rec["responses"]]
    return out


def prepare(args, work: Path) -> tuple[str, str]:
    """The SFT policy and the reward model trained on its backbone: (policy dir, RM dir)."""
    base = str(build_tiny_causal_lm(work / "base", hidden_size=args.hidden))
    sft_cfg = SFTConfig(
        model=base,
        train_file=write_jsonl(work / "demos.jsonl", demonstrations(512, 1, args.marker_rate)),
        output_dir=str(work / "sft"),
        eval_fraction=0.0,
        max_steps=args.sft_steps,
        batch_size=16,
        learning_rate=3e-3,
        max_length=64,
        save_every=10**9,
    )
    sft.train(sft_cfg)
    eos = load_tokenizer(base).eos_token
    rm_cfg = RewardConfig(
        model=sft_cfg.output_dir,
        train_file=write_jsonl(work / "rankings.jsonl", reward_rankings(256, eos)),
        output_dir=str(work / "rm"),
        eval_fraction=0.0,
        max_steps=args.rm_steps,
        batch_size=8,
        learning_rate=1e-3,
        max_length=64,
        normalize=False,
        save_every=10**9,
    )
    reward.train(rm_cfg)
    return sft_cfg.output_dir, rm_cfg.output_dir


def adaptive_run(policy: str, rm: str, prompt_file: str, args, out: Path) -> dict:
    """Our adaptive controller towards --kl-target: KL after warm-up against the target."""
    res = run_ours(
        policy,
        rm,
        prompt_file,
        argparse.Namespace(**(vars(args) | {"steps": args.adaptive_steps})),
        out,
        args.kl_init,
        kl_target=args.kl_target,
        adaptive_kl=True,
        kl_horizon=args.kl_horizon,
    )
    warm = len(res["kl"]) // 3  # warm-up: the first third of the steps
    after = res["kl"][warm:]
    # A step's KL is the mean of only batch_size replies (itself noisy by ~±25% here), so the
    # KL over 4 steps (64 replies) is reported too.
    window = [sum(res["kl"][i - 3 : i + 1]) / 4 for i in range(max(warm, 3), len(res["kl"]))]

    def share(xs: list[float]) -> float:
        return sum(abs(k / args.kl_target - 1) <= 0.2 for k in xs) / len(xs)

    return {
        **summarise(res),
        "adaptive_kl": True,
        "kl_target": args.kl_target,
        "share_within_20pct": share(after),
        "share_within_20pct_4_steps": share(window),
        "kl_after_warmup_mean": sum(after) / len(after),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--steps", type=int, default=16, help="PPO steps (rollout batches)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--response-length", type=int, default=12)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--betas", type=float, nargs="+", default=[0.02, 0.1, 0.5])
    p.add_argument("--kl-target", type=float, default=3.0, help="adaptive run (0 → skip it)")
    p.add_argument("--kl-horizon", type=int, default=16, help="adaptive controller horizon")
    p.add_argument("--kl-init", type=float, default=0.5, help="adaptive controller's first β")
    p.add_argument("--adaptive-steps", type=int, default=32, help="steps of the adaptive run")
    p.add_argument("--sft-steps", type=int, default=40, help="SFT steps of the starting policy")
    p.add_argument("--marker-rate", type=float, default=0.1, help="marker share in the demos")
    p.add_argument("--rm-steps", type=int, default=60, help="reward-model training steps")
    p.add_argument("--eval-prompts", type=int, default=128, help="held-out prompts judged")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads for both trainers (on a shared machine more threads spin-wait)",
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[42], help="one run per seed and β")
    p.add_argument("--skip-trl", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    t_start = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="bench-ppo-"))
    policy, rm_dir = prepare(args, work)
    r = random.Random(0)
    n_prompts = max(args.steps, args.adaptive_steps) * args.batch_size
    prompts = [{"prompt": sentence(r, 6)} for _ in range(n_prompts)]
    prompt_file = write_jsonl(work / "prompts.jsonl", prompts)
    held_out = [sentence(r, 6) for _ in range(args.eval_prompts)]
    rm = load_reward_model(rm_dir)

    def judge(model_dir: str) -> dict:
        return evaluate(model_dir, policy, rm, held_out, args, seed=1234)

    base = judge(policy)
    tok = load_tokenizer(policy)
    texts = [render_prompt(tok, x["prompt"]) for x in prompts]
    results = []
    for seed in args.seeds:
        for beta in args.betas:  # interleaved, so a busy spell hits both sides
            out = work / f"seed-{seed}-beta-{beta:g}"
            for name in ["ours"] + ([] if args.skip_trl else [TRL]):
                try:
                    if name == "ours":
                        res = run_ours(policy, rm_dir, prompt_file, args, out / "ours", beta, seed)
                    else:
                        res = run_trl(policy, rm_dir, texts, args, out / "trl", beta, seed)
                except ImportError as e:
                    print(f"TRL PPO unavailable ({e}); reporting ours alone", file=sys.stderr)
                    args.skip_trl = True
                    continue
                res = summarise(res)
                res |= judge(res["model"])
                res["gain"] = res["eval_score"] - base["eval_score"]
                results.append(res)
    points = mean_points(results)
    if not args.skip_trl:
        trl_front = frontier(points, TRL)
        for res in points:
            if res["trainer"] == "ours":
                res["trl_gain_at_this_kl"] = interpolate(res["eval_kl"], trl_front)
    cols = ["trainer", "beta", "episodes_per_s", "eval_kl", "eval_score", "gain", "eval_markers"]
    cols += ["trl_gain_at_this_kl"] if not args.skip_trl else []
    print(
        f"SFT policy (held-out): score {base['eval_score']:.3f}, "
        f"markers/reply {base['eval_markers']:.3f}"
    )
    print(f"mean over seeds {args.seeds}:")
    print(table(points, cols))
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
        adaptive = adaptive_run(policy, rm_dir, prompt_file, args, work / "adaptive")
        print(
            f"adaptive (target {args.kl_target}): KL after warm-up "
            f"mean {adaptive['kl_after_warmup_mean']:.2f}, "
            f"{adaptive['share_within_20pct']:.0%} of steps within ±20% "
            f"({adaptive['share_within_20pct_4_steps']:.0%} of 4-step means); "
            f"KL per step {' '.join(f'{k:.1f}' for k in adaptive['kl'])}"
        )
    wall = time.perf_counter() - t_start
    path = save(
        "train_ppo",
        {
            "args": vars(args),
            "sft_policy": base,
            "results": results,
            "frontier": points,
            "episodes_per_s": speed,
            "adaptive": adaptive,
            "wall_s": wall,
        },
    )
    png = path.with_suffix(".png")
    drawn = plot(points, results, png)
    print(f"results: {path}" + (f"\nfrontier: {png}" if drawn else " (no matplotlib: no plot)"))
    print(f"wall time {wall:.0f} s")


if __name__ == "__main__":
    main()
