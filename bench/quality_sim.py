"""Labeler quality on simulated labelers of known noise: reliability, weighted consensus.

Run from the repository root:  .venv/bin/python bench/quality_sim.py
(crowd-kit, from the `bench` extra, adds its NoisyBradleyTerry as the cross-check.)

Setup (flags change it): 500 prompts with K=4 responses of hidden utility u ~ N(0, 1), each
ranked by 3 of 30 labelers drawn at random, responses shown in a random order. Careful
labelers rank by Plackett–Luce on β·u (β uniform in 1…3, their temperature 1/β); 20% click
at random; 10% are position-biased (the first shown response goes first, the rest by
Plackett–Luce). Reports the AUROC of `reliability` for telling bad labelers (random or
position-biased) from careful ones, Kendall τ of the consensus to the true order without and
with reliability weights, the same for crowd-kit's NoisyBT on the expanded pairs, and the time
to fit. Prints a table and writes bench/results/quality_sim.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from itertools import combinations
from pathlib import Path

import numpy as np

from app.aggregation.consensus import consensus_ranking, kendall_tau
from app.quality.reliability import fit_reliability

RESULTS = Path(__file__).parent / "results" / "quality_sim.json"


def simulate(args: argparse.Namespace) -> tuple[dict, list, np.ndarray]:
    """Labelers, their rankings (prompt, labeler, shown order, ranking), true utilities."""
    rng = np.random.default_rng(args.seed)
    n_random = round(args.labelers * args.random_share)
    n_position = round(args.labelers * args.position_share)
    kinds = ["random"] * n_random + ["position"] * n_position
    kinds += ["careful"] * (args.labelers - len(kinds))
    beta = rng.uniform(1.0, 3.0, args.labelers)
    utility = rng.normal(size=(args.prompts, args.k))

    def pl(order: np.ndarray, scale: float) -> list[int]:
        """Plackett–Luce sample over `order` (response indices) with utilities scale·u."""
        left, out = list(order), []
        while left:
            w = np.exp(scale * utility[p, left] - np.max(scale * utility[p, left]))
            out.append(left.pop(int(rng.choice(len(left), p=w / w.sum()))))
        return out

    labels = []
    for p in range(args.prompts):
        for j in rng.choice(args.labelers, size=args.overlap, replace=False):
            shown = rng.permutation(args.k)
            if kinds[j] == "random":
                ranking = list(rng.permutation(shown))
            elif kinds[j] == "position":
                ranking = [int(shown[0])] + pl(shown[1:], beta[j])
            else:
                ranking = pl(shown, beta[j])
            labels.append((p, int(j), [int(x) for x in shown], ranking))
    return {"kinds": kinds, "beta": beta.tolist()}, labels, utility


def auroc(bad: list[float], good: list[float]) -> float:
    """P(a bad labeler scores below a good one) for the score `reliability` (ties half)."""
    wins = sum((b < g) + 0.5 * (b == g) for b in bad for g in good)
    return wins / (len(bad) * len(good))


def mean_tau(consensus: dict[int, list[int]], utility: np.ndarray) -> float:
    """Mean Kendall τ of each prompt's consensus to its true order."""
    taus = []
    for p, ranking in consensus.items():
        truth = list(np.argsort(-utility[p]))
        taus.append(kendall_tau(ranking, [int(x) for x in truth]))
    return float(np.mean(taus))


def by_prompt(labels: list) -> dict[int, list[tuple[int, list[int]]]]:
    out: dict[int, list[tuple[int, list[int]]]] = {}
    for p, j, _, ranking in labels:
        out.setdefault(p, []).append((j, ranking))
    return out


