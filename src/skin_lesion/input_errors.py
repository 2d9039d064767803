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

import ast
import difflib
import errno
import os
import sys
from pathlib import Path
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
    hint = slice_hint(error) if _is_slice_error(error) else ""
    return (
        f"Error: {type(error).__name__}: {error}{hint}\n"
        f"(An error in {what}, not in the code: the traceback is left out; "
        f"{TRACEBACK_VARIABLE}=1 shows it.)\n"
    )


# Kedro's own refusals of a run's slicing options (`--from-nodes evaluate_tst`, `--nodes`,
# `--to-nodes`, `--from-inputs`, `--to-outputs`, `--tags`, `--namespaces`): plain ValueErrors
# raised by kedro.pipeline, which printed as a 100-line traceback.
KEDRO_SLICE_MESSAGES = (
    "Pipeline does not contain nodes named",
    "Pipeline does not contain datasets named",
    "Pipeline does not contain nodes with the following namespaces",
    "Pipeline contains no nodes after applying all provided filters",
)


def _is_slice_error(error: BaseException) -> bool:
    """Whether ``error`` is Kedro's refusal of a slicing option naming what the pipeline lacks."""
    if type(error) is not ValueError or not str(error).startswith(KEDRO_SLICE_MESSAGES):
        return False
    traceback, last = error.__traceback__, None
    while traceback is not None:
        last, traceback = traceback, traceback.tb_next
    if last is None:
        return False
    parts = Path(last.tb_frame.f_code.co_filename).parts
    return "kedro" in parts and "pipeline" in parts


def _known_names() -> tuple[list[str], list[str]]:
    """Every node and dataset name of the project's registered pipelines (empty where the
    project cannot be read)."""
    try:
        from kedro.framework.project import pipelines

        nodes: set[str] = set()
        datasets: set[str] = set()
        for pipeline in pipelines.values():
            nodes |= {node.name for node in pipeline.nodes}
            datasets |= set(pipeline.datasets())
        return sorted(nodes), sorted(datasets)
    except Exception:  # an error message must not fail on its hint
        return [], []


def slice_hint(error: BaseException) -> str:
    """``did you mean ...`` for each name of a slicing error that is close to a real one."""
    message = str(error)
    names = message[message.find("[") : message.rfind("]") + 1]
    try:
        given = ast.literal_eval(names) if names else []
    except (ValueError, SyntaxError):
        return ""
    nodes, datasets = _known_names()
    known = datasets if "datasets named" in message else nodes
    hints = []
    for name in given:
        close = difflib.get_close_matches(str(name), known, n=1, cutoff=0.6)
        if close:
            hints.append(f"'{name}': did you mean '{close[0]}'?")
    lister = (
        "`kedro catalog describe-datasets` lists them"
        if known is datasets
        else "`kedro registry describe <pipeline>` lists its nodes"
    )
    listed = f" ({lister})" if known else ""
    separator = "" if message.rstrip().endswith(".") else "."
    return separator + (" " + "; ".join(hints) if hints else "") + listed


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
        known = _is_input_error(error) or _disk_error(error) is not None or _is_slice_error(error)
        if known and os.environ.get(TRACEBACK_VARIABLE, "") in ("", "0"):
            sys.stderr.write(format_input_error(error))
            sys.stderr.flush()
            return
        previous(kind, error, traceback)

    excepthook._skin_lesion_input_errors = True  # type: ignore[attr-defined]
    sys.excepthook = excepthook
