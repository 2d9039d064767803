"""``RawMetadataDataset``: HAM10000's metadata CSV read verbatim, as strings."""

from __future__ import annotations

import io
import logging
from pathlib import PurePosixPath
from typing import Any, ClassVar

import pandas as pd
from kedro.io.core import DatasetError, get_filepath_str
from kedro_datasets.pandas import CSVDataset

from skin_lesion.datasets._help import WHERE_TO_PUT_HAM10000
from skin_lesion.datasets.errors import InputDataError
from skin_lesion.tabular import header_width, separator

logger = logging.getLogger(__name__)


class RawMetadataDataset(CSVDataset):
    """HAM10000's ``HAM10000_metadata.csv``, every column loaded as text.

    Harvard Dataverse's default download is ``HAM10000_metadata.tab`` (tab-separated, with an
    extra ``dataset`` column): read in place of a missing ``.csv``, or under the ``.csv`` name.

    Reading every cell as a string (empty cells as ``""``) leaves type checks to the
    validation node, which can then name the row with a bad age instead of pandas
    silently turning it into NaN. A missing file gets an error that says where
    HAM10000 belongs and how to run the demo instead.

    Example catalog entry::

        raw_metadata:
          type: skin_lesion.datasets.RawMetadataDataset
          filepath: data/01_raw/HAM10000/HAM10000_metadata.csv
    """

    # index_col=False: data rows ending in a comma (one field more than the header) must not
    # turn image ids into the index (load also refuses a row with a value past the header).
    # skip_blank_lines=False: row k is on line k + 2 of the file even with blank lines
    # (validation drops the empty rows and names lines).
    DEFAULT_LOAD_ARGS: ClassVar[dict[str, Any]] = {
        "dtype": str,
        "keep_default_na": False,
        "index_col": False,
        "skip_blank_lines": False,
    }

    def __init__(
        self,
        *,
        filepath: str,
        load_args: dict[str, Any] | None = None,
        save_args: dict[str, Any] | None = None,
        version: Any = None,
        credentials: dict[str, Any] | None = None,
        fs_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """``CSVDataset``'s arguments, named: Kedro records a dataset's configuration from
        its own ``__init__``'s signature, and an inherited one gave ``args``/``kwargs``, which
        ``kedro catalog resolve-patterns`` printed and no catalog could load back."""
        super().__init__(
            filepath=filepath,
            load_args=load_args,
            save_args=save_args,
            version=version,
            credentials=credentials,
            fs_args=fs_args,
            metadata=metadata,
        )

    def read_path(self) -> str:
        """The file ``load`` reads: the CSV, or Dataverse's ``.tab`` in place of a missing one."""
        path = get_filepath_str(self._get_load_path(), self._protocol)
        tab = str(PurePosixPath(path).with_suffix(".tab"))
        return tab if not self._fs.exists(path) and self._fs.exists(tab) else path

    def _exists(self) -> bool:
        """The CSV, or Dataverse's ``.tab`` beside it, which ``load`` reads in its place."""
        try:
            return bool(self._fs.exists(self.read_path()))
        except DatasetError:
            return False

    def load(self) -> pd.DataFrame:
        """Load the CSV (or Dataverse's tab-separated ``.tab`` beside it), or explain where
        HAM10000 should be when it is missing."""
        load_path = get_filepath_str(self._get_load_path(), self._protocol)
        if not self._fs.exists(load_path):
            tab = str(PurePosixPath(load_path).with_suffix(".tab"))
            if not self._fs.exists(tab):
                raise InputDataError(
                    f"HAM10000 metadata not found: neither '{load_path}' nor Dataverse's "
                    f"'{PurePosixPath(tab).name}' exists. " + WHERE_TO_PUT_HAM10000
                )
            logger.info("reading the metadata from Dataverse's tab-separated %s", tab)
            load_path = tab
        with self._fs.open(load_path, mode="rb") as file:
            data = file.read()
        # Dataverse serves the metadata tab-separated (HAM10000_metadata.tab) unless asked
        # for the original CSV; a .tab saved under the .csv name reads the same.
        load_args = {"sep": separator(data), **self._load_args}
        if (
            "usecols" not in load_args
            and isinstance(load_args["sep"], str)
            and len(load_args["sep"]) == 1
        ):
            # A value past the header's last column is refused rather than dropped, and
            # trailing separators are read as if they were not there (tabular.header_width).
            try:
                width = header_width(
                    data, load_path, load_args["sep"], load_args.get("encoding") or "utf-8"
                )
            except ValueError as error:
                raise InputDataError(f"HAM10000 metadata {error}") from error
            if width is not None:
                load_args["usecols"] = range(width)
        return pd.read_csv(io.BytesIO(data), **load_args)
