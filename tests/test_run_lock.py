"""One pipeline run at a time on a data folder: a second process is refused, naming the first."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
from kedro.framework.hooks import hook_impl
from kedro.framework.hooks.manager import _create_hook_manager

from skin_lesion.input_errors import input_error_types
from skin_lesion.run_lock import INFO_NAME, LOCK_NAME, RunInProgressError, RunLock
from tests.conftest import run_kedro

# A process that takes the lock as a run would and holds it until its stdin closes.
HOLDER = textwrap.dedent(
    """
    import sys
    from types import SimpleNamespace
    from skin_lesion.run_lock import RunLock
    hook = RunLock()
    context = SimpleNamespace(config_loader={"globals": {"data_dir": sys.argv[1]}},
                              project_path=sys.argv[2])
    hook.after_context_created(context)
    wrapper = hook.before_pipeline_run({"env": "test"})
    next(wrapper)
    print("held", flush=True)
    sys.stdin.read()
    """
)


@pytest.fixture
def holder():
    """Start a process holding the lock of ``data_dir`` (relative to ``project``)."""
    started = []

    def start(data_dir: str, project: Path) -> subprocess.Popen:
        process = subprocess.Popen(
            [sys.executable, "-c", HOLDER, data_dir, str(project)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        assert process.stdout.readline().strip() == "held"
        return process

    yield start
    for process in started:
        process.stdin.close()
        process.wait(timeout=30)


def _hook(data_dir: str, project: Path) -> RunLock:
    hook = RunLock()
    context = SimpleNamespace(
        config_loader={"globals": {"data_dir": data_dir}}, project_path=str(project)
    )
    hook.after_context_created(context)
    return hook


def _run(hook: RunLock):
    """The wrapper's part before the other hooks; returns the suspended wrapper."""
    wrapper = hook.before_pipeline_run({"env": "test"})
    next(wrapper)
    return wrapper


def _end(hook: RunLock, call: str) -> None:
    """The run's end (``after_pipeline_run`` or ``on_pipeline_error``, wrappers both) with
    no other hook's call inside."""
    wrapper = getattr(hook, call)()
    next(wrapper)
    with pytest.raises(StopIteration):
        wrapper.send(None)


def test_a_second_process_is_refused_naming_the_run_that_holds_the_folder(
    tmp_path: Path, holder
) -> None:
    process = holder("data/test", tmp_path)
    with pytest.raises(RunInProgressError) as refused:
        _run(_hook("data/test", tmp_path))
    message = str(refused.value)
    assert f"another run is using {tmp_path / 'data' / 'test'} (process {process.pid} on " in (
        message
    )
    assert "`-c data/test " in message and "--env" in message
    # Another environment's folder is not held up, and this process holds nothing after.
    other = _hook("data/other", tmp_path)
    wrapper = _run(other)
    with pytest.raises(StopIteration):
        wrapper.send(None)
    _end(other, "after_pipeline_run")
    assert not RunLock._held
    # Once the holder ends, the folder is free, and its note of who held it is gone.
    process.stdin.close()
    process.wait(timeout=30)
    assert not (tmp_path / "data" / "test" / INFO_NAME).exists()
    hook = _hook("data/test", tmp_path)
    _run(hook)
    assert (tmp_path / "data" / "test" / LOCK_NAME).exists()
    _end(hook, "on_pipeline_error")
    assert not RunLock._held


def test_a_refusal_by_another_hook_gives_the_lock_back(tmp_path: Path, holder) -> None:
    """Kedro calls no on_pipeline_error when a before_pipeline_run hook raises: the wrapper
    gives the lock back itself, or every later run elsewhere would be refused."""
    hook = _hook("data", tmp_path)
    wrapper = _run(hook)
    assert RunLock._held
    with pytest.raises(ValueError, match="mistyped"):
        wrapper.throw(ValueError("mistyped parameter"))
    assert not RunLock._held
    holder("data", tmp_path)  # another process takes it at once


def test_a_second_run_in_the_process_holding_the_lock_goes_on(tmp_path: Path) -> None:
    """A notebook interrupted mid-run (no hook told) still holds the lock; its next run
    goes on."""
    first, second = _hook("data", tmp_path), _hook("data", tmp_path)
    _run(first)
    _run(second)
    _end(second, "after_pipeline_run")
    assert not RunLock._held


def test_a_kedro_run_beside_another_stops_before_any_work(kedro_project: Path, holder) -> None:
    assert RunInProgressError in input_error_types()  # one line on the command line
    holder("data/test", kedro_project)
    with pytest.raises(RunInProgressError, match="another run is using"):
        run_kedro(kedro_project, "data_processing")
    assert not (kedro_project / "data" / "test" / "02_intermediate").exists()


class _FailingAtTheEnd:
    """A hook whose end-of-run call fails (kedro-mlflow unable to end its MLflow run)."""

    @hook_impl
    def after_pipeline_run(self) -> None:
        raise OSError("database is locked")

    @hook_impl
    def on_pipeline_error(self) -> None:
        raise OSError("database is locked")


@pytest.mark.parametrize("end", ["after_pipeline_run", "on_pipeline_error"])
def test_the_lock_is_given_back_when_another_hook_fails_at_the_end_of_the_run(
    tmp_path: Path, holder, end: str
) -> None:
    """Kedro registers plugin hooks (kedro-mlflow's) after settings.HOOKS, and pluggy calls
    the last registered first: one that raises at the run's end stopped RunLock's call, and a
    notebook kernel kept the folder locked against every other process."""
    manager = _create_hook_manager()
    manager.register(RunLock())
    manager.register(_FailingAtTheEnd())
    manager.hook.after_context_created(
        context=SimpleNamespace(
            config_loader={"globals": {"data_dir": "data"}}, project_path=str(tmp_path)
        )
    )
    manager.hook.before_pipeline_run(run_params={"env": None}, pipeline=None, catalog=None)
    assert RunLock._held
    with pytest.raises(OSError, match="locked"):
        if end == "after_pipeline_run":
            manager.hook.after_pipeline_run(
                run_params={}, run_result={}, pipeline=None, catalog=None
            )
        else:
            manager.hook.on_pipeline_error(
                error=ValueError("node failed"), run_params={}, pipeline=None, catalog=None
            )
    assert not RunLock._held
    assert not (tmp_path / "data" / INFO_NAME).exists()
    holder("data", tmp_path)  # another process takes it at once