def crowdkit_noisy_bt(labels: list, n_labelers: int) -> tuple[dict, dict, float] | None:
    """crowd-kit NoisyBradleyTerry on the expanded pairs: consensus, worker skill, seconds."""
    try:
        import pandas as pd
        from crowdkit.aggregation import NoisyBradleyTerry
    except ImportError:
        return None
    rows = []
    for p, j, shown, ranking in labels:
        for a, b in combinations(ranking, 2):  # a beat b; left = the one shown first
            left, right = (a, b) if shown.index(a) < shown.index(b) else (b, a)
            rows.append(
                {"worker": j, "left": f"{p}:{left}", "right": f"{p}:{right}", "label": f"{p}:{a}"}
            )
    frame = pd.DataFrame(rows)
    start = time.perf_counter()
    model = NoisyBradleyTerry(n_iter=100, random_state=0).fit(frame)
    seconds = time.perf_counter() - start
    scores = model.scores_.to_dict()
    consensus: dict[int, list[int]] = {}
    for p in {p for p, *_ in labels}:
        items = [k for k in range(4) if f"{p}:{k}" in scores]
        consensus[p] = sorted(items, key=lambda k: -scores[f"{p}:{k}"])
    skills = model.skills_.to_dict()
    return consensus, {j: skills.get(j, 0.0) for j in range(n_labelers)}, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=500)
    parser.add_argument("--labelers", type=int, default=30)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--overlap", type=int, default=3)
    parser.add_argument("--random-share", type=float, default=0.2)
    parser.add_argument("--position-share", type=float, default=0.1)
    parser.add_argument("--seeds", type=int, default=5, help="independent simulations")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-crowdkit", action="store_true")
    args = parser.parse_args()

    rows = []
    for seed in range(args.seed, args.seed + args.seeds):
        args.seed = seed
        truth, labels, utility = simulate(args)
        triples = [(p, j, ranking) for p, j, _, ranking in labels]
        start = time.perf_counter()
        fit = fit_reliability(triples)
        fit_seconds = time.perf_counter() - start
        reliability = {j: fit.labelers[j].value for j in fit.labelers}
        bad = [reliability[j] for j, k in enumerate(truth["kinds"]) if k != "careful"]
        good = [reliability[j] for j, k in enumerate(truth["kinds"]) if k == "careful"]
        prompts = by_prompt(labels)
        plain = {p: list(consensus_ranking([r for _, r in v]).ranking) for p, v in prompts.items()}
        weighted = {
            p: list(
                consensus_ranking([r for _, r in v], weights=[reliability[j] for j, _ in v]).ranking
            )
            for p, v in prompts.items()
        }
        fitted = {p: fit.consensus(p) for p in prompts}
        row = {
            "seed": seed,
            "auroc": auroc(bad, good),
            "tau_unweighted": mean_tau(plain, utility),
            "tau_weighted": mean_tau(weighted, utility),
            "tau_model": mean_tau(fitted, utility),
            "fit_s": fit_seconds,
            "r_careful": float(np.mean(good)),
            "r_random": float(
                np.mean([reliability[j] for j, k in enumerate(truth["kinds"]) if k == "random"])
            ),
            "r_position": float(
                np.mean([reliability[j] for j, k in enumerate(truth["kinds"]) if k == "position"])
            ),
        }
        cross = None if args.skip_crowdkit else crowdkit_noisy_bt(labels, args.labelers)
        if cross is not None:
            consensus, skills, seconds = cross
            row["noisybt_tau"] = mean_tau(consensus, utility)
            row["noisybt_auroc"] = auroc(
                [skills[j] for j, k in enumerate(truth["kinds"]) if k != "careful"],
                [skills[j] for j, k in enumerate(truth["kinds"]) if k == "careful"],
            )
            row["noisybt_s"] = seconds
        rows.append(row)
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}))
    mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k != "seed"}
    print(f"\nmean over {len(rows)} simulations (load average {os.getloadavg()[0]:.1f})")
    for k, v in mean.items():
        print(f"  {k:16} {v:.4f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "args": vars(args),
                "machine": {
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "load_average": os.getloadavg(),
                },
                "runs": rows,
                "mean": mean,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
