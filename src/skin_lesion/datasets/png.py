"""PNG files as bytes: ``save(png_bytes)`` writes the file, ``load()`` returns the same bytes."""

from __future__ import annotations

import base64
from copy import deepcopy
from pathlib import PurePosixPath
from typing import Any

import fsspec
from kedro.io.core import (
    AbstractVersionedDataset,
    DatasetError,
    Version,
    get_filepath_str,
    get_protocol_and_path,
)
from kedro_datasets._typing import ImagePreview

from skin_lesion.files import atomic_write
from skin_lesion.report import PNG_SIGNATURE


class PngDataset(AbstractVersionedDataset[bytes, bytes]):
    """One PNG image stored as a file and handed between nodes as its encoded bytes.

    The reporting nodes render each figure to PNG once (``figures.figure_to_png``); this
    dataset writes those bytes and loads them back unchanged, so ``build_report`` embeds
    exactly the files on disk and can rerun on its own (``--from-nodes build_report``).
    kedro-datasets' ``matplotlib.MatplotlibDataset`` saves a ``Figure`` and cannot load.
    kedro-viz previews the image.

    Example catalog entry::

        roc_curves_plot:
          type: skin_lesion.datasets.PngDataset
          filepath: data/08_reporting/figures/roc_curves.png
    """

    def __init__(
        self,
        *,
        filepath: str,
        version: Version | None = None,
        credentials: dict[str, Any] | None = None,
        fs_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Create the dataset.

        Args:
            filepath: Path or fsspec URL of the ``.png`` file.
            version: Kedro version (set by the catalog when ``versioned: true``).
            credentials: Passed to the fsspec filesystem.
            fs_args: Extra arguments of the fsspec filesystem.
            metadata: Free-form metadata, ignored by Kedro (kedro-viz reads ``layer``).
        """
        protocol, path = get_protocol_and_path(filepath, version)
        self._protocol = protocol
        self._fs = fsspec.filesystem(protocol, **deepcopy(credentials or {}), **(fs_args or {}))
        self.metadata = metadata
        super().__init__(
            filepath=PurePosixPath(path),
            version=version,
            exists_function=self._fs.exists,
            glob_function=self._fs.glob,
        )

    def _describe(self) -> dict[str, Any]:
        return {"filepath": self._filepath, "protocol": self._protocol, "version": self._version}

    def load(self) -> bytes:
        """The PNG file's bytes."""
        path = get_filepath_str(self._get_load_path(), self._protocol)
        with self._fs.open(path, mode="rb") as file:
            return file.read()

    def save(self, data: bytes) -> None:
        """Write PNG bytes; anything that is not a PNG is refused with what it starts with."""
        path = get_filepath_str(self._get_save_path(), self._protocol)
        name = type(self).__name__
        if not isinstance(data, bytes | bytearray):
            raise DatasetError(f"{path}: {name} saves PNG bytes, got {type(data).__name__}")
        if bytes(data[:8]) != PNG_SIGNATURE:
            raise DatasetError(
                f"{path}: {name} saves PNG bytes, got data starting {bytes(data[:8])!r}"
            )
        self._fs.mkdirs(str(PurePosixPath(path).parent), exist_ok=True)
        if self._protocol == "file":
            # Written beside and renamed: a save cut short (a full disk) left a half PNG that
            # loaded, and that a later report embedded without complaint.
            atomic_write(path, lambda file: file.write(bytes(data)))
        else:
            with self._fs.open(path, mode="wb") as file:
                file.write(bytes(data))
        self._fs.invalidate_cache(path)

    def _exists(self) -> bool:
        try:
            path = get_filepath_str(self._get_load_path(), self._protocol)
        except DatasetError:
            return False
        return self._fs.exists(path)

    def preview(self) -> ImagePreview:
        """The image, base64-encoded, for kedro-viz."""
        return ImagePreview(base64.b64encode(self.load()).decode("ascii"))
