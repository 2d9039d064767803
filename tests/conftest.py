"""Shared fixtures: generated HAM10000-format data and a throwaway copy of the project."""

from __future__ import annotations

import shutil
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


@pytest.fixture
def kedro_project(tmp_path: Path, demo_raw_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the project's conf/ in a temp folder (the cwd), raw data in place."""
    shutil.copy(PROJECT_ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(PROJECT_ROOT / "conf", tmp_path / "conf")
    (tmp_path / "src").mkdir()  # bootstrap_project wants it; the package is installed
    raw = tmp_path / "data" / "test" / "01_raw" / "HAM10000"
    shutil.copytree(demo_raw_dir, raw)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KEDRO_DISABLE_TELEMETRY", "true")
    return tmp_path


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
