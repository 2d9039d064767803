"""The notebooks: committed clean, and run top to bottom on a project whose pipelines have run."""

from __future__ import annotations

import asyncio
import re
import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import PROJECT_ROOT, run_kedro

NOTEBOOK_DIR = PROJECT_ROOT / "notebooks"
NOTEBOOKS = ("01_explore_data.ipynb", "02_inspect_results.ipynb")
CELL_TIMEOUT_S = 300
# Where each kernel starts and its extra arguments. 01 runs as under `kedro jupyter lab`: the
# project's kernel is ipykernel with `--ext kedro.ipython`, started in notebooks/, and Kedro
# finds the project in the parent folder (the notebook's own `%load_ext` is then a no-op).
# 02 runs in a plain python3 kernel in the project root, as `jupyter lab` started there.
KERNELS = {
    "01_explore_data.ipynb": ("notebooks", ["--ext", "kedro.ipython"]),
    "02_inspect_results.ipynb": (".", []),
}
# Cells that must draw a figure (an image/png output), by cell id.
FIGURE_CELLS = {
    "01_explore_data.ipynb": {"classes", "one-lesion", "age", "sex-site", "splits", "samples"},
    "02_inspect_results.ipynb": {"figures", "history", "gradcam-classes", "embeddings", "tsne"},
}


def read(path: Path) -> nbformat.NotebookNode:
    """A notebook as stored, without upgrading its format."""
    return nbformat.read(path, as_version=nbformat.NO_CONVERT)


def code_cells(notebook: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def stdout_of(cell: nbformat.NotebookNode) -> str:
    return "".join(
        out.text for out in cell.outputs if out.output_type == "stream" and out.name == "stdout"
    )


def has_figure(cell: nbformat.NotebookNode) -> bool:
    return any("image/png" in out.get("data", {}) for out in cell.outputs)


@pytest.fixture(scope="module")
def project_with_outputs(tmp_path_factory: pytest.TempPathFactory, demo_raw_dir: Path) -> Path:
    """A copy of the project (conf, notebooks, generated raw data) after a full ``kedro run``."""
    project = tmp_path_factory.mktemp("notebook_project")
    shutil.copy(PROJECT_ROOT / "pyproject.toml", project / "pyproject.toml")
    shutil.copytree(PROJECT_ROOT / "conf", project / "conf")
    shutil.copytree(NOTEBOOK_DIR, project / "notebooks")
    (project / "src").mkdir()  # bootstrap_project wants it; the package is installed
    shutil.copytree(demo_raw_dir, project / "data" / "test" / "01_raw" / "HAM10000")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(project)  # relative paths (the MLflow store) stay in the copy
        patch.setenv("KEDRO_DISABLE_TELEMETRY", "true")
        run_kedro(project)
    return project


def test_notebooks_are_committed_clean():
    found = sorted(p.name for p in NOTEBOOK_DIR.glob("*.ipynb"))
    assert found == list(NOTEBOOKS), "add new notebooks to NOTEBOOKS, so that they are run"
    for name in NOTEBOOKS:
        notebook = read(NOTEBOOK_DIR / name)
        nbformat.validate(notebook)
        assert notebook.nbformat == 4, name
        assert notebook.metadata.kernelspec.name == "python3", name
        assert "KEDRO_ENV" in notebook.cells[0].source, f"{name}: first cell must explain KEDRO_ENV"
        cells = code_cells(notebook)
        assert cells[0].source.strip() == "%load_ext kedro.ipython", name
        for cell in cells:
            assert cell.outputs == [], f"{name}: cell {cell.id} has outputs"
            assert cell.execution_count is None, f"{name}: cell {cell.id} has an execution count"
            # Data comes through the catalog, never from a path written into the notebook.
            assert not re.search(r"data/|read_csv|read_parquet|open\(", cell.source), (
                f"{name}: cell {cell.id} reads files itself"
            )


async def execute_all(clients: list[NotebookClient]) -> list:
    """Run the notebooks side by side; a failure comes back as its exception."""
    return await asyncio.gather(*(c.async_execute() for c in clients), return_exceptions=True)


@pytest.fixture(scope="module")
def executed(project_with_outputs: Path) -> dict[str, nbformat.NotebookNode | BaseException]:
    """Each notebook run once in its own kernel, both at the same time.

    A kernel spends most of its time importing torch, timm and MLflow on one thread, so on
    two cores the second kernel's start-up costs little extra wall time.
    """
    folder = project_with_outputs / "notebooks"
    notebooks = {name: nbformat.read(folder / name, as_version=4) for name in NOTEBOOKS}
    clients = [
        NotebookClient(
            notebook,
            timeout=CELL_TIMEOUT_S,
            kernel_name="python3",
            extra_arguments=KERNELS[name][1],
            resources={"metadata": {"path": str(project_with_outputs / KERNELS[name][0])}},
        )
        for name, notebook in notebooks.items()
    ]
    with pytest.MonkeyPatch.context() as patch:
        # Kernels inherit this environment; Kedro reads KEDRO_ENV when the session starts.
        patch.setenv("KEDRO_ENV", "test")
        patch.setenv("KEDRO_DISABLE_TELEMETRY", "true")
        # One OpenMP thread per kernel: on shared cores, sklearn's t-SNE with a thread per
        # core took 23 s instead of 0.8 s (49 points) while other processes held the cores.
        patch.setenv("OMP_NUM_THREADS", "1")
        results = asyncio.run(execute_all(clients))
    return dict(zip(notebooks, results, strict=True))


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs(name: str, executed: dict):
    result = executed[name]
    if isinstance(result, BaseException):
        raise result  # nbclient's CellExecutionError: the failing cell and its traceback

    cells = {cell.id: cell for cell in code_cells(result)}
    assert "Kedro environment: test" in stdout_of(cells["setup"])
    missing = sorted(cid for cid in FIGURE_CELLS[name] if not has_figure(cells[cid]))
    assert not missing, f"{name}: cells {missing} drew no figure"
    if name.startswith("01"):
        assert "lesions in more than one split: 0 " in stdout_of(cells["splits"])
    else:
        wrong = re.search(r"(\d+) of (\d+) test images", stdout_of(cells["mistakes"]))
        assert wrong, stdout_of(cells["mistakes"])
        # Mistakes get their Grad-CAM figure; a perfect classifier gets a note instead.
        assert has_figure(cells["gradcam-mistakes"]) == (int(wrong[1]) > 0)
