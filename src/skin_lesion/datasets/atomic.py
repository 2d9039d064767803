"""Kedro's CSV, Parquet, JSON and text datasets, saved atomically on a local disk.

kedro-datasets opens the target itself and writes into it: a full disk, a kill or a power
loss mid-write left the file cut short (the previous one already gone), and a CSV cut at a
row boundary read back as a valid, shorter table (``--only-missing-outputs`` then took it
as made). These write to a temporary file beside the target and rename it into place, as
the image cache, the checkpoints and the figures do (``files.atomic_write``): the file
under its name is always a whole one. Other protocols and versioned entries save as
kedro-datasets does.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from kedro.io.core import get_filepath_str
from kedro_datasets.json import JSONDataset
from kedro_datasets.pandas import CSVDataset, ParquetDataset
from kedro_datasets.text import TextDataset

from skin_lesion.files import atomic_path


class _AtomicSave:
    """Mixin: ``save`` through a temporary file beside the target, then ``os.replace``."""

    _filepath: PurePosixPath
    _protocol: str

    def save(self, data: Any) -> None:
        if self._protocol != "file" or getattr(self, "_version", None) is not None:
            super().save(data)  # type: ignore[misc]
            return
        final = self._filepath
        target = Path(get_filepath_str(final, self._protocol))
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as tmp:
            self._filepath = PurePosixPath(tmp)
            try:
                super().save(data)  # type: ignore[misc]
            finally:
                self._filepath = final
        self._invalidate_cache()  # type: ignore[attr-defined]


def _named_init(base: type) -> Any:
    """``base``'s own ``__init__``, with its named parameters: an inherited one is Kedro's
    ``*args, **kwargs`` wrapper, which records ``args``/``kwargs`` as the dataset's
    configuration (``kedro catalog resolve-patterns`` printed a catalog that did not build)."""
    return getattr(base.__init__, "__wrapped__", base.__init__)


class AtomicCSVDataset(_AtomicSave, CSVDataset):
    """``pandas.CSVDataset``, saved atomically on a local disk."""

    __init__ = _named_init(CSVDataset)


class AtomicParquetDataset(_AtomicSave, ParquetDataset):
    """``pandas.ParquetDataset``, saved atomically on a local disk."""

    __init__ = _named_init(ParquetDataset)


class AtomicJSONDataset(_AtomicSave, JSONDataset):
    """``json.JSONDataset``, saved atomically on a local disk."""

    __init__ = _named_init(JSONDataset)


class AtomicTextDataset(_AtomicSave, TextDataset):
    """``text.TextDataset``, saved atomically on a local disk."""

    __init__ = _named_init(TextDataset)
