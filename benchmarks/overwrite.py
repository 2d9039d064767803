"""Refuse, before a benchmark measures anything, to replace a result made with other settings.

A benchmark's file name holds only some of its settings (the device, an encoder, a crop), so a
quick trial with fewer images, steps or repeats, another batch, cache, thread count or malloc
setting would otherwise silently replace a committed full measurement under the same name.
Every benchmark that writes to a fixed or partly named file calls :func:`check_not_overwriting`
with the settings its result will record, before its first measurement.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any


def recorded_settings(result: Mapping[str, Any]) -> Mapping[str, Any]:
    """The ``settings`` a result file records (empty where it has none)."""
    settings = result.get("settings")
    return settings if isinstance(settings, Mapping) else {}


def recorded_at_top(result: Mapping[str, Any]) -> Mapping[str, Any]:
    """A result file that records its settings among its top-level keys, as they are."""
    return result


def check_not_overwriting(
    path: Path,
    planned: Mapping[str, Any],
    *,
    flag: str,
    recorded: Callable[[Mapping[str, Any]], Mapping[str, Any]] = recorded_settings,
    what: str = "a measurement",
) -> None:
    """Refuse to replace ``path`` where it holds a result made with settings other than ``planned``.

    A setting the file does not record (one added to the benchmark after the file was written)
    counts as unknown, not as different: refusing it would block measuring the same settings
    again over an older file. Only a setting the file records with another value is refused.

    Args:
        path: The JSON file the run would write; nothing to check where there is none.
        planned: The run's settings, as its result will record them (compared after a JSON
            round trip, so a tuple equals the list the file holds).
        flag: The option that writes elsewhere (``--results-dir``, ``--out``), for the refusal.
        recorded: The settings of a file's JSON, comparable with ``planned`` (default: its
            ``settings``).
        what: What the file holds, for the refusal ("a measurement", "a baseline").

    Raises:
        SystemExit: Naming the file, each setting that differs (its value there and now) and
            ``flag``; or, where the file is not a JSON object, naming the file and the error.
    """
    if not path.exists():
        return
    try:
        result = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SystemExit(
            f"{path} is there but not a readable result ({error}); pass another {flag}, or "
            "move it aside"
        ) from None
    if not isinstance(result, Mapping):
        raise SystemExit(
            f"{path} is there but holds a JSON {type(result).__name__}, not a result; pass "
            f"another {flag}, or move it aside"
        )
    there = recorded(result)
    now = json.loads(json.dumps(planned))
    differ = {k: (there[k], v) for k, v in now.items() if k in there and there[k] != v}
    if differ:
        shown = ", ".join(f"{k} {old!r} there, {new!r} now" for k, (old, new) in differ.items())
        raise SystemExit(
            f"{path} holds {what} with other settings ({shown}); pass another {flag} to keep "
            "both, or move it aside"
        )
