"""Helpers for the notebooks in ``notebooks/``.

A notebook opened before its pipelines ran (a fresh clone, or another ``KEDRO_ENV``) would
otherwise stop at its first ``catalog.load`` with a long traceback that ends in a file not
found; :func:`require_outputs` names what is missing and the command that makes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class PipelineNotRunError(RuntimeError):
    """The Kedro environment's catalog lacks outputs a notebook reads."""


def _location(catalog: Any, name: str) -> str:
    """Where the catalog keeps ``name`` (its file or folder), or "" when it cannot say."""
    try:
        described = catalog.get(name)._describe()
    except Exception:  # only a hint in an error message
        return ""
    where = described.get("filepath") or described.get("path")
    return f" ({where})" if where else ""


def require_outputs(catalog: Any, names: Sequence[str], *, env: str | None, run: str) -> None:
    """Raise :class:`PipelineNotRunError` unless every catalog entry in ``names`` exists.

    Args:
        catalog: The notebook's Kedro ``catalog``.
        names: The entries the notebook loads that a pipeline writes.
        env: The session's environment (``context.env``; None: base plus local).
        run: The command that writes them, without ``--env`` (added for ``env``).
    """
    missing = [name for name in names if not catalog.exists(name)]
    if not missing:
        return
    command = f"{run} --env {env}" if env else run
    listed = ", ".join(f"{name}{_location(catalog, name)}" for name in missing)
    raise PipelineNotRunError(
        f"Kedro environment {env or 'local (default)'!r} has no {listed} yet. Run first, in "
        f"that environment: `{command}`; then restart the kernel and run this notebook again. "
        "For another environment's outputs: `%reload_kedro --env NAME` (or start Jupyter with "
        "KEDRO_ENV=NAME)."
    )
