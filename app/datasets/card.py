"""The dataset card: README.md beside a snapshot's files (counts, method, α, labelers,
lineage), so the data explains itself wherever it is copied."""

from typing import Any

from app.aggregation.consensus import ConsensusMethod
from app.datasets.models import Snapshot
from app.datasets.schemas import EVERY
from app.projects.models import Project

METHODS = {
    ConsensusMethod.ranked_pairs: "consensus ranking per prompt by ranked pairs (Tideman)",
    ConsensusMethod.borda: "consensus ranking per prompt by Borda count (net pairwise score)",
    EVERY: "one row per annotation, no consensus",
}


def _number(value: Any, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def dataset_card(
    *,
    snapshot: Snapshot,
    project: Project,
    rows: dict[str, int],
    emails: dict[int, str],
    excluded: list[int],
) -> str:
    """The README.md of a snapshot, as markdown."""
    params = snapshot.params
    lines = [
        f"# {project.name} · {snapshot.kind} v{snapshot.version}",
        "",
        f"Snapshot {snapshot.id} of project {project.name!r} ({project.kind}), made "
        f"{snapshot.created_at:%Y-%m-%d %H:%M} UTC by rlhf-studio. Content hash "
        f"`{snapshot.content_hash}`.",
        "",
        "## Counts",
        "",
        f"- train: {rows['train']} rows (`train.jsonl`, `train.parquet`)",
        f"- test: {rows['test']} rows (`test.jsonl`, `test.parquet`); split {params['split']} "
        "of prompts, decided per prompt by a hash of its id",
        "- gold items (known answers used to check labelers) are never included",
        "",
        "## Method",
        "",
    ]
    if "method" in params:
        lines.append(f"- {METHODS.get(params['method'], params['method'])}")
    if params.get("normalize"):
        lines.append("- ratings: per-labeler z-scores before the mean")
    if params.get("weighting") == "reliability":
        lines.append(
            "- weighting: each labeler counts by their reliability (share of their labels that "
            "look informed under a Plackett–Luce model fitted jointly with the prompts)"
        )
    else:
        lines.append("- weighting: every labeler counts the same")
    lines += ["", "## Agreement", ""]
    if "alpha" in params:
        interval = params.get("alpha_interval")
        lines.append(
            f"Krippendorff's α (ordinal) over the labels used: {_number(params['alpha'])}"
            + (f" (95% interval {_number(interval[0])}–{_number(interval[1])})" if interval else "")
        )
    else:
        lines.append("α is computed for reliability-weighted snapshots (see the quality page).")
    lines += ["", "## Labelers", ""]
    weights = params.get("weights")
    if weights:
        lines += ["| labeler | weight |", "|---|---|"]
        for user_id, weight in sorted(weights.items(), key=lambda kv: -kv[1]):
            lines.append(f"| {emails.get(int(user_id), 'user ' + user_id)} | {weight:.3f} |")
    else:
        lines.append("Every labeler not excluded, with equal weight.")
    names = ", ".join(emails.get(u, f"user {u}") for u in excluded) or "none"
    lines += ["", f"Excluded labelers (left out of every row): {names}.", "", "## Lineage", ""]
    lines.append(
        f"- previous snapshot of this project and kind: {snapshot.previous_id}"
        if snapshot.previous_id
        else "- the first snapshot of this project and kind"
    )
    lines.append("- parameters: see `manifest.json`")
    return "\n".join(lines) + "\n"
