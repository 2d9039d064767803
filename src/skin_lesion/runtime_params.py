"""Refuse a runtime parameter that nothing in the project reads.

``kedro run --params seeed=1`` (or ``raw-dir=...``) is accepted by Kedro: the unknown key is
merged into the parameters, no node asks for it, and the run goes on with the default seed
(or data folder) without a word. Keys inside a parameter group are checked by the node that
reads the group (``skin_lesion.config.from_dict``); a mistyped *top-level* name is caught
here, before any work, by a hook on the context.

A top-level runtime name is accepted when the parameter files define it, or when a config
file reads it through Kedro's ``${runtime_params:NAME}`` resolver (``raw_dir`` in the
catalog).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from kedro.config import MissingConfigException
from kedro.framework.hooks import hook_impl
from kedro.framework.project import settings

from skin_lesion.config import ConfigError

_RESOLVER = re.compile(r"\$\{\s*runtime_params:\s*([^,}\s]+)")


def resolver_names(conf_source: str | Path) -> set[str]:
    """Every name a config file under ``conf_source`` reads with ``${runtime_params:...}``."""
    names: set[str] = set()
    for path in sorted(Path(conf_source).rglob("*")):
        if path.suffix.lower() in {".yml", ".yaml", ".json"} and path.is_file():
            names.update(_RESOLVER.findall(path.read_text(encoding="utf-8", errors="replace")))
    return names


def unknown_runtime_params(
    runtime: Iterable[str], defined: Iterable[str], resolved: Iterable[str]
) -> list[str]:
    """The top-level runtime names that are neither defined parameters nor resolver names.

    Args:
        runtime: The top-level keys given at run time (``--params``).
        defined: The top-level keys of the parameter files (without the runtime ones).
        resolved: Names read through ``${runtime_params:...}``; a dotted ``a.b`` allows ``a``.
    """
    allowed = set(defined) | {name.split(".")[0] for name in resolved}
    return sorted(set(runtime) - allowed)


def check_runtime_params(
    runtime: dict[str, Any], defined: Iterable[str], resolved: Iterable[str]
) -> None:
    """Raise :class:`ConfigError` naming each runtime parameter nothing reads."""
    defined, resolved = sorted(defined), sorted(resolved)
    unknown = unknown_runtime_params(runtime, defined, resolved)
    if not unknown:
        return
    known = sorted(set(defined) | set(resolved))
    named = []
    for name in unknown:
        close = difflib.get_close_matches(name.replace("-", "_"), known, n=1, cutoff=0.6)
        named.append(f"'{name}' (did you mean '{close[0]}'?)" if close else f"'{name}'")
    raise ConfigError(
        f"unknown runtime parameter(s) from --params: {', '.join(named)}. No parameter file "
        "defines it and no config file reads it, so the run would ignore it. Top-level "
        f"parameters: {defined}; names the config reads at run time: {resolved}."
    )


class RuntimeParamsCheck:
    """Kedro hook: fail at once on a mistyped top-level ``--params`` name."""

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        loader = context.config_loader
        runtime = dict(getattr(loader, "runtime_params", None) or {})
        if not runtime:
            return
        # The loader merges the runtime parameters into "parameters"; one made the way the
        # session makes it, without them, gives what the files define.
        files_only = settings.CONFIG_LOADER_CLASS(
            conf_source=loader.conf_source, env=loader.env, **settings.CONFIG_LOADER_ARGS
        )
        try:
            defined = files_only["parameters"]
        except MissingConfigException:  # no parameter files: Kedro warns about that itself
            return
        check_runtime_params(runtime, defined, resolver_names(loader.conf_source))
