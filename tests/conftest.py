"""Shared fixtures: generated HAM10000-format data and a throwaway copy of the project."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# Small but with every class in every split (the generator keeps >= 12 lesions per class).
TEST_IMAGES = 160
TEST_SIZE = (64, 48)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip tests marked ``gpu`` when no CUDA device is present."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def demo_raw_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated dataset in HAM10000's Kaggle layout, made once per test session."""
    from skin_lesion.demo import generate_demo_dataset

    out = tmp_path_factory.mktemp("demo") / "HAM10000"
    generate_demo_dataset(out, n_images=TEST_IMAGES, seed=0, size=TEST_SIZE)
    return out


def copy_project(folder: Path, demo_raw_dir: Path | None = None) -> Path:
    """The project's conf/ and pyproject.toml in ``folder``, and the generated raw data in
    place where ``demo_raw_dir`` is given."""
    shutil.copy(PROJECT_ROOT / "pyproject.toml", folder / "pyproject.toml")
    shutil.copytree(PROJECT_ROOT / "conf", folder / "conf")
    (folder / "src").mkdir()  # bootstrap_project wants it; the package is installed
    if demo_raw_dir is not None:
        shutil.copytree(demo_raw_dir, folder / "data" / "test" / "01_raw" / "HAM10000")
    return folder


@pytest.fixture
def kedro_project(tmp_path: Path, demo_raw_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the project's conf/ in a temp folder (the cwd), raw data in place."""
    copy_project(tmp_path, demo_raw_dir)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KEDRO_DISABLE_TELEMETRY", "true")
    return tmp_path


@pytest.fixture(scope="session")
def full_run_outputs(
    tmp_path_factory: pytest.TempPathFactory, demo_raw_dir: Path
) -> Callable[..., Path]:
    """``outputs(**params)``: the ``data/test`` folder of a project after ``kedro run`` (every
    pipeline, the test env) with those runtime parameters, made once per test session for
    each set of parameters. A full run takes about 10 s; copies of it take milliseconds."""
    made: dict[str, Path] = {}

    def outputs(**params) -> Path:
        key = json.dumps(params, sort_keys=True)
        if key not in made:
            project = copy_project(tmp_path_factory.mktemp("full_run"), demo_raw_dir)
            with pytest.MonkeyPatch.context() as patch:
                patch.chdir(project)
                patch.setenv("KEDRO_DISABLE_TELEMETRY", "true")
                run_kedro(project, **params)
            made[key] = project / "data" / "test"
        return made[key]

    return outputs


def copy_full_run(project: Path, outputs: Path) -> Path:
    """Put ``outputs`` (from :func:`full_run_outputs`) into ``project``'s ``data/test``, as if
    ``project`` had made them: the same raw images, so every lineage check accepts them."""
    # The run lock of the finished run stays with it (01_raw is the same generated data).
    skip = shutil.ignore_patterns("01_raw", ".skin-lesion-run.lock")
    shutil.copytree(outputs, project / "data" / "test", ignore=skip, dirs_exist_ok=True)
    return project


@pytest.fixture
def after_full_run(kedro_project: Path, full_run_outputs: Callable[..., Path]) -> Path:
    """``kedro_project`` after ``kedro run`` with the test env's parameters (a copy of one
    such run made once per session: the tests that start from it use it, not run it again)."""
    return copy_full_run(kedro_project, full_run_outputs())


def run_kedro(
    project: Path,
    pipeline: str | None = None,
    *,
    from_nodes: list[str] | None = None,
    node_names: list[str] | None = None,
    runner=None,
    only_missing_outputs: bool = False,
    **runtime_params,
) -> dict:
    """Run a pipeline (from ``from_nodes`` on, or only ``node_names``) of the copied project
    in the ``test`` env, with Kedro's default runner or ``runner``."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(project)
    with KedroSession.create(
        project_path=project, env="test", runtime_params=runtime_params or None
    ) as session:
        return session.run(
            pipeline_names=[pipeline] if pipeline else None,
            from_nodes=from_nodes,
            node_names=node_names,
            runner=runner,
            only_missing_outputs=only_missing_outputs,
        )


def colour_images(n: int = 64, classes: int = 4, size: int = 24, seed: int = 0):
    """Small images whose class is visible: its own colour and stripe direction, plus noise."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    colours = np.random.default_rng(99).integers(40, 220, size=(classes, 3))
    yy, xx = np.mgrid[:size, :size]
    images = np.empty((n, size, size, 3), np.uint8)
    for i, label in enumerate(labels):
        stripes = ((xx if label % 2 else yy) // 3 % 2)[..., None] * 60
        noise = rng.normal(0, 12, size=(size, size, 3))
        images[i] = np.clip(colours[label] + stripes + noise, 0, 255)
    return images, labels
