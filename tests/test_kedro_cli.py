"""The `kedro` command itself loads the project (plugins and project CLI included)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT

pytestmark = pytest.mark.slow


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
