"""The notebooks: committed clean, and run top to bottom on a project whose pipelines have run."""

from __future__ import annotations

import asyncio
import re
import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

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
# Cells added after a cell (by id) before the run, not to the committed notebook: each prints
# "probe NAME: VALUE" about what that cell drew, for test_notebook_runs to check.
PROBES = {
    "01_explore_data.ipynb": {
        # A log-scale bar chart must start at 1: from matplotlib's automatic limit (just
        # below the smallest bar) a class of a dozen images drew as an empty bar.
        "classes": 'print(f"probe classes-ymin: {ax.get_ylim()[0]}")',
    },
    "02_inspect_results.ipynb": {
        # The report's ROC figure marks melanoma's two operating points; so must this one.
        "figures": (
            'print(f"probe roc-legend: '
            '{[t.get_text() for t in roc.axes[0].get_legend().get_texts()]}")'
        ),
        # The report's training curves mark the epoch the classifier kept; so must these.
        "history": (
            'print(f"probe kept: {sorted({line.get_label() for ax in training_curves.axes '
            "for line in ax.get_lines() if line.get_label().startswith('kept:')})}\")"
        ),
    },
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


def text_of(cell: nbformat.NotebookNode) -> str:
    """Everything a cell showed as text: its stdout and the plain-text form of its displays."""
    shown = [out.get("data", {}).get("text/plain", "") for out in cell.outputs]
    return stdout_of(cell) + "".join(shown)


def probe(cell: nbformat.NotebookNode, name: str) -> str:
    found = re.search(rf"^probe {name}: (.*)$", stdout_of(cell), re.MULTILINE)
    assert found, f"probe {name} printed nothing: {stdout_of(cell)!r}"
    return found[1]


def with_probes(name: str, notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """``notebook`` with each of ``PROBES[name]`` inserted after the cell it names."""
    for after, source in PROBES.get(name, {}).items():
        at = next(i for i, cell in enumerate(notebook.cells) if cell.get("id") == after)
        cell = nbformat.v4.new_code_cell(source)
        cell.id = f"probe-{after}"
        notebook.cells.insert(at + 1, cell)
    return notebook


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
    notebooks = {
        name: with_probes(name, nbformat.read(folder / name, as_version=4)) for name in NOTEBOOKS
    }
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
        assert float(probe(cells["probe-classes"], "classes-ymin")) <= 1.0
    else:
        assert "mel threshold (B)" in probe(cells["probe-figures"], "roc-legend")
        assert "kept: epoch" in probe(cells["probe-history"], "kept")
        # The confusion matrix as a table too, true classes down, predicted across.
        assert "true \\ predicted" in text_of(cells["metrics"]), text_of(cells["metrics"])
        wrong = re.search(r"(\d+) of (\d+) test images", stdout_of(cells["mistakes"]))
        assert wrong, stdout_of(cells["mistakes"])
        # Mistakes get their Grad-CAM figure; a perfect classifier gets a note instead.
        assert has_figure(cells["gradcam-mistakes"]) == (int(wrong[1]) > 0)


@pytest.fixture(scope="module")
def project_before_run(tmp_path_factory: pytest.TempPathFactory, demo_raw_dir: Path) -> Path:
    """A copy of the project with its raw data and no pipeline output: a fresh clone."""
    project = tmp_path_factory.mktemp("notebook_project_before_run")
    shutil.copy(PROJECT_ROOT / "pyproject.toml", project / "pyproject.toml")
    shutil.copytree(PROJECT_ROOT / "conf", project / "conf")
    shutil.copytree(NOTEBOOK_DIR, project / "notebooks")
    (project / "src").mkdir()
    shutil.copytree(demo_raw_dir, project / "data" / "test" / "01_raw" / "HAM10000")
    return project


# What each notebook must tell a user who opened it before running its pipelines.
RUN_FIRST = {
    "01_explore_data.ipynb": "kedro run --pipelines data_processing --env test",
    "02_inspect_results.ipynb": "kedro run --env test",
}


@pytest.mark.slow
def test_notebooks_say_what_to_run_first(project_before_run: Path):
    """Opened before `kedro run`, each notebook stops in its setup cell and names the command
    (and environment) to run, not a file-not-found traceback from deep inside Kedro."""
    folder = project_before_run / "notebooks"
    notebooks = {name: nbformat.read(folder / name, as_version=4) for name in NOTEBOOKS}
    clients = [
        NotebookClient(
            notebook,
            timeout=CELL_TIMEOUT_S,
            kernel_name="python3",
            extra_arguments=KERNELS[name][1],
            resources={"metadata": {"path": str(project_before_run / KERNELS[name][0])}},
        )
        for name, notebook in notebooks.items()
    ]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KEDRO_ENV", "test")
        patch.setenv("KEDRO_DISABLE_TELEMETRY", "true")
        results = asyncio.run(execute_all(clients))
    for (name, notebook), error in zip(notebooks.items(), results, strict=True):
        assert isinstance(error, CellExecutionError), f"{name} ran without pipeline outputs"
        # Kedro's IPython extension shows a cell's exception as rich text (a display), which
        # the error nbclient raises does not hold: read what the failing cell showed.
        failed = [c for c in code_cells(notebook) if c.get("execution_count") is not None][-1]
        shown = re.sub(r"\x1b\[[0-9;]*m", "", text_of(failed) + str(error))
        assert failed.id == "setup", f"{name}: stopped in {failed.id}, not setup: {shown[-2000:]}"
        assert "PipelineNotRunError" in shown, f"{name}: {shown[-2000:]}"
        assert f"`{RUN_FIRST[name]}`" in " ".join(shown.split()), f"{name}: {shown[-2000:]}"
        assert "'test'" in shown, f"{name}: {shown[-2000:]}"


class FakeCatalog:
    """Just what ``require_outputs`` asks of Kedro's catalog."""

    def __init__(self, present: set[str]):
        self.present = present

    def exists(self, name: str) -> bool:
        return name in self.present

    def get(self, name: str):
        raise KeyError(name)  # no location: the message still names the entry


def test_require_outputs_names_what_is_missing_and_the_command():
    from skin_lesion.notebook import PipelineNotRunError, require_outputs

    require_outputs(FakeCatalog({"a", "b"}), ["a", "b"], env=None, run="kedro run")
    with pytest.raises(PipelineNotRunError, match=r"'demo' has no b yet.*`kedro run --env demo`"):
        require_outputs(FakeCatalog({"a"}), ["a", "b"], env="demo", run="kedro run")
    with pytest.raises(PipelineNotRunError, match=r"'local \(default\)'.*`kedro run`;"):
        require_outputs(FakeCatalog(set()), ["a"], env=None, run="kedro run")
