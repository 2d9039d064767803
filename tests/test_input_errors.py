"""An uncaught input error prints as one message; any other error keeps its traceback."""

from __future__ import annotations

import sys

import pytest

from skin_lesion import input_errors
from skin_lesion.config import ConfigError
from skin_lesion.lineage import StaleInputError
from skin_lesion.parameters_check import MissingInputsError


@pytest.fixture
def hook(monkeypatch):
    """``sys.excepthook`` wrapped by ``install``, over a fake previous hook; the calls it got."""
    passed_on = []
    monkeypatch.setattr(sys, "excepthook", lambda *info: passed_on.append(info[1]))
    monkeypatch.delenv(input_errors.TRACEBACK_VARIABLE, raising=False)
    input_errors.install()
    return passed_on


@pytest.mark.parametrize(
    "error",
    [
        ConfigError("classifier_training.finetune: encoder_lr_scale must be >= 0, got -1.0"),
        StaleInputError("splits were made with other settings"),
        MissingInputsError("this run reads 1 input(s) not made yet"),
    ],
)
def test_an_input_error_prints_its_message_without_a_traceback(hook, capsys, error):
    sys.excepthook(type(error), error, None)
    assert hook == []
    assert capsys.readouterr().err == (
        f"Error: {type(error).__name__}: {error}\n(An error in the run's input, not in the "
        "code: the traceback is left out; SKIN_LESION_TRACEBACK=1 shows it.)\n"
    )


def test_any_other_error_keeps_the_previous_hook_and_its_traceback(hook, capsys):
    for error in (RuntimeError("a bug"), FileNotFoundError("a plain missing file")):
        sys.excepthook(type(error), error, None)
    assert [str(e) for e in hook] == ["a bug", "a plain missing file"]
    assert capsys.readouterr().err == ""


def test_the_variable_restores_the_traceback_and_install_wraps_once(hook, monkeypatch, capsys):
    wrapped = sys.excepthook
    input_errors.install()
    assert sys.excepthook is wrapped
    monkeypatch.setenv(input_errors.TRACEBACK_VARIABLE, "1")
    error = ConfigError("bad")
    sys.excepthook(ConfigError, error, None)
    assert hook == [error] and capsys.readouterr().err == ""


def test_a_full_or_read_only_disk_prints_its_message_without_a_traceback(hook, capsys):
    """`kedro run` on a full disk printed a 200-line traceback ending in Errno 28."""
    from kedro.io import DatasetError

    for code, words in ((28, "No space left on device"), (30, "Read-only file system")):
        try:
            try:
                raise OSError(code, words)
            except OSError as cause:
                raise DatasetError(
                    f"test_metrics: Failed while saving data\n[Errno {code}] {words}"
                ) from cause
        except DatasetError as error:
            sys.excepthook(DatasetError, error, None)
    assert hook == []
    err = capsys.readouterr().err
    assert err.count("(An error in the file system (a full disk") == 2
    assert "[Errno 28] No space left on device" in err and "Read-only file system" in err


def _slice_error(**kwargs) -> ValueError:
    """Kedro's own refusal of a slicing option, raised (with its traceback) by its Pipeline."""
    from kedro.pipeline import node, pipeline

    nodes = pipeline(
        [
            node(lambda x: x, "raw", "test_metrics", name="evaluate_test"),
            node(lambda x: x, "test_metrics", "report", name="build_report"),
        ]
    )
    try:
        if "from_nodes" in kwargs:
            nodes.from_nodes(*kwargs["from_nodes"])
        else:
            nodes.to_outputs(*kwargs["to_outputs"])
    except ValueError as error:
        return error
    raise AssertionError("Kedro accepted the slice")


def test_a_mistyped_node_or_dataset_of_a_slice_prints_one_line(hook, capsys, monkeypatch):
    """`kedro run --from-nodes evaluate_tst` printed Kedro's 100-line traceback."""
    monkeypatch.setattr(
        input_errors, "_known_names", lambda: (["build_report", "evaluate_test"], ["report"])
    )
    error = _slice_error(from_nodes=["evaluate_tst"])
    sys.excepthook(ValueError, error, error.__traceback__)
    assert hook == []
    err = capsys.readouterr().err
    assert err.startswith("Error: ValueError: Pipeline does not contain nodes named")
    assert "'evaluate_tst': did you mean 'evaluate_test'?" in err
    error = _slice_error(to_outputs=["reprot"])
    sys.excepthook(ValueError, error, error.__traceback__)
    assert "'reprot': did you mean 'report'?" in capsys.readouterr().err


def test_a_value_error_of_our_own_code_keeps_its_traceback(hook, capsys):
    error = ValueError("Pipeline does not contain nodes named ['x'] (but raised elsewhere)")
    try:
        raise error
    except ValueError:
        pass
    sys.excepthook(ValueError, error, error.__traceback__)
    assert hook == [error] and capsys.readouterr().err == ""
