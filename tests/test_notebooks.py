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

from tests.conftest import PROJECT_ROOT, copy_full_run, copy_project, run_kedro

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


def client_for(name: str, notebook: nbformat.NotebookNode, project: Path) -> NotebookClient:
    """A client that runs notebook ``name`` of ``project`` as its kernel would start."""
    return NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        extra_arguments=KERNELS[name][1],
        resources={"metadata": {"path": str(project / KERNELS[name][0])}},
    )


@pytest.fixture(scope="module")
def project_with_outputs(
    tmp_path_factory: pytest.TempPathFactory, demo_raw_dir: Path, full_run_outputs
) -> Path:
    """A copy of the project (conf, notebooks, generated raw data) after a full ``kedro run``
    (a copy of the session's one, ``full_run_outputs``)."""
    project = copy_project(tmp_path_factory.mktemp("notebook_project"), demo_raw_dir)
    shutil.copytree(NOTEBOOK_DIR, project / "notebooks")
    return copy_full_run(project, full_run_outputs())


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
        client_for(name, notebook, project_with_outputs) for name, notebook in notebooks.items()
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


def shown_by_failure(notebook: nbformat.NotebookNode, error: BaseException) -> tuple[str, str]:
    """The id of the cell a notebook stopped in and what it showed, colour codes removed.

    Kedro's IPython extension shows a cell's exception as rich text (a display), which the
    error nbclient raises does not hold: read what the failing cell showed.
    """
    failed = [c for c in code_cells(notebook) if c.get("execution_count") is not None][-1]
    return failed.id, re.sub(r"\x1b\[[0-9;]*m", "", text_of(failed) + str(error))


@pytest.mark.slow
def test_02_refuses_results_made_before_data_processing_ran_again(
    project_with_outputs: Path, executed: dict
):
    """`kedro run --pipelines data_processing` with another split, and nothing after it:
    02 stops in its setup cell, naming the stale outputs and the command that remakes them,
    instead of showing the old classifier's metrics beside the new splits. (``executed``:
    the notebooks ran on the full run's outputs before they are changed here.)"""
    name = "02_inspect_results.ipynb"
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(project_with_outputs)
        patch.setenv("KEDRO_DISABLE_TELEMETRY", "true")
        run_kedro(project_with_outputs, "data_processing", data_processing={"split": {"seed": 7}})
        patch.setenv("KEDRO_ENV", "test")
        notebook = nbformat.read(project_with_outputs / "notebooks" / name, as_version=4)
        client = client_for(name, notebook, project_with_outputs)
        with pytest.raises(CellExecutionError) as caught:
            client.execute()
    cell, shown = shown_by_failure(notebook, caught.value)
    said = " ".join(shown.split())
    assert cell == "setup", f"stopped in {cell}, not setup: {said[-2000:]}"
    assert "StaleOutputsError" in said, said[-2000:]
    assert "`classifier` is stale: it was trained on other splits" in said, said[-2000:]
    assert "`test_predictions` does not hold the split's" in said, said[-2000:]
    command = (
        "`kedro run --pipelines contrastive_pretraining,classifier_training,reporting --env test`"
    )
    assert command in said, said[-2000:]


@pytest.fixture(scope="module")
def project_before_run(tmp_path_factory: pytest.TempPathFactory, demo_raw_dir: Path) -> Path:
    """A copy of the project with its raw data and no pipeline output: a fresh clone."""
    project = copy_project(tmp_path_factory.mktemp("notebook_project_before_run"), demo_raw_dir)
    shutil.copytree(NOTEBOOK_DIR, project / "notebooks")
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
        client_for(name, notebook, project_before_run) for name, notebook in notebooks.items()
    ]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KEDRO_ENV", "test")
        patch.setenv("KEDRO_DISABLE_TELEMETRY", "true")
        results = asyncio.run(execute_all(clients))
    for (name, notebook), error in zip(notebooks.items(), results, strict=True):
        assert isinstance(error, CellExecutionError), f"{name} ran without pipeline outputs"
        failed, shown = shown_by_failure(notebook, error)
        assert failed == "setup", f"{name}: stopped in {failed}, not setup: {shown[-2000:]}"
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


