"""The `kedro` command itself loads the project (plugins and project CLI included)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT

pytestmark = pytest.mark.slow


def _kedro_run(project: Path, *args: str) -> subprocess.CompletedProcess:
    """``kedro run --env test ARGS`` in ``project``, as a user types it."""
    return subprocess.run(
        [str(Path(sys.executable).with_name("kedro")), "run", "--env", "test", *args],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_kedro_registry_lists_every_pipeline():
    kedro = Path(sys.executable).with_name("kedro")
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true"}
    result = subprocess.run(
        [str(kedro), "registry", "list"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    for name in (
        "__default__",
        "data_processing",
        "contrastive_pretraining",
        "classifier_training",
        "reporting",
        "inference",
    ):
        assert f"- {name}" in result.stdout, result.stdout
    # mlflow's "Add type hints to the `predict` method" (14 lines, from kedro-mlflow's plugin
    # class) is dropped by the kedro.init entry point (skin_lesion.warning_filters).
    output = " ".join((result.stdout + result.stderr).split())  # rich wraps long lines
    assert "type hints" not in output, output[-3000:]


def test_kedro_run_pipelines_prints_no_deprecation_warning(kedro_project):
    # settings.py filters the register_new_resolver deprecation that Kedro's config loader and
    # kedro-mlflow's hook raise on every run; --pipelines is Kedro 1.7's spelling (the README's).
    result = _kedro_run(kedro_project, "--pipelines", "data_processing")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert (kedro_project / "data" / "test" / "05_model_input" / "splits.parquet").is_file()
    assert "register_new_resolver" not in output
    assert "is deprecated" not in output, output[-3000:]


def test_a_mistyped_pipeline_name_is_named_with_the_intended_one(kedro_project):
    result = _kedro_run(kedro_project, "--pipelines", "reportng")
    output = " ".join((result.stdout + result.stderr).split())  # rich wraps long lines
    assert result.returncode != 0
    # Kedro's own message, once the registry reports a missing pipeline as a KeyError.
    assert "Failed to find the pipeline named 'reportng'" in output, output[-3000:]
    assert "Did you mean one of these instead? reporting" in output
    assert "An error occurred while importing" not in output
    # One message, as for any input error, not Kedro's 130-line traceback.
    assert "Error: ValueError: Failed to find the pipeline named 'reportng'" in output
    assert "Traceback" not in output


def test_an_error_in_the_input_prints_its_message_not_a_traceback(kedro_project):
    """A mistyped parameter value, or HAM10000 not where the catalog looks, came last in a
    200-300-line traceback; the message alone names the culprit."""
    import shutil

    bad_value = ["--params", "classifier_training.finetune.encoder_lr_scale=-1"]
    shutil.rmtree(kedro_project / "data" / "test" / "01_raw" / "HAM10000")
    for extra, message in [
        (bad_value, "Error: ConfigError: classifier_training.finetune: encoder_lr_scale must "),
        ([], "Error: DatasetError: raw_images: HAM10000 image folder not found: "),
    ]:
        result = _kedro_run(kedro_project, "--pipelines", "data_processing", *extra)
        output = result.stdout + result.stderr
        assert result.returncode == 1, output[-3000:]
        assert message in result.stderr, output[-3000:]
        assert "SKIN_LESION_TRACEBACK=1 shows it" in result.stderr
        assert "Traceback" not in output and len(output.splitlines()) < 80, output[-3000:]


def test_the_installed_package_runs_with_a_packaged_conf(kedro_project):
    # What `kedro package` makes: the wheel (here the installed package) and a tar.gz of conf/
    # (local/*.yml left out); Kedro runs it as `python -m skin_lesion --conf-source=...`,
    # with no pyproject.toml or conf/ folder beside it.
    import shutil
    import tarfile

    packaged = kedro_project / "conf-skin_lesion.tar.gz"
    with tarfile.open(packaged, "w:gz") as tar:
        tar.add(kedro_project / "conf", arcname="conf")
    shutil.rmtree(kedro_project / "conf")
    (kedro_project / "pyproject.toml").unlink()
    command = [sys.executable, "-m", "skin_lesion", f"--conf-source={packaged}"]
    result = subprocess.run(
        [*command, "--env", "test", "--pipelines", "data_processing"],
        cwd=kedro_project,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert (kedro_project / "data" / "test" / "05_model_input" / "splits.parquet").is_file()
    # kedro-viz's run-events hook finds no project folder to write to: dropped, as a notice
    # nobody running a package can act on (skin_lesion.warning_filters).
    assert "No Kedro project found" not in " ".join(output.split()), output[-3000:]


def test_sliced_runs_print_no_kedro_viz_workflow_notice(kedro_project):
    result = _kedro_run(kedro_project, "--to-nodes", "validate_metadata")
    output = " ".join((result.stdout + result.stderr).split())  # rich wraps long lines
    assert result.returncode == 0, output[-3000:]
    assert "Workflow tracking is disabled" not in output, output[-3000:]


def test_only_the_listed_third_party_warnings_are_dropped():
    """mlflow raises its warning under its own "once" filter, ahead of any warnings filter of
    ours: it is dropped where Kedro logs warnings (the py.warnings logger), and only it and the
    OmegaConf one; the whole path is checked by test_kedro_registry_lists_every_pipeline."""
    import logging

    from skin_lesion import warning_filters

    warning_filters.install()
    warning_filters.install()  # once per process, whoever calls it
    logger = logging.getLogger("py.warnings")
    drops = [f for f in logger.filters if isinstance(f, warning_filters.DropMessages)]
    assert len(drops) == 1

    def shown(text: str) -> bool:
        # As logging.captureWarnings logs a warning: "%s", the formatted warning.
        record = logger.makeRecord("py.warnings", logging.WARNING, __file__, 1, "%s", (text,), None)
        return drops[0].filter(record)

    where = "/venv/mlflow/pyfunc/utils/data_validation.py:187: UserWarning: "
    assert not shown(
        where + "\x1b[33mAdd type hints to the `predict` method to enable data validation and "
        "automatic signature inference during model logging.\x1b[0m\n  color_warning(\n"
    )
    assert not shown("/venv/omegaconf.py:1: UserWarning: register_new_resolver() is deprecated")
    assert shown(where + "a warning someone should read")
    assert shown("UserWarning: Add type hints to your own code")  # not mlflow's sentence


def test_kedro_viz_notices_no_user_can_act_on_are_dropped_on_their_own_loggers():
    """kedro-viz logs "Workflow tracking is disabled during partial pipeline runs" on every
    `kedro run --pipelines X` and "No Kedro project found ...; skipping write." after every
    packaged run; FastAPI warns that kedro-viz's response class subclasses a deprecated one.
    Only those: kedro-viz's other warnings (a non-sequential runner, a failed write) show."""
    import logging
    import warnings

    from skin_lesion import warning_filters

    warning_filters.install()

    def shown(logger_name: str, message: str, *args: object) -> bool:
        logger = logging.getLogger(logger_name)
        record = logger.makeRecord(logger_name, logging.WARNING, __file__, 1, message, args, None)
        return all(f.filter(record) for f in logger.filters)

    run_hooks = "kedro_viz.integrations.kedro.run_hooks"
    hooks_utils = "kedro_viz.integrations.kedro.hooks_utils"
    partial = (
        "Workflow tracking is disabled during partial pipeline runs (executed using --from-nodes, "
        "--to-nodes, --tags, --pipeline, and more). `.viz/kedro_pipeline_events.json` will be "
        "created only during a full kedro run."
    )
    assert not shown(run_hooks, partial)
    assert not shown(hooks_utils, "No Kedro project found in %s; skipping write.", "/tmp/x")
    # Left to show: kedro-viz's other warnings, and the same words on another logger.
    assert shown(run_hooks, "Workflow tracking is disabled for non-sequential runners. ...")
    assert shown(hooks_utils, "Failed writing events: %s", OSError("disk full"))
    assert shown("skin_lesion.pipelines", partial)

    from fastapi.exceptions import FastAPIDeprecationWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warning_filters.install()  # catch_warnings reset the filters: put ours back in front
        for text in (
            "ORJSONResponse is deprecated, FastAPI now serializes data directly to JSON bytes",
            "UJSONResponse is deprecated, FastAPI now serializes data directly to JSON bytes",
        ):
            warnings.warn(text, FastAPIDeprecationWarning, stacklevel=1)
    assert [str(w.message)[:21] for w in caught] == ["UJSONResponse is depr"]
