"""Third-party warnings that every ``kedro`` command printed and no user of this project can
act on, dropped on their exact messages so that any other warning of those packages shows.

- mlflow's "Add type hints to the `predict` method ..." (14 log lines in Kedro's rich
  format, before every command's output): mlflow warns when a ``PythonModel`` subclass is
  defined without type hints, and kedro-mlflow's ``KedroPipelineModel`` is one, defined when
  the Kedro CLI loads the kedro-mlflow plugin, before this project's settings are read. mlflow
  raises it under its own ``warnings.catch_warnings()`` with a "once" filter in front of any
  filter of ours, so it is dropped where Kedro logs warnings (the ``py.warnings`` logger), and
  :func:`install` is a ``kedro.init`` entry point (pyproject.toml), which the CLI runs first.
- ``register_new_resolver() is deprecated`` (three times a run): Kedro 1.7's config loader and
  kedro-mlflow's hook register their resolvers with OmegaConf's deprecated call.
- FastAPI's "ORJSONResponse is deprecated ..." (15 lines before ``kedro viz build`` or ``kedro
  viz run`` starts): kedro-viz's own response class subclasses it when kedro-viz loads.

And two warnings kedro-viz logs (its loggers, not ``warnings``), :data:`LOGGED`:

- "Workflow tracking is disabled during partial pipeline runs ..." (four lines wrapped, on every
  sliced run: ``--from-nodes``, ``--to-nodes``, ``--nodes``, ``--tags`` ...; not on
  ``--pipelines`` alone, which Kedro 1.7 passes as ``pipeline_names``, a key kedro-viz does
  not read): kedro-viz records run events only for a whole default run.
- "No Kedro project found in ...; skipping write." (at the end of each packaged run, ``python
  -m skin_lesion --conf-source ...``): the same run-events file, with no project to put it in.

pytest filters the warnings (pyproject.toml's ``filterwarnings``).
"""

from __future__ import annotations

import logging
import re
import warnings

# The mlflow message starts with an ANSI colour code: searched, not matched at the start.
MESSAGES = (
    r"Add type hints to the `predict` method to enable data validation",
    r"register_new_resolver\(\) is deprecated",
    r"ORJSONResponse is deprecated, FastAPI now serializes data directly",
)

# Messages kedro-viz logs as warnings, by the logger that logs each (its module's).
LOGGED = {
    "kedro_viz.integrations.kedro.run_hooks": (
        r"^Workflow tracking is disabled during partial pipeline runs \(",
    ),
    "kedro_viz.integrations.kedro.hooks_utils": (
        r"^No Kedro project found in .*; skipping write\.$",
    ),
}


class DropMessages(logging.Filter):
    """Drops a logger's records whose message matches one of ``messages`` (by default
    :data:`MESSAGES`, for the ``py.warnings`` records Kedro makes of warnings)."""

    def __init__(self, messages: tuple[str, ...] = MESSAGES) -> None:
        super().__init__()
        self.pattern = re.compile("|".join(messages))

    def filter(self, record: logging.LogRecord) -> bool:
        return self.pattern.search(record.getMessage()) is None


def install() -> None:
    """Ignore :data:`MESSAGES` (UserWarning) in this process, as warnings and as the log
    records Kedro makes of warnings (``logging.captureWarnings``), and kedro-viz's
    :data:`LOGGED` messages on their loggers; once per process."""
    for message in MESSAGES:
        warnings.filterwarnings("ignore", message=f".*{message}", category=UserWarning)
    loggers = {"py.warnings": MESSAGES, **LOGGED}
    for name, messages in loggers.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, DropMessages) for f in logger.filters):
            logger.addFilter(DropMessages(messages))
