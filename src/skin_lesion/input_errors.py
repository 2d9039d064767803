"""Errors in a run's input print as one message on the command line, not a traceback.

A mistyped parameter, an ``--env`` that does not exist, HAM10000 not where the catalog looks,
inputs not made yet, outputs made from other data or settings, a metadata table HAM10000's
columns do not fit: each is refused with
a message that names the culprit and what to do. Under ``kedro run`` that message came last
in a 200-300-line traceback through click, Kedro, pluggy and our checks, none of which helps
the user. :func:`install` wraps ``sys.excepthook`` (Kedro's rich one) so that an uncaught
error of these types prints as ``Error: <type>: <message>`` with exit status 1, as click
prints its own usage errors; any other exception keeps its full traceback.
``SKIN_LESION_TRACEBACK=1`` restores the traceback for these too. Python code that catches
the exception (tests, a notebook, ``session.run``) gets it unchanged: only an uncaught one
reaches ``sys.excepthook``, and IPython does not use it.
"""

from __future__ import annotations

import errno
import os
import sys
from types import TracebackType

TRACEBACK_VARIABLE = "SKIN_LESION_TRACEBACK"


def input_error_types() -> tuple[type[BaseException], ...]:
    """The exception types that mean bad input, each raised with a message for the user."""
    from skin_lesion.config import ConfigError
    from skin_lesion.datasets.errors import InputDataError
    from skin_lesion.lineage import StaleInputError
    from skin_lesion.metadata import InvalidDataError
    from skin_lesion.parameters_check import MissingInputsError
    from skin_lesion.pipeline_registry import UnknownPipelineError
    from skin_lesion.run_lock import RunInProgressError
    from skin_lesion.splits import SplitError

    # skin_lesion.inference imports torch (seconds): where it was never imported, none of its
    # errors was raised, and a parameter refused at start-up prints without waiting for it.
    mismatch = getattr(sys.modules.get("skin_lesion.inference"), "OperatingPointMismatch", None)
    return (
        ConfigError,
        InputDataError,
        StaleInputError,
        MissingInputsError,
        InvalidDataError,
        SplitError,
        *([mismatch] if mismatch is not None else []),
        # `--pipelines reportng`: Kedro's ValueError ("Failed to find the pipeline named
        # ... Did you mean ... reporting") is raised from it.
        UnknownPipelineError,
        RunInProgressError,
    )


# What the disk said when an output could not be written: a full disk or quota, a
# read-only mount, a folder without write permission. Not the code's fault either: the
# message (Kedro's names the dataset and file) is all the user needs.
DISK_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}
)


def _disk_error(error: BaseException) -> OSError | None:
    """The OSError of a full, read-only or forbidden disk that ``error`` was raised from."""
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, OSError) and cause.errno in DISK_ERRNOS:
            return cause
        seen.add(id(cause))
        cause = cause.__cause__
    return None


def format_input_error(error: BaseException) -> str:
    """The lines printed for an uncaught input error in place of its traceback."""
    what = (
        "the run's input"
        if _disk_error(error) is None
        else "the file system (a full disk, a read-only folder, a missing permission)"
    )
    return (
        f"Error: {type(error).__name__}: {error}\n"
        f"(An error in {what}, not in the code: the traceback is left out; "
        f"{TRACEBACK_VARIABLE}=1 shows it.)\n"
    )


def _is_input_error(error: BaseException) -> bool:
    """Whether ``error``, or an error it was raised from (Kedro's catalog re-raises a dataset's
    error as a plain ``DatasetError`` naming the dataset), is an input error."""
    try:
        kinds = input_error_types()
    except Exception:  # a half-imported package at exit: keep the full traceback
        return False
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, kinds):
            return True
        seen.add(id(cause))
        cause = cause.__cause__
    return False


def install() -> None:
    """Wrap the current ``sys.excepthook`` once (calling again does nothing)."""
    previous = sys.excepthook
    if getattr(previous, "_skin_lesion_input_errors", False):
        return

    def excepthook(
        kind: type[BaseException], error: BaseException, traceback: TracebackType | None
    ) -> None:
        known = _is_input_error(error) or _disk_error(error) is not None
        if known and os.environ.get(TRACEBACK_VARIABLE, "") in ("", "0"):
            sys.stderr.write(format_input_error(error))
            sys.stderr.flush()
            return
        previous(kind, error, traceback)

    excepthook._skin_lesion_input_errors = True  # type: ignore[attr-defined]
    sys.excepthook = excepthook