def consistent_outputs() -> dict:
    """What 02_inspect_results reads, as one full run makes it: each output recording the
    fingerprints of those it was made from."""
    import numpy as np
    import pandas as pd
    import torch

    from skin_lesion import lineage
    from skin_lesion.checkpoints import state_fingerprint
    from skin_lesion.images import ImageCache

    ids = [f"ISIC_{k}" for k in range(6)]
    splits = pd.DataFrame(
        {
            "image_id": ids,
            "lesion_id": [f"L{k}" for k in range(6)],
            "label": [0, 1, 0, 1, 0, 1],
            "split": ["train", "train", "val", "val", "test", "test"],
        }
    )
    pixels = np.arange(6 * 4 * 4 * 3, dtype=np.uint8).reshape(6, 4, 4, 3)
    cache = ImageCache(pixels, ids, {"height": 4, "width": 4})
    cached = pd.DataFrame(
        {"image_id": ids, "age": [50.0] * 6, "sex": ["male"] * 6, "localization": ["back"] * 6}
    )
    encoder = {"state_dict": {"w": torch.ones(3)}, "history": [{"epoch": 0, "loss": 2.0}]}
    classifier = {
        "state_dict": {"w": torch.zeros(3)},
        "history": [{"phase": "finetune", "epoch": 0, "val_loss": 1.0}],
        "preprocessing": {"cache": dict(cache.preprocessing)},
        "params": {
            lineage.SPLIT_KEY: lineage.split_fingerprint(splits),
            lineage.DATA_KEY: lineage.data_fingerprint(cache, splits, cached),
            lineage.ENCODER_KEY: state_fingerprint(encoder),
        },
    }
    made_by = state_fingerprint(classifier)
    digest = dict(zip(ids, cache.digests(), strict=True))
    test = splits[splits["split"] == "test"]
    predictions = test.assign(
        **{
            lineage.PREDICTED_BY: made_by,
            lineage.PREDICTED_TTA: "flips",
            lineage.PREDICTED_PIXELS: [digest[i] for i in test["image_id"]],
        }
    )
    scored = ids[2:]  # val and test
    metrics = {
        "tta": "flips",
        "operating_point": {lineage.PREDICTED_BY: made_by, lineage.PREDICTED_TTA: "flips"},
        lineage.SCORED_PIXELS: lineage.pixels_fingerprint(scored, [digest[i] for i in scored]),
    }
    return {
        "classifier": classifier,
        "image_cache": cache,
        "splits": splits,
        "cached_metadata": cached,
        "test_predictions": predictions,
        "test_metrics": metrics,
        "training_history": classifier["history"],
        "pretrained_encoder": encoder,
        "pretraining_history": encoder["history"],
    }


def memory_catalog(outputs: dict):
    from kedro.io import DataCatalog, MemoryDataset

    return DataCatalog({name: MemoryDataset(value) for name, value in outputs.items()})


def test_require_results_current_refuses_outputs_of_other_runs_naming_the_command():
    import torch

    from skin_lesion.notebook import StaleOutputsError, require_results_current

    outputs = consistent_outputs()
    require_results_current(memory_catalog(outputs), env="demo")
    # Without the pretrained encoder (none saved): the rest is still checked, and passes.
    without = {k: v for k, v in outputs.items() if k != "pretrained_encoder"}
    require_results_current(memory_catalog(without), env=None)

    # `--pipelines classifier_training` rerun without reporting: the predictions and the
    # metrics are the old classifier's.
    retrained = outputs["classifier"] | {"state_dict": {"w": torch.full((3,), 0.5)}}
    with pytest.raises(StaleOutputsError) as caught:
        require_results_current(memory_catalog(outputs | {"classifier": retrained}), env="demo")
    said = " ".join(str(caught.value).split())
    assert "`test_predictions` is stale: it was predicted by classifier" in said
    assert "`test_metrics` is stale: it scores classifier" in said
    assert "`classifier` is stale" not in said
    assert "Kedro environment 'demo'" in said
    assert "`kedro run --pipelines reporting --env demo`" in said

    # `--pipelines data_processing` rerun with another split (a test and a train image
    # swapped): the classifier may have trained on today's test images, and the
    # predictions are of another test split.
    swapped = outputs["splits"].copy()
    swapped.loc[[0, 4], "split"] = ["test", "train"]
    with pytest.raises(StaleOutputsError) as caught:
        require_results_current(memory_catalog(outputs | {"splits": swapped}), env=None)
    said = " ".join(str(caught.value).split())
    assert "`classifier` is stale: it was trained on other splits" in said
    assert "`test_predictions` does not hold the split's 2 images" in said
    assert "'local (default)'" in said
    assert "`kedro run --pipelines contrastive_pretraining,classifier_training,reporting`" in said

    # A train image replaced and data_processing rerun: same splits, other pixels.
    pixels = outputs["image_cache"].images.copy()
    pixels[0] += 1
    cache = outputs["image_cache"]
    replaced = type(cache)(pixels, cache.image_ids, cache.preprocessing)
    with pytest.raises(StaleOutputsError) as caught:
        require_results_current(memory_catalog(outputs | {"image_cache": replaced}), env=None)
    said = " ".join(str(caught.value).split())
    assert "`classifier` is stale: it was trained on other train/val images" in said
    # The test predictions are still of today's pixels, but retraining makes them stale.
    assert "`kedro run --pipelines contrastive_pretraining,classifier_training,reporting`" in said

    # Contrastive pretraining rerun alone; a training history left by another run.
    encoder = outputs["pretrained_encoder"] | {"state_dict": {"w": torch.full((3,), 2.0)}}
    history = [{"phase": "finetune", "epoch": 0, "val_loss": 9.0}]
    with pytest.raises(StaleOutputsError) as caught:
        require_results_current(
            memory_catalog(outputs | {"pretrained_encoder": encoder, "training_history": history}),
            env="test",
        )
    said = " ".join(str(caught.value).split())
    assert "`pretrained_encoder` (with its pretraining_history" in said
    assert "`training_history` is not the history `classifier` recorded" in said


