"""What a trainer's metric names mean to the pages: a short note on the ones a newcomer cannot
guess, and which metrics cannot be negative by their definition (their charts start at 0)."""

NOTES = {
    "responses_cut": (
        "responses longer than max_length on their own (train and held-out rows): their start "
        "was cut, so the reward model scored only their end. Many? Raise max_length."
    ),
}
"""A metric's note, shown beside it wherever it appears (model page, registry)."""


def note(name: str) -> str | None:
    """The note on a metric, or None when its name says enough."""
    return NOTES.get(name)


NON_NEGATIVE = frozenset(
    {
        "accuracy",  # shares of pairs ordered right
        "eval_accuracy",
        "clipfrac",  # shares of tokens or responses
        "eos_fraction",
        "approxkl",  # ½ (log ratio)², a square
        "vf_loss",  # a squared error
        "ptx_loss",  # a cross-entropy
        "entropy",
        "grad_norm",
        "kl_coef",
        "response_length",
        "samples",
        "tokens_per_s",
        "samples_per_s",
        "pairs_per_s",
        "rankings_per_s",
        "sequences_per_s",
        "episodes_per_s",
    }
)
"""Metrics no run can report below 0. Left out on purpose: kl (a sampled estimate, negative at
times), score and the rewards, margins, pg_loss, explained_variance."""
LOSSES = frozenset({"loss", "eval_loss"})
"""A cross-entropy (sft) or −log σ (rm, dpo): never negative, except PPO's loss, whose
policy-gradient term is."""


def non_negative(kind: str) -> list[str]:
    """The metrics of a run of `kind` that cannot be negative (their charts start at 0)."""
    return sorted(NON_NEGATIVE | (LOSSES if kind != "ppo" else frozenset()))
