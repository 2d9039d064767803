from dataclasses import dataclass, field
from typing import Literal

import pytest

from skin_lesion.config import ConfigError, from_dict


@dataclass(frozen=True)
class Inner:
    size: int = 3
    scale: tuple[float, float] = (0.5, 1.0)


@dataclass(frozen=True)
class Outer:
    name: str
    mode: Literal["a", "b"] = "a"
    workers: int | None = None
    rate: float = 0.1
    inner: Inner = field(default_factory=Inner)


def test_builds_nested_frozen_dataclass_with_defaults():
    cfg = from_dict(Outer, {"name": "x", "rate": 1, "inner": {"scale": [0.2, 0.9]}})
    assert cfg == Outer(name="x", rate=1.0, inner=Inner(scale=(0.2, 0.9)))
    assert isinstance(cfg.rate, float)
    with pytest.raises(AttributeError):
        cfg.name = "y"


def test_unknown_key_is_named_with_its_path():
    with pytest.raises(ConfigError, match=r"group.inner: unknown key\(s\) \['sise'\]"):
        from_dict(Outer, {"name": "x", "inner": {"sise": 4}}, "group")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "required key 'name' is missing"),
        ({"name": "x", "mode": "c"}, r"mode: 'c' is not one of \['a', 'b'\]"),
        ({"name": "x", "inner": {"size": "3"}}, "inner.size: expected an integer, got '3'"),
        ({"name": "x", "inner": {"size": True}}, "expected an integer, got True"),
        ({"name": "x", "inner": {"scale": [1.0]}}, "expected 2 values"),
        ({"name": "x", "workers": "all"}, "workers: 'all' matches none of"),
        ({"name": 3}, "name: expected a string, got 3"),
    ],
)
def test_bad_values_are_named(data, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(Outer, data)


def test_optional_accepts_none_and_value():
    assert from_dict(Outer, {"name": "x", "workers": None}).workers is None
    assert from_dict(Outer, {"name": "x", "workers": 4}).workers == 4
