"""Every number of every config has bounds beside its field, checked wherever a config is built."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from trainer.configs import CONFIGS, ConfigError, bound_of, build_config, choices_of


def _numeric(tp: object) -> bool:
    return tp in (int, float) or typing.get_origin(tp) is dict


@pytest.mark.parametrize("kind", list(CONFIGS))
def test_every_number_has_bounds_and_every_default_is_inside_them(kind: str) -> None:
    cls = CONFIGS[kind]
    hints = typing.get_type_hints(cls)
    numbers = [f.name for f in dataclasses.fields(cls) if _numeric(hints[f.name])]
    assert numbers, kind
    unbounded = [name for name in numbers if bound_of(cls, name) is None]
    assert unbounded == [], f"{kind}: numeric keys without bounds: {unbounded}"
    build_config(kind, {})  # the defaults pass their own checks
    for name in numbers:
        bound = bound_of(cls, name)
        assert bound is not None and (bound.low is not None or bound.high is not None), name
        if hints[name] is dict or typing.get_origin(hints[name]) is dict:
            continue
        for outside in [
            v
            for v in (
                bound.low - 1 if bound.low is not None else None,
                bound.low if bound.low is not None and bound.low_open else None,
                bound.high + 1 if bound.high is not None else None,
                float("nan") if hints[name] is float else None,
            )
            if v is not None and all(v != s for s, _ in bound.special)
        ]:
            with pytest.raises(ConfigError) as refused:
                build_config(kind, {name: outside})
            assert refused.value.key == name and name in str(refused.value)


def test_strings_with_a_fixed_set_of_values_say_which() -> None:
    assert choices_of(CONFIGS["ppo"], "lr_scheduler") == ("linear", "cosine", "constant")
    with pytest.raises(ConfigError, match="value_network must be one of separate, shared"):
        build_config("ppo", {"value_network": "sharde"})
    with pytest.raises(ConfigError, match=r"aspect_weights\['a'\] must be a finite number"):
        build_config("rm", {"aspect_weights": {"a": "inf"}})
