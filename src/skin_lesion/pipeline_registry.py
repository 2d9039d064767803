"""Project pipelines."""

from __future__ import annotations

import difflib
import importlib.resources
import re

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline

_MISSING_MODULE = re.compile(r"'skin_lesion\.pipelines\.([^']+)' module")


class UnknownPipelineError(KeyError):
    """``--pipelines`` named a pipeline the project does not have."""

    def __str__(self) -> str:  # KeyError would print the message in quotes
        return str(self.args[0])


def pipeline_names() -> list[str]:
    """The project's pipelines: the folders under ``skin_lesion/pipelines``."""
    folder = importlib.resources.files("skin_lesion.pipelines")
    return sorted(
        p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))
    )


def unknown_pipeline_error(name: str) -> UnknownPipelineError:
    """An error naming ``name``, the closest real pipeline and all of them."""
    names = pipeline_names()
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return UnknownPipelineError(
        f"no pipeline named '{name}'{hint}; the pipelines are {names}, and `kedro run` "
        "alone runs all but inference"
    )


def register_pipelines() -> dict[str, Pipeline]:
    """Register the project's pipelines.

    Returns:
        A mapping from pipeline names to ``Pipeline`` objects; ``__default__`` runs all but
        ``inference``.

    Raises:
        UnknownPipelineError: For ``--pipelines`` naming no pipeline. Kedro's
            ``find_pipelines`` reports it as a failed import of a module that does not exist;
            as a ``KeyError`` Kedro's session answers with its own "Failed to find the
            pipeline named ... Did you mean" message instead.
    """
    try:
        pipelines = find_pipelines(raise_errors=True)
    except ImportError as error:
        missing = _MISSING_MODULE.search(str(error))
        # A real pipeline that fails to import chains its cause; keep that error as it is.
        if error.__cause__ is not None or missing is None:
            raise
        raise unknown_pipeline_error(missing.group(1)) from None
    # Inference classifies a folder the user names at run time; it is not part of a training run.
    training = [p for name, p in pipelines.items() if name != "inference"]
    pipelines["__default__"] = sum(training, Pipeline([]))
    return pipelines