def test_the_command_comes_from_the_pipelines_the_error_names_not_its_wording(monkeypatch):
    """The notebook took the pipelines to rerun from the refusal's wording (a regex on
    "`kedro run --pipelines X`"): a message that names none (a history left by another run)
    fell back to the whole `kedro run`, and so would any reworded one."""
    import torch

    from skin_lesion import lineage
    from skin_lesion.notebook import StaleOutputsError, require_results_current

    outputs = consistent_outputs()
    history = [{"phase": "finetune", "epoch": 0, "val_loss": 9.0}]
    with pytest.raises(StaleOutputsError) as caught:
        require_results_current(memory_catalog(outputs | {"training_history": history}), env=None)
    said = " ".join(str(caught.value).split())
    assert "Rerun the pipeline that makes `classifier`" in said
    assert "run in that environment `kedro run --pipelines classifier_training,reporting`" in said
    assert caught.value.pipelines == ("classifier_training", "reporting")

    # The raise sites of a retrained classifier's refusals reworded, naming no command: the
    # command is the same.
    def reworded(check):
        def wrapper(*args, **kwargs):
            try:
                check(*args, **kwargs)
            except lineage.StaleInputError as error:
                error.args = ("stale, in other words",)
                raise

        return wrapper

    for name in ("check_predictions", "check_operating_point"):
        monkeypatch.setattr(lineage, name, reworded(getattr(lineage, name)))
    retrained = outputs["classifier"] | {"state_dict": {"w": torch.full((3,), 0.5)}}
    with pytest.raises(StaleOutputsError) as caught:
        require_results_current(memory_catalog(outputs | {"classifier": retrained}), env="demo")
    said = " ".join(str(caught.value).split())
    assert "stale, in other words" in said and said.count("kedro run") == 1  # the notebook's
    assert "run in that environment `kedro run --pipelines reporting --env demo`" in said

    # A refusal raised without them (code of its own) is still read from its text.
    from skin_lesion.notebook import _stale

    own = lineage.StaleInputError("`x` is stale. Rerun `kedro run --pipelines reporting`.")
    assert own.pipelines is None
    assert _stale(own, None, "reporting").pipelines == ("reporting",)


def test_require_data_current_refuses_outputs_of_other_raw_data():
    import pandas as pd

    from skin_lesion import lineage
    from skin_lesion.notebook import StaleOutputsError, require_data_current

    raw = pd.DataFrame({"image_id": ["a", "b", "c"], "dx": ["nv", "mel", "nv"]})
    validated = raw.assign(label=[0, 1, 0])
    read = lineage.raw_data_record({}, raw) | {
        lineage.VALIDATED_KEY: lineage.rows_fingerprint(validated)
    }
    outputs = {"raw_metadata": raw, "raw_images": {}, "raw_data_read": read}
    outputs["validated_metadata"] = validated
    require_data_current(memory_catalog(outputs), ["validated_metadata"], env="test")
    # The metadata file edited after data_processing read it: 01_explore_data would count
    # the new file's rows beside the rows validated from the old one.
    edited = outputs | {"raw_metadata": raw.iloc[:2]}
    with pytest.raises(StaleOutputsError) as caught:
        require_data_current(memory_catalog(edited), ["validated_metadata"], env="test")
    said = " ".join(str(caught.value).split())
    assert "the rows of image_id: 1 removed (c)" in said
    assert "run in that environment `kedro run --pipelines data_processing --env test`" in said


def test_require_data_current_passes_outputs_validated_with_run_time_limits():
    """`kedro run --params data_processing.metadata.max_age=100`: the outputs of that run
    belong together; the notebook, which shows outputs and not settings (and has no
    --params), refused them as "not made from each other", and rerunning with those
    --params, as it advised, was refused again."""
    import pandas as pd

    from skin_lesion import lineage
    from skin_lesion.metadata import MetadataConfig
    from skin_lesion.notebook import require_data_current
    from skin_lesion.pipelines.data_processing.nodes import metadata_limits

    raw = pd.DataFrame({"image_id": ["a", "b", "c"], "dx": ["nv", "mel", "nv"]})
    validated = raw.assign(label=[0, 1, 0])
    read = lineage.raw_data_record({}, raw) | {
        lineage.VALIDATED_KEY: lineage.rows_fingerprint(validated),
        lineage.VALIDATION_KEY: metadata_limits(MetadataConfig(max_age=100)),
    }
    outputs = {
        "raw_metadata": raw,
        "raw_images": {},
        "raw_data_read": read,
        "validated_metadata": validated,
        "params:data_processing": {"metadata": {"max_age": 120}},
    }
    require_data_current(memory_catalog(outputs), ["validated_metadata"], env="demo")
