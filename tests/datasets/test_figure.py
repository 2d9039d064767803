import matplotlib.pyplot as plt
import pytest
from kedro.io import DatasetError

from skin_lesion.datasets import PngFigureDataset


def _figure():
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [1, 0])
    return fig


def test_save_writes_a_png_and_load_returns_its_bytes(tmp_path):
    path = tmp_path / "figures" / "roc.png"
    dataset = PngFigureDataset(filepath=str(path), save_args={"dpi": 50})
    assert not dataset.exists()
    fig = _figure()
    dataset.save(fig)
    assert not plt.fignum_exists(fig.number)  # closed after saving: no leak over a run
    data = dataset.load()
    assert data == path.read_bytes() and data.startswith(b"\x89PNG")


def test_save_args_reach_savefig(tmp_path):
    sizes = {}
    for dpi in (40, 120):
        dataset = PngFigureDataset(filepath=str(tmp_path / f"{dpi}.png"), save_args={"dpi": dpi})
        dataset.save(_figure())
        sizes[dpi] = len(dataset.load())
    assert sizes[120] > sizes[40]


def test_load_before_save_names_the_file(tmp_path):
    path = tmp_path / "missing.png"
    with pytest.raises(DatasetError, match=r"missing\.png does not exist"):
        PngFigureDataset(filepath=str(path)).load()


def test_load_rejects_a_file_that_is_not_png(tmp_path):
    path = tmp_path / "roc.png"
    dataset = PngFigureDataset(filepath=str(path), save_args={"format": "svg"})
    dataset.save(_figure())
    with pytest.raises(DatasetError, match="is not a PNG"):
        dataset.load()
