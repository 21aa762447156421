"""The dataset card: README.md beside a snapshot's files (counts, where the labels came from,
method, α, labelers, lineage), so the data explains itself wherever it is copied."""

from typing import Any

from app.aggregation.consensus import ConsensusMethod
from app.datasets.models import Snapshot
from app.datasets.rows import Tally
from app.datasets.schemas import EVERY
from app.labeling.sources import RowSource, Sources
from app.projects.models import Project

METHODS = {
    ConsensusMethod.ranked_pairs: "consensus ranking per prompt by ranked pairs (Tideman)",
    ConsensusMethod.borda: "consensus ranking per prompt by Borda count (net pairwise score)",
    EVERY: "one row per annotation, no consensus",
}


KEPT = {
    Sources.human: "human: people's labels (labelers' and imported ones); AI judges' labels were "
    "left out before any consensus",
    Sources.ai: "ai: AI judges' labels only; people's labels were left out before any consensus",
    Sources.all: "all: people's and AI judges' labels; a row made of both is mixed",
}


def _number(value: Any, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _share(n: int, total: int) -> str:
    return f"{n} ({n / total:.1%})" if total else "0"


def _sources(sources: str, tally: Tally) -> list[str]:
    """The card's section on where the labels came from: what was kept, and the rows and
    the labels behind them by source."""
    lines = ["## Sources", "", f"- labels kept (`sources`): {KEPT[Sources(sources)]}", ""]
    rows, labels = sum(tally.rows.values()), sum(tally.labels.values())
    lines += ["| source | rows | labels |", "|---|---|---|"]
    for source in RowSource:
        label = "–" if source == RowSource.mixed else _share(tally.labels[source], labels)
        lines.append(f"| {source} | {_share(tally.rows[source], rows)} | {label} |")
    lines += [
        "",
        "A row's `source` is human when only people's labels are behind it, ai when only AI "
        "judges' are, mixed when a consensus of both made it; a label behind several rows is "
        "counted once.",
        "",
    ]
    return lines


def dataset_card(
    *,
    snapshot: Snapshot,
    project: Project,
    rows: dict[str, int],
    emails: dict[int, str],
    excluded: list[int],
    tally: Tally | None = None,
) -> str:
    """The README.md of a snapshot, as markdown (`tally`: its rows and labels by source)."""
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
    ]
    if "sources" in params:
        lines += _sources(params["sources"], tally or Tally())
    lines += ["## Method", ""]
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
