"""One pipeline run at a time on an environment's data folder.

Two ``kedro run`` of one environment at once (a second terminal, a notebook's
``session.run()`` beside a command-line run) write the same catalog files: the last writer
wins file by file, so one run's classifier can end up beside the other's predictions and
report, each file whole and the set wrong, and the lineage checks only catch it on the next
run. :class:`RunLock` (registered in ``settings.HOOKS``) takes an OS file lock
(``filelock``) on ``<data_dir>/.skin-lesion-run.lock`` before the first node and releases it
when the run ends or fails; a run that finds it taken stops before any work, naming the run
that holds it (process, command, start time). The OS releases the lock of a process that
dies, so a killed run leaves nothing to clean up. Runs of other environments (other
``data_dir``) are not held up; nor is a second run in the process that holds the lock (a
notebook re-running after an interrupted run), nor ``skin-lesion predict``, which runs no
pipeline.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

from filelock import FileLock, Timeout
from kedro.framework.hooks import hook_impl

LOCK_NAME = ".skin-lesion-run.lock"
# Who holds the lock, written by the holder beside it (filelock truncates the lock file
# itself when another process tries it).
INFO_NAME = ".skin-lesion-run.json"


class RunInProgressError(RuntimeError):
    """Another process is running a pipeline on the same data folder."""


def _holder(folder: Path) -> str:
    """The run holding ``folder``'s lock, in words, from what it wrote beside the lock."""
    try:
        info = json.loads((folder / INFO_NAME).read_text())
        return (
            f"process {info['pid']} on {info['host']}, `{info['command']}`, started "
            f"{info['started']}"
        )
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that has not said which (it may be starting)"


class RunLock:
    """Kedro hook: refuse a run while another process runs one on the same data folder."""

    # Locks this process holds, by data folder: a second run in this process goes on.
    _held: ClassVar[dict[Path, FileLock]] = {}

    def __init__(self) -> None:
        self._folder: Path | None = None

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        data_dir = Path(str(context.config_loader["globals"].get("data_dir", "data")))
        if not data_dir.is_absolute():
            data_dir = Path(context.project_path) / data_dir
        self._folder = data_dir.resolve()

    # A wrapper: the lock is taken before every other hook's before_pipeline_run (the input
    # checks would read files the other run is writing; kedro-mlflow would start a run) and
    # given back if one of them refuses the run, which Kedro does not report to
    # on_pipeline_error.
    @hook_impl(wrapper=True)
    def before_pipeline_run(self, run_params: dict[str, Any]) -> Any:
        self._acquire(run_params)
        try:
            return (yield)
        except BaseException:
            self._release()
            raise

    def _acquire(self, run_params: dict[str, Any]) -> None:
        folder = self._folder
        if folder is None or folder in RunLock._held:
            return
        folder.mkdir(parents=True, exist_ok=True)
        lock = FileLock(folder / LOCK_NAME, timeout=0, thread_local=False)
        try:
            lock.acquire()
        except Timeout:
            raise RunInProgressError(
                f"another run is using {folder} ({_holder(folder)}): two runs on one "
                "environment's data overwrite each other's outputs; wait for it to finish, or "
                "run another environment (--env), whose data_dir differs"
            ) from None
        RunLock._held[folder] = lock
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])
            if sys.argv and sys.argv[0]
            else "a Python session",
            "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "env": run_params.get("env"),
        }
        (folder / INFO_NAME).write_text(json.dumps(info) + "\n")

    def _release(self) -> None:
        lock = RunLock._held.pop(self._folder, None) if self._folder else None
        if lock is not None:
            (self._folder / INFO_NAME).unlink(missing_ok=True)
            lock.release()

    # Wrappers too: Kedro registers plugin hooks (kedro-mlflow's) after settings.HOOKS and
    # pluggy calls the last registered first, so one that raised at the run's end (an MLflow
    # run it could not end) stopped a plain hook's call, and a notebook kernel kept the folder
    # locked against every other process. The lock is given back after the others, whatever
    # they do, when the run ends and when it fails alike.
    @hook_impl(wrapper=True)
    def after_pipeline_run(self) -> Any:
        try:
            return (yield)
        finally:
            self._release()

    on_pipeline_error = after_pipeline_run
