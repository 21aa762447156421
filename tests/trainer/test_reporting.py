"""Metric rows are strict JSON, in the trainer's file and in the database alike."""

from __future__ import annotations

import json
import math

from trainer.reporting import sanitise, step_of


def test_non_finite_metrics_are_written_as_null_and_named() -> None:
    row = sanitise({"step": 3, "loss": math.nan, "kl": math.inf, "lr": 0.1})
    assert row == {"step": 3, "loss": None, "kl": None, "lr": 0.1, "non_finite": ["loss", "kl"]}
    assert sanitise({"step": 1, "loss": 0.5}) == {"step": 1, "loss": 0.5}


def test_a_row_sanitised_again_keeps_the_keys_it_named() -> None:
    written = sanitise({"step": 4, "loss": math.nan, "kl": 0.2})
    assert sanitise(written) == written  # the worker reads back what the trainer wrote
    edited = {**written, "kl": -math.inf}  # a line someone wrote by hand
    assert sanitise(edited)["non_finite"] == ["loss", "kl"]
    assert sanitise({"step": 5, "lr": math.inf, "non_finite": "?"})["non_finite"] == ["lr"]
    json.dumps(sanitise(edited), allow_nan=False)  # strict JSON


def test_only_complete_lines_of_a_step_count() -> None:
    assert step_of('{"step": 7, "loss": 0.1}\n') == 7
    assert step_of('{"step": 7, "loss": 0.1}') == math.inf  # torn: no newline yet
    assert step_of("not json\n") == math.inf and step_of('{"step": "7"}\n') == math.inf
