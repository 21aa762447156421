"""Request/response models of dataset snapshots."""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.aggregation.consensus import ConsensusMethod
from app.datasets.kinds import DatasetKind
from app.labeling.sources import Sources

EVERY = "all"
"""The snapshot method that keeps one row per annotation instead of a consensus."""
METHODS: tuple[str, ...] = (*ConsensusMethod, EVERY)
Weighting = Literal["none", "reliability"]
FILES = (
    "train.jsonl",
    "test.jsonl",
    "train.parquet",
    "test.parquet",
    "manifest.json",
    "README.md",
)


class SnapshotCreate(BaseModel):
    """What to freeze; parameters that do not apply to the kind are ignored (not stored)."""

    model_config = ConfigDict(extra="forbid")

    kind: DatasetKind
    method: ConsensusMethod | Literal["all"] = ConsensusMethod.ranked_pairs
    """rankings/pairs/kto: consensus method (kto of ratings: the mean score), or `all` = one
    row per annotation (no consensus);
    sft with include_top_ranked: the consensus that picks the top response."""
    split: float = Field(0.9, ge=0.0, le=1.0)
    """Fraction of prompts in train (decided per prompt by a hash of its external id)."""
    include_top_ranked: bool = False
    """sft: add the top consensus response of every ranked prompt."""
    normalize: bool = False
    """ratings: per-labeler z-scores before the mean."""
    with_labelers: bool = False
    """Each row also names its labelers (emails) and annotation times, for offline analysis of
    label quality; off by default so training files carry no personal data."""
    desirable_at: float = Field(4.0, ge=0.0, le=5.0)
    """kto from 0–5 ratings: a (mean) score at or above this is desirable (label true)."""
    undesirable_at: float = Field(2.0, ge=0.0, le=5.0)
    """kto from 0–5 ratings: a (mean) score at or below this is undesirable (label false);
    scores in between are left out. (👍/👎 ratings: 👍 true, 👎 false.)"""
    weighting: Weighting = "none"
    """`reliability`: each labeler counts in consensus rankings and rating means by their
    fitted reliability (the weights, α and excluded labelers go into the parameters)."""
    sources: Sources = Sources.human
    """Which labels go in, left out before any consensus: `human` (people's labels: labelers'
    and imported ones; the default, so a training set is human feedback unless asked), `ai`
    (AI judges' only) or `all` (both; a consensus of both is a `mixed` row)."""

    @model_validator(mode="after")
    def _method_fits(self) -> "SnapshotCreate":
        if self.kind == DatasetKind.sft and self.include_top_ranked and self.method == EVERY:
            raise ValueError("include_top_ranked needs a consensus method, not 'all'")
        return self

    @model_validator(mode="after")
    def _thresholds_fit(self) -> "SnapshotCreate":
        if self.kind == DatasetKind.kto and self.undesirable_at >= self.desirable_at:
            raise ValueError("undesirable_at must be below desirable_at")
        return self

    @model_validator(mode="after")
    def _weighting_fits(self) -> "SnapshotCreate":
        if self.weighting == "reliability" and not self.aggregates():
            raise ValueError(
                "weighting=reliability needs a consensus: rankings, pairs or kto with method "
                "ranked-pairs or borda, ratings, or sft with include_top_ranked"
            )
        return self

    def aggregates(self) -> bool:
        """Whether this snapshot combines several labelers' labels into one."""
        if self.kind in (DatasetKind.rankings, DatasetKind.pairs, DatasetKind.kto):
            return self.method != EVERY
        return self.kind == DatasetKind.ratings or (
            self.kind == DatasetKind.sft and self.include_top_ranked
        )

    def canonical(self) -> dict[str, Any]:
        """The parameters that shape this kind's rows (what the hash and dedup compare)."""
        params: dict[str, Any] = {"kind": self.kind.value, "split": self.split}
        if self.kind in (DatasetKind.rankings, DatasetKind.pairs):
            params["method"] = str(self.method)
        elif self.kind == DatasetKind.sft:
            params["include_top_ranked"] = self.include_top_ranked
            if self.include_top_ranked:
                params["method"] = str(self.method)
        elif self.kind == DatasetKind.ratings:
            params["normalize"] = self.normalize
        elif self.kind == DatasetKind.kto:
            params["method"] = str(self.method)
            params["desirable_at"] = self.desirable_at
            params["undesirable_at"] = self.undesirable_at
        if self.with_labelers and self.kind != "prompts":
            params["with_labelers"] = True
        if self.weighting != "none":
            params["weighting"] = self.weighting
        if self.kind != DatasetKind.prompts:
            params["sources"] = self.sources.value
        return params


class SnapshotOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    project_id: int
    kind: str
    version: int
    previous_id: int | None
    params: dict[str, Any]
    content_hash: str
    train_rows: int
    test_rows: int
    created_by_id: int | None
    created_at: datetime
    files: list[str] = list(FILES)


class SnapshotResult(SnapshotOut):
    created: bool
    """False: the data had not changed since the newest snapshot with these parameters, which
    is returned instead of a duplicate."""
