"""Generation throughput: `python -m trainer generate` against a plain `model.generate` loop.

Both sample the same prompts from the same model with the same settings. Ours is started as a
user starts it (a subprocess with a config file), batches left-padded prompts sorted by length
and reports completion tokens per second of its generate calls in summary.json; the peer calls
`model.generate` once per (prompt, sample), the loop most scripts write, timed the same way
(model loading excluded from both). With greedy decoding (the default) both must produce the
same text, so the share of identical responses is printed as the quality figure beside speed.

    .venv/bin/python bench/generate.py                       # random Llama, hidden 256, CPU
    .venv/bin/python bench/generate.py --prompts 32 --batch-size 8 16 32 --hidden 128
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import save, sentence, table, write_jsonl  # noqa: E402
from trainer.data import render_prompt  # noqa: E402
from trainer.tiny import build_tiny_causal_lm  # noqa: E402


def plain_loop(model_dir: str, prompts: list[dict], args: argparse.Namespace) -> dict:
    """One `model.generate` call per (prompt, sample): tokens/s and the texts."""
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    texts, tokens, seconds = {}, 0, 0.0
    sample = args.temperature > 0
    for p in prompts:
        ids = tok(render_prompt(tok, p["prompt"]), return_tensors="pt")
        for i in range(args.n):
            torch.manual_seed(args.seed + i)
            t0 = time.perf_counter()
            with torch.no_grad():
                out = model.generate(
                    **ids,
                    max_new_tokens=args.max_new_tokens,
                    do_sample=sample,
                    temperature=args.temperature if sample else None,
                    top_p=1.0 if sample else None,
                    pad_token_id=tok.pad_token_id,
                    eos_token_id=tok.eos_token_id,
                )
            seconds += time.perf_counter() - t0
            new = out[0, ids["input_ids"].size(1) :].tolist()
            if tok.eos_token_id in new:
                new = new[: new.index(tok.eos_token_id)]
            tokens += len(new)
            texts[(str(p["prompt_id"]), i)] = tok.decode(new, skip_special_tokens=True)
    return {"tokens": tokens, "seconds": seconds, "texts": texts}


def ours(model_dir: str, prompts_file: str, batch_size: int, args: argparse.Namespace) -> dict:
    """`python -m trainer generate --config run.json`: tokens/s from its summary and the texts."""
    with tempfile.TemporaryDirectory() as tmp:
        config = {
            "model": model_dir,
            "train_file": prompts_file,
            "output_dir": str(Path(tmp) / "out"),
            "n": args.n,
            "max_new_tokens": args.max_new_tokens,
            "temperature": args.temperature,
            "batch_size": batch_size,
            "seed": args.seed,
            "engine": args.engine,
        }
        (Path(tmp) / "run.json").write_text(json.dumps(config))
        cmd = [sys.executable, "-m", "trainer", "generate", "--config", str(Path(tmp) / "run.json")]
        subprocess.run(cmd, check=True, capture_output=True)
        summary = json.loads((Path(tmp) / "out" / "summary.json").read_text())
        rows = [
            json.loads(x) for x in (Path(tmp) / "out" / "samples.jsonl").read_text().splitlines()
        ]
    texts = {(r["prompt_id"], r["sample_index"]): r["text"] for r in rows}
    return {"tokens": summary["completion_tokens"], "seconds": summary["seconds"], "texts": texts}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--prompts", type=int, default=64)
    p.add_argument("--n", type=int, default=1, help="samples per prompt")
    p.add_argument("--max-new-tokens", type=int, default=48)
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (texts comparable)")
    p.add_argument("--batch-size", type=int, nargs="+", default=[8, 32])
    p.add_argument("--hidden", type=int, default=256, help="hidden size of the random Llama")
    p.add_argument("--engine", default="transformers", help="transformers | vllm (GPU)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(torch.get_num_threads())

    r = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = str(build_tiny_causal_lm(Path(tmp) / "lm", hidden_size=args.hidden))
        prompts = [
            {"prompt_id": f"p{i}", "prompt": sentence(r, r.randint(4, 40))}
            for i in range(args.prompts)
        ]
        prompts_file = write_jsonl(Path(tmp) / "prompts.jsonl", prompts)
        peer = plain_loop(model_dir, prompts, args)
        rows = [
            {
                "path": "model.generate loop (batch 1)",
                "tokens": peer["tokens"],
                "seconds": peer["seconds"],
                "tokens_per_s": peer["tokens"] / peer["seconds"],
                "speedup": 1.0,
                "identical": 1.0,
            }
        ]
        for bs in args.batch_size:
            got = ours(model_dir, prompts_file, bs, args)
            same = sum(got["texts"].get(k) == v for k, v in peer["texts"].items())
            rows.append(
                {
                    "path": f"trainer generate (batch {bs})",
                    "tokens": got["tokens"],
                    "seconds": got["seconds"],
                    "tokens_per_s": got["tokens"] / got["seconds"],
                    "speedup": (got["tokens"] / got["seconds"]) / rows[0]["tokens_per_s"],
                    "identical": same / len(peer["texts"]),
                }
            )
    columns = ["path", "tokens", "seconds", "tokens_per_s", "speedup", "identical"]
    print(table(rows, columns))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    path = save(
        "generate",
        {"args": vars(args), "device": device, "threads": torch.get_num_threads(), "rows": rows},
    )
    print(f"\nwritten: {path}")


if __name__ == "__main__":
    main()
