"""Turn parameter mappings into frozen dataclasses, failing at once on a bad key.

Kedro hands parameters to nodes as plain dicts. Nodes convert them here, at the boundary,
so that a misspelt key (``hair_removel``) fails before any work with the key's full path,
instead of being silently ignored.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A parameter mapping does not match the dataclass it configures."""


def from_dict(cls: type[T], data: Mapping[str, Any] | None, path: str = "") -> T:
    """Build the frozen dataclass ``cls`` from ``data``, recursing into nested dataclasses.

    Args:
        cls: A dataclass type. Fields with defaults may be left out of ``data``.
        data: The parameters, usually ``params:<group>`` from Kedro.
        path: Dotted name of ``data`` in the configuration, used in error messages.

    Returns:
        An instance of ``cls``.

    Raises:
        ConfigError: On unknown keys, missing required keys or a value of the wrong kind.
    """
    where = path or cls.__name__
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__} {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed keys are {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, field in fields.items():
        key_path = f"{path}.{name}" if path else name
        if name not in data:
            no_default = (
                field.default is dataclasses.MISSING
                and field.default_factory is dataclasses.MISSING
            )
            if no_default:
                raise ConfigError(f"{where}: required key '{name}' is missing")
            continue
        kwargs[name] = _convert(hints[name], data[name], key_path)
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except ValueError as exc:  # a range check in the dataclass's __post_init__
        raise ConfigError(f"{where}: {exc}") from exc


def check_at_least(owner: Any, minimum: float, *names: str) -> None:
    """Raise ``ValueError`` unless each named attribute (skipping None) is a finite number
    >= ``minimum`` (NaN fails the comparison; infinity, as ``--params key=.inf`` gives, passed
    it and turned a learning rate or MixUp strength into NaN losses mid-run)."""
    for name in names:
        value = getattr(owner, name)
        if value is not None and not value >= minimum:
            raise ValueError(f"{name} must be >= {minimum:g}, got {value!r}")
        check_finite(owner, name)


def check_finite(owner: Any, *names: str) -> None:
    """Raise ``ValueError`` if a named attribute is an infinite or NaN float (None and ints
    pass; a NaN is also refused by any comparison written as ``not x >= ...``)."""
    for name in names:
        value = getattr(owner, name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value!r}")


def check_probability(owner: Any, *names: str, below_one: bool = False) -> None:
    """Raise ``ValueError`` unless each named attribute lies in [0, 1] (or [0, 1))."""
    for name in names:
        value = getattr(owner, name)
        inside = 0.0 <= value < 1.0 if below_one else 0.0 <= value <= 1.0
        if not inside:
            interval = "[0, 1)" if below_one else "[0, 1]"
            raise ValueError(f"{name} must lie in {interval}, got {value!r}")


def _convert(hint: Any, value: Any, path: str) -> Any:
    """Convert ``value`` to the annotated type where that is unambiguous."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, path)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, path)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"{path}: {value!r} matches none of {hint}: {'; '.join(errors)}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{path}: {value!r} is not one of {list(args)}")
        return value
    if origin is tuple:
        if isinstance(value, str) or not isinstance(value, list | tuple):
            raise ConfigError(f"{path}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{path}[{i}]") for i, v in enumerate(value))
        if args and len(args) != len(value):
            raise ConfigError(f"{path}: expected {len(args)} values, got {value!r}")
        return tuple(_convert(a, v, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, got {value!r}")
        return value
    return value


def parameter_differences(saved: Any, now: Any, path: str = "") -> list[str]:
    """Each dotted key whose value differs between two nested parameter dicts, as text."""
    if isinstance(saved, dict) and isinstance(now, dict):
        differences = []
        for key in sorted(set(saved) | set(now), key=str):
            where = f"{path}.{key}" if path else str(key)
            if key not in saved:
                differences.append(f"{where}: unset before, now {now[key]!r}")
            elif key not in now:
                differences.append(f"{where}: {saved[key]!r} before, now unset")
            else:
                differences.extend(parameter_differences(saved[key], now[key], where))
        return differences
    return [] if saved == now else [f"{path or 'params'}: {saved!r} before, now {now!r}"]
