import pytest
import torch
from kedro.io import DatasetError, Version

from skin_lesion.checkpoints import CheckpointStore
from skin_lesion.datasets import CheckpointStoreDataset, TorchCheckpointDataset


def _state():
    return {
        "kind": "k",
        "state_dict": {"w": torch.randn(3, 3)},
        "epoch": 2,
        "preprocessing": {"mean": [0.5, 0.5, 0.5]},
    }


def test_save_then_load_returns_the_same_dict(tmp_path):
    dataset = TorchCheckpointDataset(filepath=str(tmp_path / "model.pt"))
    assert not dataset.exists()
    state = _state()
    dataset.save(state)
    assert dataset.exists()
    loaded = dataset.load()
    assert set(loaded) == {*state, "versions"}  # the library versions, added on save
    assert torch.equal(loaded["state_dict"]["w"], state["state_dict"]["w"])
    assert loaded["preprocessing"] == state["preprocessing"]


def test_numpy_scalars_are_saved_as_python_numbers(tmp_path):
    """A NumPy scalar pickled as a NumPy object: the checkpoint saved but could not be loaded
    (``weights_only=True``), and it had replaced a readable one."""
    import numpy as np

    dataset = TorchCheckpointDataset(filepath=str(tmp_path / "model.pt"))
    dataset.save({**_state(), "score": np.float64(0.5), "n": [np.int64(3)]})
    loaded = dataset.load()
    assert loaded["score"] == 0.5 and type(loaded["score"]) is float
    assert loaded["n"] == [3] and type(loaded["n"][0]) is int


def test_missing_file_raises(tmp_path):
    with pytest.raises(DatasetError, match=r"missing\.pt"):
        TorchCheckpointDataset(filepath=str(tmp_path / "missing.pt")).load()


def test_rejects_modules(tmp_path):
    with pytest.raises(DatasetError, match="got Linear"):
        TorchCheckpointDataset(filepath=str(tmp_path / "m.pt")).save(torch.nn.Linear(2, 2))


def test_versioned_save_and_load(tmp_path):
    path = str(tmp_path / "model.pt")
    TorchCheckpointDataset(filepath=path, version=Version(None, "2026-01-01T00.00.00.000Z")).save(
        {"epoch": 1}
    )
    TorchCheckpointDataset(filepath=path, version=Version(None, "2026-01-02T00.00.00.000Z")).save(
        {"epoch": 2}
    )
    assert TorchCheckpointDataset(filepath=path, version=Version(None, None)).load()["epoch"] == 2
    old = TorchCheckpointDataset(filepath=path, version=Version("2026-01-01T00.00.00.000Z", None))
    assert old.load()["epoch"] == 1


def test_store_dataset_hands_out_a_store(tmp_path):
    store = CheckpointStoreDataset(path=str(tmp_path / "run")).load()
    assert isinstance(store, CheckpointStore)
    assert store.directory == tmp_path / "run"
    with pytest.raises(DatasetError, match="read-only"):
        CheckpointStoreDataset(path=str(tmp_path)).save(store)


@pytest.mark.parametrize("url", ["s3://bucket/models/model.pt", "memory:///model.pt"])
def test_urls_other_than_file_are_refused_not_written_to_a_local_folder(tmp_path, monkeypatch, url):
    # Path("s3://b/x.pt") is the relative local path s3:/b/x.pt: a folder named "s3:".
    monkeypatch.chdir(tmp_path)
    for make in (
        lambda: TorchCheckpointDataset(filepath=url),
        lambda: CheckpointStoreDataset(path=url.removesuffix("/model.pt") + "/run"),
    ):
        with pytest.raises(DatasetError, match=r"local files only, got '.*'"):
            make().save(_state())
    assert list(tmp_path.iterdir()) == []


def test_a_file_url_is_the_local_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path / "..")
    target = tmp_path / "models" / "model.pt"
    dataset = TorchCheckpointDataset(filepath=target.as_uri())
    dataset.save(_state())
    assert target.is_file() and dataset.exists()
    assert (
        CheckpointStoreDataset(path=(tmp_path / "run").as_uri()).load().directory
        == tmp_path / "run"
    )
