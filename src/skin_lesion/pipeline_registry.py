"""Project pipelines."""

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline


def register_pipelines() -> dict[str, Pipeline]:
    """Register the project's pipelines.

    Returns:
        A mapping from pipeline names to ``Pipeline`` objects; ``__default__`` runs all but
        ``inference``.
    """
    pipelines = find_pipelines(raise_errors=True)
    # Inference classifies a folder the user names at run time; it is not part of a training run.
    training = [p for name, p in pipelines.items() if name != "inference"]
    pipelines["__default__"] = sum(training, Pipeline([]))
    return pipelines
