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
