"""``RawMetadataDataset``: HAM10000's metadata CSV read verbatim, as strings."""

from __future__ import annotations

from typing import Any, ClassVar

import pandas as pd
from kedro.io.core import DatasetError, get_filepath_str
from kedro_datasets.pandas import CSVDataset

from skin_lesion.datasets._help import WHERE_TO_PUT_HAM10000


class RawMetadataDataset(CSVDataset):
    """HAM10000's ``HAM10000_metadata.csv``, every column loaded as text.

    Reading every cell as a string (empty cells as ``""``) leaves type checks to the
    validation node, which can then name the row with a bad age instead of pandas
    silently turning it into NaN. A missing file gets an error that says where
    HAM10000 belongs and how to run the demo instead.

    Example catalog entry::

        raw_metadata:
          type: skin_lesion.datasets.RawMetadataDataset
          filepath: data/01_raw/HAM10000/HAM10000_metadata.csv
    """

    DEFAULT_LOAD_ARGS: ClassVar[dict[str, Any]] = {"dtype": str, "keep_default_na": False}

    def load(self) -> pd.DataFrame:
        """Load the CSV, or explain where HAM10000 should be when it is missing."""
        load_path = get_filepath_str(self._get_load_path(), self._protocol)
        if not self._fs.exists(load_path):
            raise DatasetError(
                f"HAM10000 metadata not found: '{load_path}' does not exist. "
                + WHERE_TO_PUT_HAM10000
            )
        return super().load()
