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

pytest filters the same messages (pyproject.toml's ``filterwarnings``).
"""

from __future__ import annotations

import logging
import re
import warnings

# The mlflow message starts with an ANSI colour code: searched, not matched at the start.
MESSAGES = (
    r"Add type hints to the `predict` method to enable data validation",
    r"register_new_resolver\(\) is deprecated",
)
_PATTERN = re.compile("|".join(MESSAGES))


class DropMessages(logging.Filter):
    """Drops the ``py.warnings`` records of :data:`MESSAGES`."""

    def filter(self, record: logging.LogRecord) -> bool:
        return _PATTERN.search(record.getMessage()) is None


def install() -> None:
    """Ignore :data:`MESSAGES` (UserWarning) in this process, as warnings and as the log
    records Kedro makes of warnings (``logging.captureWarnings``); once per process."""
    for message in MESSAGES:
        warnings.filterwarnings("ignore", message=f".*{message}", category=UserWarning)
    logger = logging.getLogger("py.warnings")
    if not any(isinstance(f, DropMessages) for f in logger.filters):
        logger.addFilter(DropMessages())
