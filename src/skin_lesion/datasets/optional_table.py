"""``OptionalTableDataset``: a CSV given at run time, or nothing when none is given."""

from __future__ import annotations

from typing import Any

import fsspec
import pandas as pd
from kedro.io.core import AbstractDataset, DatasetError, get_protocol_and_path

from skin_lesion.datasets.errors import InputDataError
from skin_lesion.tabular import read_text_csv


class OptionalTableDataset(AbstractDataset[None, pd.DataFrame | None]):
    """Read-only: a CSV with every column as text, or ``None`` when ``filepath`` is unset.

    For an input a run may or may not have, such as the metadata table of the images to
    classify: ``filepath: ${runtime_params:inference.metadata,null}`` loads ``None`` unless
    ``--params inference.metadata=PATH`` names a file, and the node decides whether it
    needs one. Every cell is read as a string (empty cells as ``""``), as
    ``RawMetadataDataset`` reads HAM10000's, so that the node can name a bad value instead
    of pandas silently turning it into NaN. A path given but missing is an error naming it.

    Example catalog entry::

        inference_metadata:
          type: skin_lesion.datasets.OptionalTableDataset
          filepath: ${runtime_params:inference.metadata,null}
          description: Inference metadata table
    """

    def __init__(
        self,
        *,
        filepath: str | None = None,
        description: str = "Table",
        credentials: dict[str, Any] | None = None,
        fs_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Create the dataset.

        Args:
            filepath: The CSV (local or any fsspec URL); None or empty for no table.
            description: What the table is, for the missing-file error.
            credentials: Passed to the fsspec filesystem.
            fs_args: Extra fsspec filesystem arguments.
            metadata: Free-form metadata, ignored by Kedro (kedro-viz reads ``layer``).
        """
        self._given = filepath or None
        self._description = description
        self._protocol, self._path = get_protocol_and_path(filepath or "")
        self._fs = fsspec.filesystem(self._protocol, **(credentials or {}), **(fs_args or {}))
        self.metadata = metadata

    def load(self) -> pd.DataFrame | None:
        """The table as text, or None when no file was given."""
        if self._given is None:
            return None
        if not self._fs.isfile(self._path):
            raise InputDataError(f"{self._description} not found: '{self._given}' is not a file")
        with self._fs.open(self._path, "rb") as file:
            try:
                return read_text_csv(file, self._given)
            except ValueError as error:
                raise InputDataError(f"{self._description} {error}") from error

    def save(self, data: None) -> None:
        """Inputs given at run time are read-only."""
        raise DatasetError(f"{type(self).__name__} is read-only")

    def _exists(self) -> bool:
        return self._given is not None and self._fs.isfile(self._path)

    def _describe(self) -> dict[str, Any]:
        return {"filepath": self._given, "protocol": self._protocol}
