"""Atomic saves of the CSV, Parquet, JSON and text outputs: a failed write keeps the old file."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pandas as pd
import pytest
from kedro.io import DatasetError

from skin_lesion.datasets import (
    AtomicCSVDataset,
    AtomicJSONDataset,
    AtomicParquetDataset,
    AtomicTextDataset,
)


def _full_disk_after_half(real):
    """A writer that writes half of what it is given, then fails as a full disk does."""

    def write(self, data, *args, **kwargs):
        real(self, data[: len(data) // 2], *args, **kwargs)
        raise OSError(errno.ENOSPC, "No space left on device")

    return write


@pytest.mark.parametrize(
    ("dataset", "old", "new", "read"),
    [
        (AtomicCSVDataset, pd.DataFrame({"a": [1]}), pd.DataFrame({"a": range(1000)}), pd.read_csv),
        (AtomicTextDataset, "old", "new" * 1000, lambda p: Path(p).read_text()),
        (
            AtomicJSONDataset,
            {"old": 1},
            {"new": list(range(1000))},
            lambda p: json.loads(Path(p).read_text()),
        ),
    ],
)
def test_a_write_cut_short_leaves_the_previous_file_whole(
    tmp_path, monkeypatch, dataset, old, new, read
):
    from fsspec.implementations.local import LocalFileOpener

    target = tmp_path / "out" / "file"
    data = dataset(filepath=str(target))
    data.save(old)
    before = target.read_bytes()
    monkeypatch.setattr(LocalFileOpener, "write", _full_disk_after_half(LocalFileOpener.write))
    with pytest.raises(DatasetError, match="No space left"):
        data.save(new)
    monkeypatch.undo()
    assert target.read_bytes() == before
    assert [p.name for p in target.parent.iterdir()] == ["file"]  # no temporary file left
    data.save(new)
    assert (read(target) == new) if not isinstance(new, pd.DataFrame) else read(target).equals(new)


def test_parquet_saves_and_loads_through_the_rename(tmp_path):
    data = AtomicParquetDataset(filepath=str(tmp_path / "t.parquet"))
    frame = pd.DataFrame({"image_id": ["a", "b"], "x": [1.0, 2.0]})
    data.save(frame)
    assert data.load().equals(frame) and data.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["t.parquet"]
