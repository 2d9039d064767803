import base64

import pytest
from kedro.io import DatasetError, Version
from matplotlib.figure import Figure

from skin_lesion.datasets import PngDataset
from skin_lesion.figures import figure_to_png


def _png(dpi: int = 40) -> bytes:
    fig = Figure(figsize=(2, 2))
    fig.add_subplot().plot([0, 1], [1, 0])
    return figure_to_png(fig, dpi=dpi)


def test_save_then_load_returns_the_same_bytes(tmp_path):
    path = tmp_path / "figures" / "roc.png"
    dataset = PngDataset(filepath=str(path))
    assert not dataset.exists()
    data = _png()
    dataset.save(data)
    assert dataset.exists() and path.read_bytes() == data
    assert dataset.load() == data


def test_missing_file_raises(tmp_path):
    with pytest.raises(DatasetError, match=r"missing\.png"):
        PngDataset(filepath=str(tmp_path / "missing.png")).load()


def test_versioned_keeps_each_save(tmp_path):
    path = str(tmp_path / "roc.png")
    first, second = _png(30), _png(60)
    PngDataset(filepath=path, version=Version(None, "2026-12-01T00.00.00.000Z")).save(first)
    PngDataset(filepath=path, version=Version(None, "2026-12-01T00.00.01.000Z")).save(second)
    assert PngDataset(filepath=path, version=Version(None, None)).load() == second
    old = PngDataset(filepath=path, version=Version("2026-12-01T00.00.00.000Z", None))
    assert old.load() == first


@pytest.mark.parametrize(
    ("data", "message"),
    [(b"<svg></svg>", r"got data starting b'<svg></s'"), ("a string", "got str")],
)
def test_save_refuses_what_is_not_png_bytes(tmp_path, data, message):
    dataset = PngDataset(filepath=str(tmp_path / "roc.png"))
    with pytest.raises(DatasetError, match=message):
        dataset.save(data)
    assert not dataset.exists()


def test_preview_is_the_image_in_base64(tmp_path):
    dataset = PngDataset(filepath=str(tmp_path / "roc.png"))
    dataset.save(_png())
    assert base64.b64decode(dataset.preview()) == dataset.load()


def test_a_save_cut_short_leaves_the_previous_file(tmp_path, monkeypatch):
    """Written in place, a save that failed midway (a full disk) left a half PNG that loaded."""
    import os

    dataset = PngDataset(filepath=str(tmp_path / "fig.png"))
    first = figure_to_png(Figure(figsize=(1, 1)))
    dataset.save(first)
    real_replace = os.replace

    def disk_full(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises((OSError, DatasetError), match="No space left"):
        dataset.save(figure_to_png(Figure(figsize=(2, 2))))
    monkeypatch.setattr(os, "replace", real_replace)
    assert dataset.load() == first
    assert [p.name for p in tmp_path.iterdir()] == ["fig.png"]  # no temporary file left
