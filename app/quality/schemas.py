"""Response models of labeler quality."""

from datetime import date

from pydantic import BaseModel


class FlagOut(BaseModel):
    name: str
    evidence: str
    p_value: float | None = None


class LabelerQuality(BaseModel):
    user_id: int
    email: str
    source: str | None = None
    """The tool a source annotator's labels were imported from (it cannot sign in); None for
    people."""
    ai: bool = False
    """A judge (its labels are AI labels): measured against the people's consensus, and part
    of no person's."""
    labels: int
    gold_seen: int
    gold_accuracy: float | None
    """Share of gold pairs ordered as the known answer (0…1)."""
    agreement: float | None
    """Mean Kendall τ of their labels with the consensus of the other labelers (−1…1)."""
    reliability: float | None
    """Share of their rankings that look informed under the fitted model (0…1); None with
    fewer than 10 labels on prompts another labeler also labeled (not enough labels)."""
    reliability_interval: tuple[float, float] | None
    median_seconds: float | None
    suggestion_agreement: float | None = None
    """Share of the ordered pairs of the judges' suggestions (the newest AI label stored
    before their label of the prompt) this person ordered alike (0…1); None without any."""
    suggestion_prompts: int = 0
    """Prompts that share is measured over."""
    flags: list[str]
    evidence: list[FlagOut]
    excluded: bool
    held: bool


class QualityReport(BaseModel):
    project_id: int
    kind: str
    labels: int
    """People's labels (AI labels are counted in `ai_labels`)."""
    ai_labels: int = 0
    alpha: float | None
    """Krippendorff's α (ordinal) over the people's labels (AI labels left out)."""
    alpha_interval: tuple[float, float] | None
    """95% bootstrap interval of α (prompts resampled)."""
    alpha_with_ai: float | None = None
    """α over every label, AI labels included; None without AI labels."""
    alpha_with_ai_interval: tuple[float, float] | None = None
    gold_items: int
    labelers: list[LabelerQuality]


class AlphaPoint(BaseModel):
    day: date
    alpha: float | None
    labels: int


class LabelComparison(BaseModel):
    """One of a labeler's labels next to the others' consensus (or the known answer)."""

    prompt_id: int
    external_id: str
    is_gold: bool
    label: list[int]
    """Response ids best first (ratings: by score)."""
    scores: dict[int, float] | None
    consensus: list[int] | None
    """The other labelers' consensus (ranked pairs / mean score), or the gold order."""
    tau: float | None
    shown: list[int]
    seconds: float | None


class LabelerDetail(BaseModel):
    row: LabelerQuality
    labels: list[LabelComparison]
