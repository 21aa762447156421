"""The judge's config: the keys a judge run refuses, each error naming its key."""

from __future__ import annotations

import pytest

from trainer.configs import ConfigError, build_config


@pytest.mark.parametrize(
    ("values", "key", "message"),
    [
        ({"judge_template": "{prompt} {a}"}, "judge_template", "{b} missing"),
        ({"judge_template": "{prompt}"}, "judge_template", "{a} and {b} missing"),
        ({"project_kind": "rating", "scale_low": 5, "scale_high": 1}, "scale_high", "above"),
        ({"project_kind": "rating", "scale_step": 2}, "scale_step", "whole steps"),
        ({"project_kind": "rating", "scale_high": 5000}, "scale_step", "at most 1000"),
        ({"project_kind": "rating", "scale_step": 0}, "scale_step", "must be > 0"),
        (
            {"project_kind": "rating", "rating_map": "thresholds", "rating_thresholds": [0, 1]},
            "rating_thresholds",
            "needs 5 ascending",
        ),
        (
            {
                "project_kind": "rating",
                "rating_map": "thresholds",
                "rating_thresholds": [0, 1, 1, 2, 3],
            },
            "rating_thresholds",
            "strictly ascending",
        ),
        (
            {"project_kind": "rating", "rating_score_low": 1, "rating_score_high": 1},
            "rating_score_high",
            "above",
        ),
        ({"project_kind": "rating", "judge_kind": "pairwise_lm"}, "judge_kind", "reward_model"),
        ({"rating_thresholds": [0, "nan"]}, "rating_thresholds", "finite"),
        ({"judge_kind": "oracle"}, "judge_kind", "must be one of"),
    ],
)
def test_bad_judge_configs_are_refused_naming_the_key(values, key, message) -> None:
    with pytest.raises(ConfigError) as refused:
        build_config("judge", values)
    assert refused.value.key == key and message in str(refused.value)


def test_set_reads_thresholds_as_numbers() -> None:
    cfg = build_config("judge", {}, {"rating_thresholds": "[-1, 0.5, 2]"})
    assert cfg.rating_thresholds == [-1.0, 0.5, 2.0]
    assert build_config("judge", {}, {"rating_thresholds": "-1,2"}).rating_thresholds == [-1, 2]
