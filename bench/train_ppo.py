"""PPO episodes/s and score/KL curves: ours, and TRL 1.9.0's experimental PPOTrainer if present.

A random tiny Llama policy; a reward model trained first by our `rm` trainer on the same
backbone (so TRL, which feeds the policy's tokens straight into the reward model, can share it)
on rankings where responses with more marker words are better; raw (un-normalised) RM scores on
both sides. Same batch (16 episodes), minibatches (2), PPO epochs (4), response length,
temperature, learning rate and a fixed β (TRL has no adaptive KL controller). Each trainer runs
`--repeats` times, interleaved; the fastest run's episodes/s counts.

    .venv-bench/bin/python bench/train_ppo.py --skip-trl      # ours only (trl ≥ 1.10 has no PPO)
    .venv-trl19/bin/python bench/train_ppo.py                  # with trl==1.9.0 installed
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


def run_ours(policy: str, rm: str, prompts: str, args, out: Path) -> dict:
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
        kl_coef=args.kl_coef,
        adaptive_kl=False,
        save_every=10**9,
    )
    t0 = time.perf_counter()
    ppo.train(cfg)
    wall = time.perf_counter() - t0
    rows = metrics_rows(out)
    loop_s = sum(args.batch_size / r["episodes_per_s"] for r in rows)
    return {
        "trainer": "ours",
        "episodes_per_s": len(rows) * args.batch_size / loop_s,
        "wall_s": wall,
        "score": [r["score"] for r in rows],
        "kl": [r["kl"] for r in rows],
    }


def run_trl(policy: str, rm: str, prompt_texts: list[str], args, out: Path) -> dict:
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
        kl_coef=args.kl_coef,
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
        "episodes_per_s": args.steps * args.batch_size / wall,
        "wall_s": wall,
        "score": [x["objective/scores"] for x in logs],
        "kl": [x["objective/kl"] for x in logs],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--steps", type=int, default=32, help="PPO steps (rollout batches)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--response-length", type=int, default=24)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--kl-coef", type=float, default=0.05)
    p.add_argument("--repeats", type=int, default=2, help="runs per trainer; the fastest counts")
    p.add_argument("--skip-trl", action="store_true")
    args = p.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-ppo-"))
    policy = str(build_tiny_causal_lm(work / "policy", hidden_size=args.hidden))
    rm_cfg = RewardConfig(
        model=policy,
        train_file=write_jsonl(work / "rankings.jsonl", rankings(256, 4, seed=3, words=8)),
        output_dir=str(work / "rm"),
        max_steps=60,
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
    ours_runs, trl_runs = [], []
    for rep in range(args.repeats):  # interleaved, so a busy spell hits both sides
        out = work / f"r{rep}"
        ours_runs.append(run_ours(policy, rm_cfg.output_dir, prompt_file, args, out / "ours"))
        if not args.skip_trl:
            try:
                trl_runs.append(run_trl(policy, rm_cfg.output_dir, texts, args, out / "trl"))
            except ImportError as e:
                print(f"TRL PPO unavailable ({e}); reporting ours alone", file=sys.stderr)
                args.skip_trl = True
    # Seeded runs repeat the same curves; the fastest run counts (neighbours only slow us down).
    results = [
        {
            **max(runs, key=lambda x: x["episodes_per_s"]),
            "repeats": [x["episodes_per_s"] for x in runs],
        }
        for runs in (ours_runs, trl_runs)
        if runs
    ]
    for res in results:
        n = max(1, len(res["score"]) // 5)
        res["score_first"] = sum(res["score"][:n]) / n
        res["score_last"] = sum(res["score"][-n:]) / n
        res["kl_last"] = sum(res["kl"][-n:]) / n
    cols = ["trainer", "episodes_per_s", "wall_s", "score_first", "score_last", "kl_last"]
    print(table(results, cols))
    for res in results:
        every = max(1, len(res["score"]) // 10)
        curve = [
            {"step": i + 1, "score": res["score"][i], "kl": res["kl"][i]}
            for i in range(0, len(res["score"]), every)
        ]
        print(f"\n{res['trainer']}: score / KL per step")
        print(table(curve, ["step", "score", "kl"]))
    print(f"results: {save('train_ppo', {'args': vars(args), 'results': results})}")


if __name__ == "__main__":
    main()
